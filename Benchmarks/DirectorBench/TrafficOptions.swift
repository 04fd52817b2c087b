import ArgumentParser
import DirectorWire
import LoadGeneration

/// The options that describe a plan's traffic: the generator and the sink must be given the same.
struct TrafficOptions: ParsableArguments {
    @Option(help: "established | syn | tcp-flows | udp | syn-then-ack | ack (the last two: spoofed handshakes, for floods).") var pattern: TrafficPattern = .established
    @Option(help: "Flows sent round and round (for tcp-flows: open at once).") var flows = 10_000
    @Option(help: "Data segments between SYN and FIN (tcp-flows).") var segments = 8
    @Option(help: "Frame length without FCS (0 = the shortest that carries the stamp: 66 TCP, 54 UDP).") var frameSize = 0
    @Option(help: "The service's address (in 198.18.0.0/15).") var destination = "198.18.0.100"
    @Option(help: "The service's port.") var port: UInt16 = 80
    @Option(help: "The first client address; flows take 64,512 ports per address.") var firstClient = "198.19.0.1"

    func plan(sourceMAC: MACAddress = .zero, destinationMAC: MACAddress = .zero) throws -> TrafficPlan {
        guard let destinationAddress = IPv4Address(destination), let client = IPv4Address(firstClient) else {
            throw ValidationError("--destination and --first-client must be IPv4 addresses")
        }
        let plan = TrafficPlan(pattern: pattern, flows: flows, segmentsPerFlow: segments, frameLength: frameSize, firstClient: client,
                               destination: destinationAddress, destinationPort: port, sourceMAC: sourceMAC, destinationMAC: destinationMAC)
        if let problem = plan.problem() { throw ValidationError(problem) }
        return plan
    }

    /// The same options as arguments, to hand to a generator or sink in another namespace.
    var arguments: [String] {
        ["--pattern", pattern.rawValue, "--flows", String(flows), "--segments", String(segments), "--frame-size", String(frameSize),
         "--destination", destination, "--port", String(port), "--first-client", firstClient]
    }
}

extension TrafficPattern: ExpressibleByArgument {}
