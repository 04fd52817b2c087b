import ArgumentParser
import DirectorWire
import Foundation
import LoadGeneration
import PacketIO

/// How the generator sends.
enum GeneratorMethod: String, CaseIterable, ExpressibleByArgument {
    /// A TPACKET TX ring: frames leave as socket buffers, as any host's would.
    case tpacket
    /// The kernel runs the generator's XDP program in a loop (established flows only): frames
    /// leave as XDP frames, as a NIC's reach a driver, with no socket buffer.
    case xdp

    /// How the comparison report names it.
    var reportName: String {
        switch self {
        case .tpacket: "a TPACKET TX ring: frames leave it as socket buffers, which veth copies before XDP may touch them"
        case .xdp: "the kernel running an XDP program in a loop, BPF_PROG_RUN with live frames: frames leave it as XDP frames, "
            + "with no socket buffer, as a NIC's reach its driver; a device that needs the stack builds the socket buffer around the frame"
        }
    }
}

/// The load generator: the frames of a traffic plan through a TPACKET TX ring or made by the
/// kernel with an XDP program, at a set rate or as fast as the kernel takes them, until `--count`
/// frames or `--seconds`, whichever comes first. Run it inside the namespace whose interface it
/// sends on.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send a traffic plan's frames (run inside a lab namespace); stops by itself.")
    @Option(help: "Interface to send on.") var interface: String
    @Option(help: "Destination MAC (the device under test's input).") var destinationMAC: String
    @OptionGroup var traffic: TrafficOptions
    @Option(help: "Frames to send (at most 1,000,000,000).") var count: UInt64 = 1_000_000
    @Option(help: "Number of the first frame of the plan to send (to go on where an earlier run stopped).") var startAt: UInt64 = 0
    @Option(help: "Frames per second (0 = as fast as the ring drains).") var rate = 100_000
    @Option(help: "Upper bound on the run time, seconds (at most 3600).") var seconds = 10.0
    @Option(help: "tpacket (a TX ring) or xdp (the kernel makes the frames with an XDP program; established flows only).") var method: GeneratorMethod = .tpacket
    @Option(help: "With --method xdp at a set rate: frames sent back to back (1…64).") var burst = XDPTrafficSender.defaultBurst
    @Option(help: "CPU to pin the generator to (-1 = leave it).") var cpu = -1
    @Option(help: "Write a JSON summary here.") var summary: String?
    @Flag(help: "Print progress once a second on standard error.") var progress = false

    func run() throws {
        guard let mac = MACAddress(destinationMAC) else { throw ValidationError("--destination-mac: not a MAC address") }
        var sender = TrafficSender(count: count, rate: rate, seconds: seconds)
        sender.startAt = startAt
        sender.progress = progress
        if let problem = sender.problem { throw ValidationError(problem) }
        guard (1...64).contains(burst) else { throw ValidationError("--burst must be 1…64") }
        if cpu >= 0 { try NUMAPlacement(cpu: cpu).pinCurrentThread() }
        let interface = try NetworkInterface(named: interface)
        let plan = try traffic.plan(sourceMAC: interface.mac, destinationMAC: mac)
        let result = method == .xdp ? try XDPTrafficSender(bounds: sender, burst: burst).send(plan, on: interface) : try sender.send(plan, on: interface)
        print(String(format: "generate: %llu frames in %.2f s (%.0f/s), ring full %llu times", result.frames, result.seconds,
                     result.framesPerSecond, result.ringFullWaits))
        if let summary { try JSONEncoder().encode(result).write(to: URL(fileURLWithPath: summary)) }
    }
}
