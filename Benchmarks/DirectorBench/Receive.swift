import ArgumentParser
import DirectorCore
import DirectorLab
import DirectorWire
import Foundation
import LoadGeneration
import PacketIO

/// The receive rings a worker could read the front interface through, as `director-bench rings`
/// measures them.
enum ReceiverKind: String, CaseIterable, Codable, ExpressibleByArgument {
    /// The director's ring: TPACKET_V3 blocks, as its workers read them (1 ms retire timer).
    case tpacketV3 = "tpacket-v3"
    /// The director's low-latency ring (`receive_ring: { format: tpacket_v2 }`): each frame
    /// handed over as the kernel writes it, the delay AF_XDP has.
    case tpacketV2 = "tpacket-v2"
    /// The TPACKET_V3 ring behind an XDP program that passes every frame to the stack: the
    /// director's ring for the frames its XDP fast path does not forward.
    case tpacketV3BehindXDP = "tpacket-v3-xdp"
    /// An AF_XDP socket in copy mode, fed by an XDP program that redirects every frame to it.
    case afXDP = "af-xdp"

    var title: String {
        switch self {
        case .tpacketV3: "TPACKET_V3 ring"
        case .tpacketV2: "TPACKET_V2 ring"
        case .tpacketV3BehindXDP: "TPACKET_V3 ring behind an XDP program (XDP_PASS)"
        case .afXDP: "AF_XDP socket, copy mode"
        }
    }
}

/// The receiving end of `director-bench rings`, run inside the device's namespace: one receive
/// ring of the kind asked for on one interface, every frame parsed as a worker's first step does
/// (`FrameParser`), and its one-way delay taken to the moment this process reads it, the same way
/// for every kind. It stops after `--idle-stop` seconds without frames once the first arrived, or
/// at `--seconds`.
struct Receive: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Receive through one kind of ring and count (run inside a lab namespace).")
    @Option(help: "Interface to receive on.") var interface: String
    @Option(help: "tpacket-v3, tpacket-v2, tpacket-v3-xdp or af-xdp.") var ring: ReceiverKind = .tpacketV3
    @OptionGroup var traffic: TrafficOptions
    @Option(help: "Upper bound on the run time, seconds (at most 3600).") var seconds = 60.0
    @Option(help: "Stop after this many seconds without a frame, once frames have come.") var idleStop = 0.5
    @Option(help: "CPU to pin the receiver to (-1 = leave it).") var cpu = -1
    @Option(help: "Create this file once the ring is receiving.") var readyFile: String?
    @Option(help: "Create this file once the frames have stopped coming (before the ring is torn down).") var doneFile: String?
    @Option(help: "Write a JSON summary here.") var summary: String?

    struct Summary: Codable {
        var ring: ReceiverKind
        var frames: UInt64
        /// Frames `FrameParser` found to be IPv4 TCP or UDP (all of them, for a plan's traffic).
        var parsed: UInt64
        /// What the ring could not take (TPACKET: the socket's drop count; AF_XDP: its statistics).
        var drops: UInt64
        var xdpDrops: XDPSocketRing.Drops?
        /// From the generator's stamp to the moment the receiver read the frame, µs.
        var delayP50Microseconds: UInt64?
        var delayP99Microseconds: UInt64?
    }

    /// What every kind of ring does with a frame.
    struct Tally {
        let stampOffset: Int
        var frames: UInt64 = 0
        var parsed: UInt64 = 0
        var delay = [UInt64](repeating: 0, count: LatencyHistogram.bucketCount)

        @inline(__always)
        mutating func account(_ frame: RawSpan, readAt now: UInt64) {
            frames &+= 1
            if case .ipv4 = FrameParser.parse(frame) { parsed &+= 1 }
            if let stamp = FrameStamp(frame, at: stampOffset) {
                delay[LatencyHistogram.bucket(microseconds: now > stamp.sentAt ? (now - stamp.sentAt) / 1000 : 0)] &+= 1
            }
        }
    }

    func run() throws {
        guard seconds > 0, seconds <= 3600, idleStop > 0 else { throw ValidationError("--seconds up to 3600, --idle-stop above 0") }
        if cpu >= 0 { try NUMAPlacement(cpu: cpu).pinCurrentThread() }
        let plan = try traffic.plan()
        let device = try NetworkInterface(named: interface)
        var tally = Tally(stampOffset: plan.headerLength)
        var drops: UInt64 = 0
        var xdpDrops: XDPSocketRing.Drops?
        switch ring {
        case .tpacketV3, .tpacketV2, .tpacketV3BehindXDP:
            let program = ring == .tpacketV3BehindXDP ? try SocketRedirectProgram(interface: device) : nil
            var receiver = try PacketReceiveRing(interface: device, geometry: ring == .tpacketV2 ? .lowLatency : .standard, fanoutGroup: 0, fanoutProgram: nil)
            receiveUntilIdle { timeout in
                guard receiver.hasFrames || receiver.waitForFrames(timeoutMilliseconds: timeout) == .ready else { return 0 }
                let now = TrafficSender.nanoseconds(CLOCK_REALTIME)
                return receiver.drainBurst { frame, _ in tally.account(frame.bytes, readAt: now) }
            }
            drops = receiver.takeDropCount()
            withExtendedLifetime(program) {}
        case .afXDP:
            let program = try SocketRedirectProgram(interface: device)
            var receiver = try XDPSocketRing(interface: device)
            try program.register(receiver.socket, queue: receiver.queue)
            receiveUntilIdle { timeout in
                guard receiver.waitForFrames(timeoutMilliseconds: timeout) else { return 0 }
                let now = TrafficSender.nanoseconds(CLOCK_REALTIME)
                return receiver.drainBurst { frame in tally.account(frame, readAt: now) }
            }
            xdpDrops = try receiver.drops()
            drops = xdpDrops!.total
            withExtendedLifetime(program) {}
        }
        let result = Summary(ring: ring, frames: tally.frames, parsed: tally.parsed, drops: drops, xdpDrops: xdpDrops,
                             delayP50Microseconds: LatencyHistogram.percentile(0.5, of: tally.delay),
                             delayP99Microseconds: LatencyHistogram.percentile(0.99, of: tally.delay))
        print("receive (\(ring.title)): \(result.frames) frames, \(result.parsed) parsed, drops \(result.drops); "
              + "delay to user space p50 \(result.delayP50Microseconds.map(String.init) ?? "-") µs, p99 \(result.delayP99Microseconds.map(String.init) ?? "-") µs")
        if let summary { try JSONEncoder().encode(result).write(to: URL(fileURLWithPath: summary)) }
    }

    /// Says it is ready, then calls `drain` (it waits up to the given ms for frames unless some
    /// are there, reads a burst, returns how many) until the frames stop coming or the time is
    /// up, and says it is done.
    private func receiveUntilIdle(_ drain: (_ timeoutMilliseconds: Int32) -> Int) {
        if let readyFile { _ = FileManager.default.createFile(atPath: readyFile, contents: Data()) }
        let start = Lab.monotonicNanoseconds()
        var lastFrame: UInt64 = 0
        while true {
            let now = Lab.monotonicNanoseconds()
            if now - start > UInt64(seconds * 1e9) { break }
            if lastFrame != 0 && now - lastFrame > UInt64(idleStop * 1e9) { break }
            if drain(20) > 0 { lastFrame = Lab.monotonicNanoseconds() }
        }
        if let doneFile { _ = FileManager.default.createFile(atPath: doneFile, contents: Data()) }
    }
}
