import ArgumentParser
import DirectorLab
import DirectorWire
import Foundation
import PacketIO

/// Sends a bounded number of TCP SYNs to the VIP from many client ports, through the project's
/// own transmit ring. Run it inside a lab namespace (`ip netns exec <prefix>-router …`); it stops
/// by itself after `--count` frames or `--seconds`, whichever comes first.
struct Flood: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send a bounded burst of SYNs to the lab's VIP (run inside a lab namespace).")
    @Option(help: "Interface to send on.") var interface = "front"
    @Option(help: "Destination MAC (the VIP's).") var destinationMAC: String
    @Option(help: "Source address (must be in 198.18.0.0/15); with --flows above 64,512 the next addresses too.") var source = "198.18.1.10"
    @Option(help: "Distinct flows (client address and port), sent round and round.") var flows = 4096
    @Option(help: "Destination address (must be in 198.18.0.0/15).") var destination = Lab.virtualAddress
    @Option(help: "Destination TCP port.") var port = 80
    @Option(help: "Frames to send.") var count = 200_000
    @Option(help: "Frames per second (0 = as fast as the ring takes them).") var rate = 100_000
    @Option(help: "Upper bound on the run time.") var seconds = 20.0
    @Flag(inversion: .prefixedNo, help: "Send with a virtio header (hdr_len = frame length).") var virtioHeader = true

    func run() throws {
        guard let mac = MACAddress(destinationMAC) else { throw ValidationError("--destination-mac: not a MAC address") }
        guard let from = IPv4Address(source), let to = IPv4Address(destination),
              [from, to].allSatisfy({ $0.rawValue >> 17 == IPv4Address(198, 18, 0, 0).rawValue >> 17 }) else {
            throw ValidationError("--source and --destination must be addresses in 198.18.0.0/15")
        }
        guard (1...1_000_000_000).contains(count), seconds > 0, seconds <= 3600 else { throw ValidationError("--count 1…1,000,000,000 and --seconds up to 3600") }
        guard (1...258_048).contains(flows) else { throw ValidationError("--flows 1…258,048 (four addresses × 64,512 ports)") }
        let sender = try NetworkInterface(named: interface)
        var ring = try PacketTransmitRing(interface: sender, useVirtioHeader: virtioHeader)
        // `flows` distinct flows, sent round and round: ports 1024… of the source address, then
        // of the next addresses.
        let frames = (0..<flows).map { n in
            PacketBuilder().ethernet(from: sender.mac, to: mac).ipv4(from: IPv4Address(rawValue: from.rawValue + UInt32(n / 64_512)), to: to)
                .tcp(sourcePort: UInt16(1024 + n % 64_512), destinationPort: UInt16(port), flags: .syn, sequence: UInt32(truncatingIfNeeded: n)).build()
        }
        let start = Date()
        var sent = 0
        while sent < count && Date().timeIntervalSince(start) < seconds {
            let due = rate == 0 ? count : min(count, Int(Date().timeIntervalSince(start) * Double(rate)) + 64)
            while sent < due {
                let queued = frames[sent % frames.count].withUnsafeBytes { ring.enqueue($0.bytes) }
                if !queued { break }
                sent += 1
                if sent % 64 == 0 { ring.flush() }
            }
            ring.flush()
            if rate != 0 { usleep(200) }
        }
        ring.flush()
        print("sent \(sent) frames in \(String(format: "%.2f", Date().timeIntervalSince(start))) s")
    }
}
