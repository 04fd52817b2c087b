import DirectorCore
import DirectorWire

/// One fuzzer input through `Forwarder.process`: a sequence of frames from the front, each with
/// the time that passed before it, against a fresh forwarder (so any input replays alone).
///
/// Chunk control byte (see `FuzzInput`): bits 0–5 are the time step, in 10 ms units when bit 6
/// is clear and 30 s units when it is set (timeouts of every state are reachable); bit 7 runs the
/// expiry sweep before the frame. The chunk's body is the frame, from the front; a body whose
/// first byte is `backMarker` is a frame from the back (a NAT reply) after that byte.
///
/// Beyond "no crash", it checks what a caller of `process` relies on: a verdict never names more
/// bytes than the frame has, and the table never holds more entries than its capacity.
public enum ForwarderFuzzing {
    public static let scratchLength = 2048
    static let backMarker: UInt8 = 0xBA

    public static func run(_ input: UnsafeRawBufferPointer) {
        var forwarder = FuzzedFarm.forwarder()
        var chunks = FuzzInput(input)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: scratchLength, alignment: 64)
        defer { scratch.deallocate() }
        var now: UInt64 = 1_000_000_000
        while let chunk = chunks.next() {
            let step = UInt64(chunk.control & 0x3F)
            now += chunk.control & 0x40 == 0 ? step * 10_000_000 : step * 30_000_000_000
            if chunk.control & 0x80 != 0 { forwarder.expire(now: now, budget: 64) }
            let fromBack = chunk.body.first == backMarker
            let body = fromBack ? chunk.body.dropFirst() : chunk.body[...]
            let length = min(body.count, scratchLength)
            scratch.copyMemory(from: UnsafeRawBufferPointer(rebasing: body.prefix(length)))
            var frame = UnsafeMutableRawBufferPointer(rebasing: scratch[..<length]).mutableBytes
            let pending = chunk.control & 1 == 1
            let verdict = fromBack ? forwarder.processReply(&frame, now: now, checksumPending: pending)
                                   : forwarder.process(&frame, now: now, checksumPending: pending)
            switch verdict {
            case .transmitOnBack(let sent, _), .transmitOnFront(let sent, _), .answer(let sent):
                precondition(sent <= length, "a verdict of \(sent) bytes for a \(length)-byte frame")
            case .drop:
                break
            }
            precondition(forwarder.table.count <= forwarder.table.capacity, "the table holds more than its capacity")
            precondition(forwarder.table6.count <= forwarder.table6.capacity, "the IPv6 table holds more than its capacity")
        }
    }

    /// Seeds: the conversations an honest client has, so mutation starts from frames that reach
    /// every stage of the pipeline.
    public static func seeds() -> [(name: String, bytes: [UInt8])] {
        func frame(_ port: UInt16, _ flags: TCPFlags, payload: Int = 0, clientPort: UInt16 = 40000) -> [UInt8] {
            PacketBuilder().ethernet(from: FuzzedFarm.clientMAC, to: FuzzedFarm.virtualMAC)
                .ipv4(from: IPv4Address(198, 18, 1, 10), to: FuzzedFarm.virtualAddress)
                .tcp(sourcePort: clientPort, destinationPort: port, flags: flags)
                .payload([UInt8](repeating: 0x61, count: payload)).build()
        }
        func datagram(_ port: UInt16, payload: Int) -> [UInt8] {
            PacketBuilder().ethernet(from: FuzzedFarm.clientMAC, to: FuzzedFarm.virtualMAC)
                .ipv4(from: IPv4Address(198, 18, 1, 11), to: FuzzedFarm.virtualAddress)
                .udp(sourcePort: 5353, destinationPort: port)
                .payload([UInt8](repeating: 0x62, count: payload)).build()
        }
        let arp = PacketBuilder.arpRequest(from: FuzzedFarm.clientMAC, senderAddress: IPv4Address(198, 18, 0, 1),
                                           for: FuzzedFarm.virtualAddress)
        var seeds: [(String, [UInt8])] = []
        for (port, transport, _) in FuzzedFarm.listeners {
            var conversation: [(control: UInt8, body: [UInt8])]
            if transport == .tcp {
                conversation = [(1, frame(port, .syn)), (1, frame(port, .ack)), (1, frame(port, [.ack, .psh], payload: 100)),
                                (0x45, frame(port, [.fin, .ack])), (0x81, frame(port, .ack))]
            } else {
                conversation = [(1, datagram(port, payload: 40)), (2, datagram(port, payload: 40)), (0xC5, datagram(port, payload: 8))]
            }
            seeds.append(("conversation-\(transport)-\(port)", FuzzInput.encode(conversation)))
        }
        seeds.append(("arp-request", FuzzInput.encode([(control: 0, body: arp)])))
        let tagged = PacketBuilder.arpRequest(from: FuzzedFarm.clientMAC, senderAddress: IPv4Address(198, 18, 0, 1),
                                              for: FuzzedFarm.virtualAddress, vlanID: 7)
        seeds.append(("arp-request-vlan", FuzzInput.encode([(control: 0, body: tagged)])))
        // NAT: a connection through a translating service and the server's replies.
        let server = FuzzedFarm.pool[0], serverAddress = FuzzedFarm.serverAddress(0)
        func reply(_ flags: TCPFlags, payload: Int = 0) -> [UInt8] {
            [backMarker] + PacketBuilder().ethernet(from: server.mac, to: FuzzedFarm.gateway.mac)
                .ipv4(from: serverAddress, to: IPv4Address(198, 18, 1, 10))
                .tcp(sourcePort: 9443, destinationPort: 40000, flags: flags)
                .payload([UInt8](repeating: 0x63, count: payload)).build()
        }
        let gatewayARP = [backMarker] + PacketBuilder.arpRequest(from: server.mac, senderAddress: serverAddress, for: FuzzedFarm.gateway.address)
        seeds.append(("nat", FuzzInput.encode([(1, frame(8443, .syn)), (1, reply([.syn, .ack])), (1, frame(8443, .ack)),
                                               (2, frame(8443, [.ack, .psh], payload: 100)), (1, reply([.ack, .psh], payload: 300)),
                                               (0, gatewayARP)])))
        seeds.append(("reset", FuzzInput.encode([(control: 0, body: frame(80, .syn)), (control: 1, body: frame(80, .rst))])))
        seeds += seeds6()
        // More flows than the table holds: reclaiming is reached.
        let fill = (0..<20).map { (control: UInt8(1), body: frame(443, .syn, clientPort: 30000 + UInt16($0))) }
        seeds.append(("table-full", FuzzInput.encode(fill)))
        return seeds
    }

    /// IPv6: a DR conversation behind extension headers, NAT with the server's replies and an
    /// ICMPv6 error each way, Neighbor Discovery for the VIP and the gateway.
    static func seeds6() -> [(name: String, bytes: [UInt8])] {
        let client = IPv6Address("2001:2:0:1::10")!, router = IPv6Address("2001:2::1")!
        let toVIP = PacketBuilder().ethernet(from: FuzzedFarm.clientMAC, to: FuzzedFarm.virtualMAC).ipv6(from: client, to: FuzzedFarm.virtualAddress6)
        func segment(_ port: UInt16, _ flags: TCPFlags, payload: Int = 0) -> [UInt8] {
            toVIP.tcp(sourcePort: 40000, destinationPort: port, flags: flags).payload([UInt8](repeating: 0x61, count: payload)).build()
        }
        func icmp6(_ builder: PacketBuilder, _ body: [UInt8]) -> [UInt8] {
            builder.with { $0.transport = .other(protocolNumber: 58) }.payload(body).build()
        }
        func solicitation(for target: IPv6Address, from mac: MACAddress, address: IPv6Address) -> [UInt8] {
            icmp6(PacketBuilder().ethernet(from: mac, to: target.solicitedNodeMulticast.multicastMAC)
                .ipv6(from: address, to: target.solicitedNodeMulticast, hopLimit: 255),
                  [135, 0, 0, 0, 0, 0, 0, 0] + target.octets + [1, 1] + mac.octets)
        }
        let behindHeaders = toVIP.with { $0.extensionHeaders = [(0, [0, 1, 4, 0, 0, 0, 0]), (60, [0, 1, 4, 0, 0, 0, 0])] }
            .tcp(sourcePort: 40001, destinationPort: 80, flags: .syn).build()
        let tooBig = icmp6(PacketBuilder().ethernet(from: FuzzedFarm.clientMAC, to: FuzzedFarm.virtualMAC).ipv6(from: router, to: FuzzedFarm.virtualAddress6),
                           [2, 0, 0, 0, 0, 0, 5, 0x28] + PacketBuilder().ipv6(from: FuzzedFarm.virtualAddress6, to: client)
                               .tcp(sourcePort: 80, destinationPort: 40000, flags: .ack).build()[14...])
        let server = FuzzedFarm.serverAddress6(0), serverMAC = MACAddress(rawValue: 0x02_00_00_00_06_00)
        let fromServer = PacketBuilder().ethernet(from: serverMAC, to: FuzzedFarm.gateway.mac).ipv6(from: server, to: client)
        let reply = [backMarker] + fromServer.tcp(sourcePort: 9443, destinationPort: 40000, flags: [.syn, .ack]).build()
        let unreachable = [backMarker] + icmp6(fromServer, [1, 4, 0, 0, 0, 0, 0, 0] + PacketBuilder().ipv6(from: client, to: server)
            .tcp(sourcePort: 40000, destinationPort: 9443, flags: .ack).build()[14...])
        let gatewaySolicitation = [backMarker] + solicitation(for: FuzzedFarm.gateway.address6!, from: serverMAC, address: server)
        return [
            ("ipv6-conversation", FuzzInput.encode([(1, segment(80, .syn)), (1, segment(80, .ack)), (1, segment(80, [.ack, .psh], payload: 100)),
                                                    (1, tooBig), (0x45, segment(80, [.fin, .ack])), (1, behindHeaders)])),
            ("ipv6-nat", FuzzInput.encode([(1, segment(8443, .syn)), (1, reply), (1, segment(8443, .ack)), (1, unreachable), (0, gatewaySolicitation)])),
            ("ipv6-neighbor-discovery", FuzzInput.encode([(0, solicitation(for: FuzzedFarm.virtualAddress6, from: FuzzedFarm.clientMAC, address: router))])),
        ]
    }
}
