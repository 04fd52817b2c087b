import ArgumentParser
import DirectorWire
import DirectorLab
import Foundation
import LoadGeneration
import PacketIO

/// The load generator: the frames of a traffic plan through a TPACKET TX ring, at a set rate or
/// as fast as the kernel takes them, until `--count` frames or `--seconds`, whichever comes
/// first. Run it inside the namespace whose interface it sends on.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send a traffic plan's frames (run inside a lab namespace); stops by itself.")
    @Option(help: "Interface to send on.") var interface: String
    @Option(help: "Destination MAC (the device under test's input).") var destinationMAC: String
    @OptionGroup var traffic: TrafficOptions
    @Option(help: "Frames to send (at most 1,000,000,000).") var count: UInt64 = 1_000_000
    @Option(help: "Number of the first frame of the plan to send (to go on where an earlier run stopped).") var startAt: UInt64 = 0
    @Option(help: "Frames per second (0 = as fast as the ring drains).") var rate = 100_000
    @Option(help: "Upper bound on the run time, seconds (at most 3600).") var seconds = 10.0
    @Option(help: "CPU to pin the generator to (-1 = leave it).") var cpu = -1
    @Option(help: "Write a JSON summary here.") var summary: String?
    @Flag(help: "Print progress once a second on standard error.") var progress = false

    func run() throws {
        guard let mac = MACAddress(destinationMAC) else { throw ValidationError("--destination-mac: not a MAC address") }
        guard (1...1_000_000_000).contains(count), seconds > 0, seconds <= 3600, rate >= 0 else {
            throw ValidationError("--count 1…1,000,000,000, --seconds up to 3600, --rate ≥ 0")
        }
        if cpu >= 0 { try NUMAPlacement(cpu: cpu).pinCurrentThread() }
        let sender = try NetworkInterface(named: interface)
        let synthesizer = FrameSynthesizer(plan: try traffic.plan(sourceMAC: sender.mac, destinationMAC: mac))
        // 4,096 slots: enough frames in flight for the kernel to send in large bursts; the ring
        // sizes its socket buffer to match.
        var geometry = TransmitRingGeometry()
        geometry.frameCount = 4096
        geometry.blockSize = 1 << 20
        var ring = try PacketTransmitRing(interface: sender, geometry: geometry)

        let start = Lab.monotonicNanoseconds()
        let deadline = start + UInt64(seconds * 1e9)
        var sent: UInt64 = 0, ringFullWaits: UInt64 = 0
        var nextProgress = start + 1_000_000_000, sentAtLastProgress: UInt64 = 0
        var now = start
        while sent < count && now < deadline {
            // Frames due by now at the set rate; a burst of at most 256 between clock readings.
            let due = rate == 0 ? count : min(count, UInt64(Double(now - start) * Double(rate) / 1e9) + 1)
            let burstEnd = min(due, sent + 256)
            let time = realtimeNanoseconds()
            while sent < burstEnd {
                let frame = synthesizer.frame(startAt + sent, time: time)
                guard ring.enqueue(frame.bytes) else {
                    ringFullWaits += 1
                    break
                }
                sent += 1
            }
            ring.flush()
            if sent >= due && rate != 0 { usleep(50) }
            if sent < burstEnd { sched_yield() }
            now = Lab.monotonicNanoseconds()
            if progress && now >= nextProgress {
                let perSecond = Double(sent - sentAtLastProgress) * 1e9 / Double(now - nextProgress + 1_000_000_000)
                FileHandle.standardError.write(Data(String(format: "generate: %llu frames sent, %.0f/s\n", sent, perSecond).utf8))
                sentAtLastProgress = sent
                nextProgress = now + 1_000_000_000
            }
        }
        ring.flush()
        let result = GeneratorSummary(frames: sent, seconds: Double(Lab.monotonicNanoseconds() - start) / 1e9, ringFullWaits: ringFullWaits)
        print(String(format: "generate: %llu frames in %.2f s (%.0f/s), ring full %llu times", result.frames, result.seconds,
                     result.framesPerSecond, result.ringFullWaits))
        if let summary { try JSONEncoder().encode(result).write(to: URL(fileURLWithPath: summary)) }
    }
}

func realtimeNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}
