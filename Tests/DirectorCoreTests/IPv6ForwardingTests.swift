import DirectorCore
import DirectorWire
import Testing

private let clientMAC = MACAddress("02:00:00:00:01:01")!
private let vipMAC = MACAddress("02:00:00:00:00:64")!
private let backMAC = MACAddress("02:00:00:00:00:b0")!
private let client = IPv6Address("2001:2:0:1::10")!
private let vip = IPv6Address("2001:2::100")!
private let vip4 = IPv4Address(198, 18, 0, 100)
private let toVIP = PacketBuilder().ethernet(from: clientMAC, to: vipMAC).ipv6(from: client, to: vip)

private func servers(firstID: UInt16 = 1) -> [RealServer] {
    (0..<3).map { index in
        RealServer(id: firstID + UInt16(index), address: .v6(IPv6Address(high: 0x2001_0002_0000_0002, low: UInt64(0x11 + index))), port: 80,
                   weight: 1, mac: MACAddress(rawValue: 0x02_00_00_00_02_11 + UInt64(index)))
    }
}

/// A forwarder with IPv6 services (TCP 80 by mh, UDP 53 by rr, TCP 443 by NAT to port 8443)
/// beside an IPv4 one on the same port.
private let gatewayMAC = MACAddress("02:18:00:00:02:fe")!
private let gateway6 = IPv6Address("2001:2:0:2::fe")!

private func makeForwarder(resetting: Set<UInt16> = [], natTransport: TransportProtocol = .tcp, gateway: NATGateway? = nil) -> Forwarder<RecordingSink> {
    let nat = servers(firstID: 20).map { RealServer(id: $0.id, address: $0.address, port: 8443, weight: 1, mac: $0.mac) }
    let services = ServiceTable(services: [
        VirtualService(address: .v6(vip), port: 80, transport: .tcp, pool: servers(), scheduler: .maglev),
        VirtualService(address: .v6(vip), port: 53, transport: .udp, pool: servers(firstID: 10), scheduler: .roundRobin),
        VirtualService(address: .v6(vip), port: 443, transport: natTransport, forwarding: .nat, pool: nat, scheduler: .roundRobin),
        VirtualService(address: vip4, port: 80, transport: .tcp,
                       pool: [RealServer(id: 30, address: IPv4Address(198, 18, 2, 11), port: 80, weight: 1, mac: MACAddress(rawValue: 0x02_00_00_00_02_30))],
                       scheduler: .roundRobin),
    ], resetting: resetting)
    return Forwarder(table: ConnectionTable<IPv4Address>(capacity: 64)!, table6: ConnectionTable<IPv6Address>(capacity: 64)!, services: services,
                     settings: ForwarderSettings(virtualMAC: vipMAC, backMAC: backMAC, gateway: gateway), changes: RecordingSink())
}

/// Whether the TCP or UDP checksum of an IPv6 frame without extension headers verifies.
private func transportChecksumVerifies(_ frame: [UInt8]) -> Bool {
    let source = frame.withUnsafeBytes { $0.bytes.ipv6Address(at: 14 + 8) }
    let destination = frame.withUnsafeBytes { $0.bytes.ipv6Address(at: 14 + 24) }
    let length = Int(frame[18]) << 8 | Int(frame[19])
    let pseudo = InternetChecksum.pseudoHeaderSum(source: source, destination: destination, length: UInt32(length), nextHeader: frame[20])
    return frame[54..<54 + length].withUnsafeBytes { InternetChecksum.sum($0.bytes, initial: pseudo) } == 0xFFFF
}

struct IPv6Fixture: Sendable, CustomTestStringConvertible {
    let name: String
    let frame: [UInt8]
    let counter: String
    var testDescription: String { name }
}

/// Frames no IPv6 service takes, each counted under its own name.
private let refused: [IPv6Fixture] = [
    .init(name: "another MAC", frame: toVIP.ethernet(from: clientMAC, to: backMAC).tcp(sourcePort: 40000, destinationPort: 80, flags: .syn).build(),
          counter: "drop_not_addressed_to_director"),
    .init(name: "a port without a service", frame: toVIP.tcp(sourcePort: 40000, destinationPort: 81, flags: .syn).build(),
          counter: "drop_no_virtual_service"),
    .init(name: "the IPv4 VIP's address family is not this one", frame: PacketBuilder().ethernet(from: clientMAC, to: vipMAC)
        .ipv6(from: client, to: IPv6Address("::ffff:198.18.0.100")!).tcp(sourcePort: 40000, destinationPort: 80, flags: .syn).build(),
          counter: "drop_no_virtual_service"),
    .init(name: "a multicast source", frame: toVIP.ipv6(from: IPv6Address("ff02::1")!, to: vip).tcp(sourcePort: 40000, destinationPort: 80, flags: .syn).build(),
          counter: "drop_source_address_impossible"),
    .init(name: "the loopback source", frame: toVIP.ipv6(from: IPv6Address("::1")!, to: vip).tcp(sourcePort: 40000, destinationPort: 80, flags: .syn).build(),
          counter: "drop_source_address_impossible"),
    .init(name: "the unspecified source", frame: toVIP.ipv6(from: .zero, to: vip).tcp(sourcePort: 40000, destinationPort: 80, flags: .syn).build(),
          counter: "drop_source_address_impossible"),
    .init(name: "an IPv4-mapped source", frame: toVIP.ipv6(from: IPv6Address("::ffff:198.18.1.10")!, to: vip)
        .tcp(sourcePort: 40000, destinationPort: 80, flags: .syn).build(), counter: "drop_source_address_impossible"),
    .init(name: "the VIP as source", frame: toVIP.ipv6(from: vip, to: vip).tcp(sourcePort: 40000, destinationPort: 80, flags: .syn).build(),
          counter: "drop_source_address_impossible"),
    .init(name: "hop limit 0", frame: toVIP.ipv6(from: client, to: vip, hopLimit: 0).tcp(sourcePort: 40000, destinationPort: 80, flags: .syn).build(),
          counter: "drop_ttl_zero"),
    .init(name: "port 0", frame: toVIP.tcp(sourcePort: 0, destinationPort: 80, flags: .syn).build(), counter: "drop_port_zero"),
    .init(name: "SYN+FIN", frame: toVIP.tcp(sourcePort: 40000, destinationPort: 80, flags: [.syn, .fin]).build(), counter: "drop_tcp_flags_impossible"),
    .init(name: "a later fragment", frame: toVIP.udp(sourcePort: 5000, destinationPort: 53).payload([1, 2, 3])
        .with { $0.extensionHeaders = [(number: 44, body: [0, 0, 0x11, 0, 0, 0, 7])] }.build(), counter: "malformed_fragment"),
]

@Suite("IPv6 forwarding")
struct IPv6ForwardingTests {
    @Test("a SYN to an IPv6 VIP goes to a real server by MAC alone, in the IPv6 table; its connection follows")
    func directRouting() {
        var forwarder = makeForwarder()
        let syn = toVIP.tcp(sourcePort: 40000, destinationPort: 80, flags: .syn).build()
        let (verdict, sent) = forwarder.run(syn)
        #expect(verdict == .transmitOnBack(length: syn.count, checksum: TransportChecksum(start: 54, fieldOffset: 16, end: syn.count)))
        let server = servers().first { Array(sent[0..<6]) == $0.mac.octets }
        #expect(server != nil && Array(sent[6..<12]) == backMAC.octets && Array(sent[12...]) == Array(syn[12...]), "only the MACs change")
        #expect(forwarder.table6.count == 1 && forwarder.table.count == 0)
        #expect(forwarder.changes.changes6.count == 1 && forwarder.changes.changes.isEmpty)
        guard case .created(let entry) = forwarder.changes.changes6.first else { Issue.record("no creation reported"); return }
        #expect(entry.key == FlowKey(clientAddress: client, clientPort: 40000, virtualAddress: vip, virtualPort: 80, transport: .tcp))
        // The handshake's ACK, then data: the same server, ESTABLISHED, proven.
        for (flags, payload) in [(TCPFlags.ack, 0), ([.ack, .psh], 100)] {
            let frame = toVIP.tcp(sourcePort: 40000, destinationPort: 80, flags: flags).payload([UInt8](repeating: 0x61, count: payload)).build()
            let (next, out) = forwarder.run(frame, now: 2_000)
            #expect(next != .drop && Array(out[0..<6]) == Array(sent[0..<6]))
        }
        let slot = forwarder.table6.find(entry.key, hash: entry.key.tableHash)
        #expect(slot.map { forwarder.table6[$0].state } == .established && slot.map { forwarder.table6[$0].isProven } == true)
        #expect(forwarder.counter("connections_proven") == 1)
        // A first fragment with the whole UDP header goes where its flow goes; UDP, and the
        // IPv4 service on the same port, beside it.
        let firstFragment = toVIP.udp(sourcePort: 5001, destinationPort: 53).payload([1, 2, 3])
            .with { $0.extensionHeaders = [(number: 44, body: [0, 0, 1, 0, 0, 0, 7])]; $0.udpLengthOverride = 3000 }.build()
        #expect(forwarder.run(firstFragment).0 != .drop)
        #expect(forwarder.run(toVIP.udp(sourcePort: 5000, destinationPort: 53).payload([1, 2]).build()).0 != .drop)
        let v4 = PacketBuilder().ethernet(from: clientMAC, to: vipMAC).ipv4(from: IPv4Address(198, 18, 1, 10), to: vip4)
            .tcp(sourcePort: 40000, destinationPort: 80, flags: .syn).build()
        #expect(forwarder.run(v4).0 != .drop && forwarder.table.count == 1 && forwarder.table6.count == 3)
    }

    @Test("refused IPv6 frames are counted by reason", arguments: refused)
    func refusedFrames(_ fixture: IPv6Fixture) {
        var forwarder = makeForwarder()
        #expect(forwarder.run(fixture.frame).0 == .drop)
        #expect(forwarder.counter(fixture.counter) == 1, "\(fixture.counter)")
        #expect(forwarder.table6.count == 0)
    }

    @Test("a Neighbor Solicitation for an IPv6 VIP is answered with the VIP's MAC; for another address, dropped")
    func neighborDiscovery() {
        var forwarder = makeForwarder()
        func solicitation(for target: IPv6Address) -> [UInt8] {
            PacketBuilder().ethernet(from: clientMAC, to: target.solicitedNodeMulticast.multicastMAC)
                .ipv6(from: client, to: target.solicitedNodeMulticast, hopLimit: 255)
                .with { $0.transport = .other(protocolNumber: 58) }.payload([135, 0, 0, 0, 0, 0, 0, 0] + target.octets + [1, 1] + clientMAC.octets)
                .build()
        }
        let (verdict, answer) = forwarder.run(solicitation(for: vip))
        #expect(verdict == .answer(length: 14 + 40 + 32))
        #expect(Array(answer[0..<6]) == clientMAC.octets && Array(answer[6..<12]) == vipMAC.octets && answer[54] == 136)
        #expect(Array(answer[62..<78]) == vip.octets && Array(answer[80..<86]) == vipMAC.octets)
        #expect(forwarder.counter("neighbor_advertisements_sent") == 1)
        #expect(forwarder.run(solicitation(for: IPv6Address("2001:2::7")!)).0 == .drop)
        #expect(forwarder.counter("drop_neighbor_solicitation_not_for_virtual_address") == 1)
        // Duplicate address detection (from ::, no link-layer option): shorter than the answer.
        let detection = PacketBuilder().ethernet(from: clientMAC, to: vip.solicitedNodeMulticast.multicastMAC)
            .ipv6(from: .zero, to: vip.solicitedNodeMulticast, hopLimit: 255)
            .with { $0.transport = .other(protocolNumber: 58) }.payload([135, 0, 0, 0, 0, 0, 0, 0] + vip.octets).build()
        #expect(forwarder.run(detection).0 == .drop && forwarder.counter("drop_neighbor_solicitation_too_short_to_answer") == 1)
    }

    @Test("NAT: a UDP datagram without a checksum keeps none; one with a checksum still verifies")
    func translationOfUDP() {
        var forwarder = makeForwarder(natTransport: .udp)
        let datagram = toVIP.udp(sourcePort: 5000, destinationPort: 443).payload([1, 2, 3, 4]).build()
        let (_, sent) = forwarder.run(datagram)
        #expect(transportChecksumVerifies(sent) && sent[60...61] != [0, 0])
        var unchecked = datagram
        unchecked[60] = 0
        unchecked[61] = 0
        let (_, sentUnchecked) = forwarder.run(unchecked)
        #expect(sentUnchecked[60...61] == [0, 0] && sentUnchecked[56...57] == [0x20, 0xFB])
    }

    @Test("NAT: the destination becomes the real server's address and port; the TCP checksum still verifies")
    func translation() {
        var forwarder = makeForwarder()
        let syn = toVIP.tcp(sourcePort: 40000, destinationPort: 443, flags: .syn).payload([1, 2, 3]).build()
        #expect(transportChecksumVerifies(syn))
        let (verdict, sent) = forwarder.run(syn)
        #expect(verdict != .drop)
        let destination = sent.withUnsafeBytes { $0.bytes.ipv6Address(at: 14 + 24) }
        #expect(servers(firstID: 20).contains { $0.address == destination }, "\(destination)")
        #expect(sent[56] == 0x20 && sent[57] == 0xFB, "port 8443")
        #expect(transportChecksumVerifies(sent))
    }

    @Test("NAT replies over IPv6: a server's reply leaves as VIP:port to the client; its ICMPv6 error too; the gateway is answered for by Neighbor Discovery")
    func translatedReplies() throws {
        var forwarder = makeForwarder(gateway: NATGateway(address: IPv4Address(198, 18, 2, 254), address6: gateway6, mac: gatewayMAC))
        let (_, sent) = forwarder.run(toVIP.tcp(sourcePort: 40000, destinationPort: 443, flags: .syn).build())
        let server = sent.withUnsafeBytes { $0.bytes.ipv6Address(at: 14 + 24) }
        let serverMAC = MACAddress(rawValue: sent.withUnsafeBytes { $0.bytes.macAddress(at: 0) }.rawValue)
        let fromServer = PacketBuilder().ethernet(from: serverMAC, to: gatewayMAC).ipv6(from: server, to: client)

        let reply = fromServer.tcp(sourcePort: 8443, destinationPort: 40000, flags: [.syn, .ack]).payload([9, 9]).build()
        let (verdict, out) = forwarder.runReply(reply)
        #expect(verdict == .transmitOnFront(length: reply.count, checksum: TransportChecksum(start: 54, fieldOffset: 16, end: reply.count)))
        #expect(Array(out[0..<6]) == clientMAC.octets && Array(out[6..<12]) == vipMAC.octets, "to the clients' next hop, from the VIP's MAC")
        #expect(out.withUnsafeBytes { $0.bytes.ipv6Address(at: 22) } == vip && out[54...55] == [0x01, 0xBB], "from VIP:443")
        #expect(transportChecksumVerifies(out))
        #expect(forwarder.runReply(fromServer.tcp(sourcePort: 8443, destinationPort: 40001, flags: .ack).build()).0 == .drop)
        #expect(forwarder.counter("drop_reply_without_connection") == 1)

        // "Port unreachable" from the server's side about the client's packet to it.
        let quoted = PacketBuilder().ipv6(from: client, to: server).tcp(sourcePort: 40000, destinationPort: 8443, flags: .ack).build()
        let unreachable = fromServer.with { $0.transport = .other(protocolNumber: 58) }.payload([1, 4, 0, 0, 0, 0, 0, 0] + quoted[14...]).build()
        let (errorVerdict, relayed) = forwarder.runReply(unreachable)
        #expect(errorVerdict != .drop && forwarder.counter("icmp_errors_relayed") == 1)
        #expect(relayed.withUnsafeBytes { $0.bytes.ipv6Address(at: 22) } == vip, "the outer source is the VIP")
        #expect(relayed.withUnsafeBytes { $0.bytes.ipv6Address(at: 62 + 24) } == vip && relayed[62 + 40 + 2] == 0x01 && relayed[62 + 40 + 3] == 0xBB,
                "the quoted destination is VIP:443")
        let length = relayed.count - 54
        let pseudo = InternetChecksum.pseudoHeaderSum(source: vip, destination: client, length: UInt32(length), nextHeader: 58)
        #expect(relayed[54...].withUnsafeBytes { InternetChecksum.sum($0.bytes, initial: pseudo) } == 0xFFFF, "the ICMPv6 checksum verifies")

        func solicitation(for target: IPv6Address) -> [UInt8] {
            PacketBuilder().ethernet(from: serverMAC, to: target.solicitedNodeMulticast.multicastMAC)
                .ipv6(from: server, to: target.solicitedNodeMulticast, hopLimit: 255)
                .with { $0.transport = .other(protocolNumber: 58) }.payload([135, 0, 0, 0, 0, 0, 0, 0] + target.octets + [1, 1] + serverMAC.octets)
                .build()
        }
        let (answerVerdict, answer) = forwarder.runReply(solicitation(for: gateway6))
        #expect(answerVerdict == .answer(length: 14 + 40 + 32))
        #expect(Array(answer[0..<6]) == serverMAC.octets && Array(answer[62..<78]) == gateway6.octets && Array(answer[80..<86]) == gatewayMAC.octets)
        #expect(forwarder.runReply(solicitation(for: vip)).0 == .drop, "the VIP is the front's, not the back's")
    }

    @Test("a connection of a failed server in a resetting service: the client gets a reset that verifies")
    func reset() {
        var forwarder = makeForwarder()
        let syn = toVIP.tcp(sourcePort: 40000, destinationPort: 80, flags: .syn).build()
        _ = forwarder.run(syn)
        guard case .created(let entry) = forwarder.changes.changes6.first else { Issue.record("no connection"); return }
        var failed = makeForwarder(resetting: [entry.realServerID])
        _ = failed.run(syn)
        let (verdict, answer) = failed.run(toVIP.tcp(sourcePort: 40000, destinationPort: 80, flags: .ack, sequence: 2, acknowledgment: 77).build())
        #expect(verdict == .answer(length: 14 + 40 + 20))
        #expect(Array(answer[0..<6]) == clientMAC.octets && answer[20] == 6)
        #expect(answer.withUnsafeBytes { $0.bytes.ipv6Address(at: 22) } == vip && answer.withUnsafeBytes { $0.bytes.ipv6Address(at: 38) } == client)
        #expect(answer[54...55] == [0, 80] && answer[56...57] == [0x9C, 0x40] && answer[67] == TCPFlags.rst.rawValue)
        #expect(Array(answer[58..<62]) == [0, 0, 0, 77], "its sequence is the segment's acknowledgment")
        #expect(transportChecksumVerifies(Array(answer.prefix(74))))
        #expect(failed.counter("connections_reset") == 1 && failed.table6.count == 0)
    }

    @Test("an ICMPv6 packet-too-big about a connection goes to its real server")
    func packetTooBig() {
        var forwarder = makeForwarder()
        let (_, sent) = forwarder.run(toVIP.tcp(sourcePort: 40000, destinationPort: 80, flags: .syn).build())
        let quoted = PacketBuilder().ipv6(from: vip, to: client).tcp(sourcePort: 80, destinationPort: 40000, flags: .ack).build()
        let error = PacketBuilder().ethernet(from: clientMAC, to: vipMAC).ipv6(from: IPv6Address("2001:2::1")!, to: vip)
            .with { $0.transport = .other(protocolNumber: 58) }.payload([2, 0, 0, 0, 0, 0, 5, 0x28] + quoted[14...]).build()
        let (verdict, relayed) = forwarder.run(error)
        #expect(verdict == .transmitOnBack(length: error.count, checksum: TransportChecksum(start: 54, fieldOffset: 2, end: error.count)))
        #expect(Array(relayed[0..<6]) == Array(sent[0..<6]) && Array(relayed[12...]) == Array(error[12...]))
        #expect(forwarder.counter("icmp_errors_relayed") == 1)
        let unknown = PacketBuilder().ipv6(from: vip, to: client).tcp(sourcePort: 80, destinationPort: 40001, flags: .ack).build()
        let stray = PacketBuilder().ethernet(from: clientMAC, to: vipMAC).ipv6(from: IPv6Address("2001:2::1")!, to: vip)
            .with { $0.transport = .other(protocolNumber: 58) }.payload([2, 0, 0, 0, 0, 0, 5, 0x28] + unknown[14...]).build()
        #expect(forwarder.run(stray).0 == .drop && forwarder.counter("drop_icmp_error_without_connection") == 1)
    }

    @Test("a replica from the peer lands in the IPv6 table; the flow's next frame takes it over, to the same server")
    func replicas() {
        var forwarder = makeForwarder()
        let key = FlowKey(clientAddress: client, clientPort: 40000, virtualAddress: vip, virtualPort: 80, transport: .tcp)
        forwarder.apply(.upsert(key: key, state: .established, realServerID: 2, lifetime: 60_000, claimsFlow: true, proven: true), now: 1_000)
        #expect(forwarder.table6.count == 1 && forwarder.counter("replicas_applied") == 1)
        let (verdict, sent) = forwarder.run(toVIP.tcp(sourcePort: 40000, destinationPort: 80, flags: .ack).build(), now: 2_000)
        #expect(verdict != .drop && Array(sent[0..<6]) == servers()[1].mac.octets)
        #expect(forwarder.counter("replicas_taken_over") == 1)
        forwarder.apply(.remove(key: key), now: 3_000)
        #expect(forwarder.table6.count == 1, "its own entry now: a removal touches replicas only")
        forwarder.expire(now: 10_000_000, budget: 1_000)
        #expect(forwarder.table6.count == 0 && forwarder.counter("connections_expired") == 1)
    }
}
