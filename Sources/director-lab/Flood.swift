import ArgumentParser
import DirectorLab
import DirectorWire
import Foundation
import LoadGeneration
import PacketIO

/// Sends a bounded number of TCP SYNs to the VIP from many client ports, through the benchmark's
/// generator (`TrafficSender`, pattern syn). Run it inside a lab namespace
/// (`ip netns exec <prefix>-router …`); it stops by itself after `--count` frames or `--seconds`,
/// whichever comes first.
struct Flood: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send a bounded burst of SYNs to the lab's VIP (run inside a lab namespace).")
    @Option(help: "Interface to send on.") var interface = "front"
    @Option(help: "Destination MAC (the VIP's).") var destinationMAC: String
    @Option(help: "First source address (in 198.18.0.0/15); flows take 64,512 ports per address, then the next address.") var source = "198.18.1.10"
    @Option(help: "Distinct flows (client address and port), sent round and round.") var flows = 4096
    @Option(help: "Destination address (in 198.18.0.0/15).") var destination = Lab.virtualAddress
    @Option(help: "Destination TCP port.") var port: UInt16 = 80
    @Option(help: "Frames to send.") var count: UInt64 = 200_000
    @Option(help: "Frames per second (0 = as fast as the ring takes them).") var rate = 100_000
    @Option(help: "Upper bound on the run time.") var seconds = 20.0
    @Flag(inversion: .prefixedNo, help: "Send with a virtio header (hdr_len = frame length).") var virtioHeader = true

    func run() throws {
        guard let mac = MACAddress(destinationMAC) else { throw ValidationError("--destination-mac: not a MAC address") }
        guard let from = IPv4Address(source), let to = IPv4Address(destination) else {
            throw ValidationError("--source and --destination must be IPv4 addresses")
        }
        // The lab's client namespace holds four addresses from 198.18.1.10 on: the real servers'
        // answers to these flows have somewhere to go.
        guard (1...4 * TrafficPlan.portsPerAddress).contains(flows) else { throw ValidationError("--flows 1…258,048 (four addresses × 64,512 ports)") }
        let sender = try NetworkInterface(named: interface)
        let plan = TrafficPlan(pattern: .syn, flows: flows, firstClient: from, destination: to, destinationPort: port,
                               sourceMAC: sender.mac, destinationMAC: mac)
        if let problem = plan.problem() { throw ValidationError(problem) }
        var generator = TrafficSender(count: count, rate: rate, seconds: seconds)
        generator.virtioHeader = virtioHeader
        if let problem = generator.problem { throw ValidationError(problem) }
        let result = try generator.send(plan, on: sender)
        print("sent \(result.frames) frames in \(String(format: "%.2f", result.seconds)) s")
    }
}
