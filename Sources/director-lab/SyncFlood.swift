import ArgumentParser
import DirectorLab
import DirectorWire
import LoadGeneration
import PacketIO

/// Sends forged sync datagrams at a director's crossover address, from its peer's address and
/// ports (`SyncForgery`): run it inside the peer's namespace (`ip netns exec <prefix>-dir2 …`),
/// where the crossover interface is. It stops by itself after `--count` datagrams or `--seconds`.
struct SyncFlood: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync-flood",
        abstract: "Send a bounded flood of forged sync and heartbeat datagrams to a director's crossover address (run inside the peer's namespace).")
    @Option(help: "Interface to send on.") var interface = "cross"
    @Option(help: "Destination MAC (the flooded director's crossover interface).") var destinationMAC: String
    @Option(help: "Source address: the peer's (in 198.18.0.0/15).") var source = Lab.crossoverAddress(1)
    @Option(help: "Destination address: the flooded director's (in 198.18.0.0/15).") var destination = Lab.crossoverAddress(0)
    @Option(help: "Sync port (acknowledgements go there).") var syncPort: UInt16 = 7439
    @Option(help: "Heartbeat port (heartbeats go there).") var heartbeatPort: UInt16 = 7440
    @Option(help: "Node id the forgeries claim (the peer's).") var nodeID: UInt8 = 2
    @Option(help: "Incarnation to claim, in hex (default: a random one per datagram, a blind forger).") var incarnation: String?
    @Option(help: "Datagrams to send.") var count: UInt64 = 12_000_000
    @Option(help: "Datagrams per second (0 = as fast as the ring takes them).") var rate = 200_000
    @Option(help: "Upper bound on the run time.") var seconds = 60.0
    @Flag(help: "Print the rate once a second on standard error.") var progress = false

    func run() throws {
        guard let mac = MACAddress(destinationMAC) else { throw ValidationError("--destination-mac: not a MAC address") }
        guard let from = IPv4Address(source), let to = IPv4Address(destination) else {
            throw ValidationError("--source and --destination must be IPv4 addresses")
        }
        let benchmarking = IPv4Address(198, 18, 0, 0).rawValue >> 17
        guard from.rawValue >> 17 == benchmarking, to.rawValue >> 17 == benchmarking else {
            throw ValidationError("--source and --destination must be in 198.18.0.0/15, the range set aside for benchmarks")
        }
        let claimed = try incarnation.map { text in
            guard let value = UInt64(text, radix: 16) else { throw ValidationError("--incarnation: not a hexadecimal number") }
            return value
        }
        let sender = try NetworkInterface(named: interface)
        var forgery = SyncForgery(sourceMAC: sender.mac, destinationMAC: mac, source: from, destination: to,
                                  ports: [heartbeatPort, syncPort], heartbeatPort: heartbeatPort, nodeID: nodeID,
                                  seed: UInt64(truncatingIfNeeded: Lab.monotonicNanoseconds()))
        forgery.incarnation = claimed
        var generator = TrafficSender(count: count, rate: rate, seconds: seconds)
        if let problem = generator.problem { throw ValidationError(problem) }
        generator.progress = progress
        let result = try generator.send(&forgery, on: sender)
        print("sent \(result.frames) forged datagrams in \(String(format: "%.2f", result.seconds)) s")
    }
}
