import DirectorCore
import DirectorWire
import Testing

private let clientMAC = MACAddress("02:00:00:00:01:01")!
private let vipMAC = MACAddress("02:00:00:00:00:64")!
private let backMAC = MACAddress("02:00:00:00:00:b0")!
private let gateway = NATGateway(address: IPv4Address(198, 18, 2, 254), mac: MACAddress("02:00:00:00:02:fe")!)
private let client = IPv4Address(198, 18, 1, 10)
private let vip = IPv4Address(198, 18, 0, 100)
private let servers: [RealServer] = (0..<3).map { index in
    RealServer(id: UInt16(index + 1), address: IPv4Address(198, 18, 2, UInt8(11 + index)), port: 8080, weight: 1,
               mac: MACAddress(rawValue: 0x02_00_00_00_02_00 + UInt64(index)))
}

/// A forwarder with NAT services VIP:80/tcp and VIP:53/udp → each server's 8080, and a direct
/// routing service VIP:443.
private func makeTranslatingForwarder(scheduler: SchedulerKind = .roundRobin) -> Forwarder<RecordingSink> {
    let udpServers = servers.map { RealServer(id: $0.id + 10, address: $0.address, port: 5353, weight: 1, mac: $0.mac) }
    let drServers = servers.map { RealServer(id: $0.id + 20, address: $0.address, port: 443, weight: 1, mac: $0.mac) }
    let services = ServiceTable(services: [
        VirtualService(address: vip, port: 80, transport: .tcp, forwarding: .nat, pool: servers, scheduler: scheduler),
        VirtualService(address: vip, port: 53, transport: .udp, forwarding: .nat, pool: udpServers, scheduler: scheduler),
        VirtualService(address: vip, port: 443, transport: .tcp, pool: drServers, scheduler: scheduler),
    ])
    return Forwarder(table: ConnectionTable<IPv4Address>(capacity: 1024)!, services: services,
                     settings: ForwarderSettings(virtualMAC: vipMAC, backMAC: backMAC, gateway: gateway), changes: RecordingSink())
}

extension Forwarder {
    /// Runs one frame from the back interface through the reply pipeline.
    mutating func runReply(_ frame: [UInt8], now: UInt64 = 1_000, checksumPending: Bool = false) -> (Verdict, [UInt8]) {
        var bytes = frame
        let verdict = bytes.withUnsafeMutableBytes { buffer in
            var span = buffer.mutableBytes
            return processReply(&span, now: now, checksumPending: checksumPending)
        }
        return (verdict, bytes)
    }

    mutating func run(_ frame: [UInt8], now: UInt64 = 1_000, checksumPending: Bool) -> (Verdict, [UInt8]) {
        var bytes = frame
        let verdict = bytes.withUnsafeMutableBytes { buffer in
            var span = buffer.mutableBytes
            return process(&span, now: now, checksumPending: checksumPending)
        }
        return (verdict, bytes)
    }

    func counter(_ name: String) -> UInt64 {
        counters.values[WorkerCounters.layout.first { $0.name == name }!.index]
    }
}

private func macAddress(_ bytes: ArraySlice<UInt8>) -> MACAddress {
    MACAddress(rawValue: bytes.prefix(6).reduce(0) { $0 << 8 | UInt64($1) })
}

@Suite("NAT: address and port translation")
struct NetworkAddressTranslationTests {
    /// A frame's payload, so the checksum covers more than headers.
    static let payload: [UInt8] = Array("GET / HTTP/1.1\r\nHost: lab\r\n\r\n".utf8)

    struct Row: Sendable, CustomTestStringConvertible {
        let name: String
        let udp: Bool
        let offloaded: Bool
        let zeroChecksum: Bool
        var testDescription: String { name }
    }

    static let rows: [Row] = [
        Row(name: "TCP, full checksum", udp: false, offloaded: false, zeroChecksum: false),
        Row(name: "TCP, checksum left to offload", udp: false, offloaded: true, zeroChecksum: false),
        Row(name: "UDP, full checksum", udp: true, offloaded: false, zeroChecksum: false),
        Row(name: "UDP, checksum left to offload", udp: true, offloaded: true, zeroChecksum: false),
        Row(name: "UDP without a checksum keeps none", udp: true, offloaded: false, zeroChecksum: true),
    ]

    static func frame(_ row: Row, from source: (IPv4Address, UInt16), to destination: (IPv4Address, UInt16),
                      macs: (MACAddress, MACAddress), flags: TCPFlags = [.ack, .psh]) -> [UInt8] {
        var builder = PacketBuilder().ethernet(from: macs.0, to: macs.1).ipv4(from: source.0, to: destination.0)
        builder = row.udp ? builder.udp(sourcePort: source.1, destinationPort: destination.1)
                          : builder.tcp(sourcePort: source.1, destinationPort: destination.1, flags: flags, sequence: 7, acknowledgment: 9)
        var bytes = builder.payload(payload).with { $0.transportChecksumLeftToOffload = row.offloaded }.build()
        if row.zeroChecksum { bytes[34 + 6] = 0; bytes[34 + 7] = 0 }
        return bytes
    }

    @Test("both directions: the frames leave exactly as if built with the new addresses (checksums included)", arguments: rows)
    func bothDirections(_ row: Row) throws {
        var forwarder = makeTranslatingForwarder()
        let port: UInt16 = row.udp ? 53 : 80
        let serverPort: UInt16 = row.udp ? 5353 : 8080
        // The flow's first frame: a SYN, or the UDP datagram itself.
        let first = Self.frame(row, from: (client, 40000), to: (vip, port), macs: (clientMAC, vipMAC), flags: .syn)
        let (verdict, sent) = forwarder.run(first, checksumPending: row.offloaded)
        guard case .transmitOnBack(let length, _) = verdict else {
            Issue.record("not forwarded: \(verdict)")
            return
        }
        let server = try #require(servers.first { $0.mac == macAddress(sent[...]) })
        let expected = Self.frame(row, from: (client, 40000), to: (server.ipv4Address, serverPort), macs: (backMAC, server.mac), flags: .syn)
        #expect(length == expected.count)
        #expect(sent == expected, "the server gets the frame to its own address and port")

        // The server's reply, to the gateway MAC, leaves from the VIP to the router clients come through.
        let reply = Self.frame(row, from: (server.ipv4Address, serverPort), to: (client, 40000), macs: (server.mac, gateway.mac))
        let (replyVerdict, translated) = forwarder.runReply(reply, checksumPending: row.offloaded)
        #expect(replyVerdict == .transmitOnFront(length: reply.count, checksum: TransportChecksum(
            start: 34, fieldOffset: row.udp ? 6 : 16, end: reply.count)))
        #expect(translated == Self.frame(row, from: (vip, port), to: (client, 40000), macs: (vipMAC, clientMAC)),
                "the client gets the reply from VIP:\(port)")
        #expect(forwarder.counter("replies_forwarded") == 0, "counted by the transmit stage")
        forwarder.countReplyTransmission(length: reply.count, queued: true)
        #expect(forwarder.counter("replies_forwarded") == 1)
    }

    @Test("incremental checksums equal recomputed ones over many addresses, ports and payloads")
    func checksumsAgree() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let row = Self.rows[Int.random(in: 0..<Self.rows.count - 1, using: &generator)]
            let old = (IPv4Address(rawValue: .random(in: 1...UInt32.max, using: &generator)), UInt16.random(in: 1...UInt16.max, using: &generator))
            let new = (IPv4Address(rawValue: .random(in: 1...UInt32.max, using: &generator)), UInt16.random(in: 1...UInt16.max, using: &generator))
            let peer = (IPv4Address(rawValue: .random(in: 1...UInt32.max, using: &generator)), UInt16.random(in: 1...UInt16.max, using: &generator))
            var input = Self.frame(row, from: peer, to: old, macs: (clientMAC, vipMAC))
            let expected = Self.frame(row, from: peer, to: new, macs: (clientMAC, vipMAC))
            guard case .ipv4(let flow) = input.withUnsafeBytes({ FrameParser.parse($0.bytes) }) else {
                Issue.record("unparsable")
                return
            }
            input.withUnsafeMutableBytes { buffer in
                var span = buffer.mutableBytes
                NetworkAddressTranslation.rewriteDestination(&span, of: flow, to: new.0, port: new.1, checksumPending: row.offloaded)
            }
            #expect(input == expected, "\(row.name): \(old) → \(new)")
        }
    }

    @Test("replies that are not a NAT connection's are dropped, each under its reason")
    func strayReplies() {
        var forwarder = makeTranslatingForwarder()
        let row = Self.rows[0]
        // No connection yet.
        let reply = Self.frame(row, from: (servers[0].ipv4Address, 8080), to: (client, 40000), macs: (servers[0].mac, gateway.mac))
        #expect(forwarder.runReply(reply).0 == .drop)
        #expect(forwarder.counter("drop_reply_without_connection") == 1)
        // Not from a NAT server's endpoint (a direct-routing service's server, another port).
        let stray = Self.frame(row, from: (servers[0].ipv4Address, 443), to: (client, 40000), macs: (servers[0].mac, gateway.mac))
        #expect(forwarder.runReply(stray).0 == .drop)
        #expect(forwarder.counter("drop_reply_not_from_nat_server") == 1)
        // Not to the gateway MAC.
        let elsewhere = Self.frame(row, from: (servers[0].ipv4Address, 8080), to: (client, 40000), macs: (servers[0].mac, backMAC))
        #expect(forwarder.runReply(elsewhere).0 == .drop)
        #expect(forwarder.counter("drop_not_addressed_to_director") == 1)
        // The connection went to rs1 (round robin starts there); rs2's "reply" for it is not its.
        _ = forwarder.run(Self.frame(row, from: (client, 40000), to: (vip, 80), macs: (clientMAC, vipMAC), flags: .syn), checksumPending: false)
        let key = FlowKey(clientAddress: client, clientPort: 40000, virtualAddress: vip, virtualPort: 80, transport: .tcp)
        let chosen = forwarder.table[forwarder.table.find(key, hash: key.tableHash)!].realServerID
        let other = servers.first { $0.id != chosen }!
        let impostor = Self.frame(row, from: (other.ipv4Address, 8080), to: (client, 40000), macs: (other.mac, gateway.mac))
        #expect(forwarder.runReply(impostor).0 == .drop)
        #expect(forwarder.counter("drop_reply_without_connection") == 2)
        // A reply never makes a connection.
        #expect(forwarder.table.count == 1)
    }

    @Test("a reply before any client frame was seen has nowhere to go; the peer's next hop is learnt")
    func nextHopUnknown() {
        var forwarder = makeTranslatingForwarder()
        let key = FlowKey(clientAddress: client, clientPort: 40000, virtualAddress: vip, virtualPort: 80, transport: .tcp)
        // The peer's connection, synced here.
        forwarder.apply(.upsert(key: key, state: .established, realServerID: 1, lifetime: 60_000, claimsFlow: true, proven: true), now: 1_000)
        let reply = Self.frame(Self.rows[0], from: (servers[0].ipv4Address, 8080), to: (client, 40000), macs: (servers[0].mac, gateway.mac))
        #expect(forwarder.runReply(reply).0 == .drop)
        #expect(forwarder.counter("drop_client_next_hop_unknown") == 1)
        forwarder.learnClientSideMAC(clientMAC)
        let (verdict, translated) = forwarder.runReply(reply)
        guard case .transmitOnFront = verdict else {
            Issue.record("not translated: \(verdict)")
            return
        }
        #expect(macAddress(translated[...]) == clientMAC)
        // The replica is this worker's connection now, and the peer hears so.
        #expect(!forwarder.table[forwarder.table.find(key, hash: key.tableHash)!].isReplica)
        #expect(forwarder.counter("replicas_taken_over") == 1)
        #expect(forwarder.changes.changes.contains { if case .created = $0 { true } else { false } })
    }

    @Test("ARP for the gateway is answered with the gateway MAC; only with the ARP duty")
    func gatewayARP() {
        var forwarder = makeTranslatingForwarder()
        let request = PacketBuilder.arpRequest(from: servers[0].mac, senderAddress: servers[0].ipv4Address, for: gateway.address)
        let (verdict, answer) = forwarder.runReply(request)
        #expect(verdict == .answer(length: 42))
        #expect(macAddress(answer[...]) == servers[0].mac)
        #expect(macAddress(answer[6...]) == gateway.mac)
        let other = PacketBuilder.arpRequest(from: servers[0].mac, senderAddress: servers[0].ipv4Address, for: IPv4Address(198, 18, 2, 1))
        #expect(forwarder.runReply(other).0 == .drop)
        var silent = makeTranslatingForwarder()
        var settings = silent.settings
        settings.answersARP = false
        silent.install(silent.services, settings: settings)
        #expect(silent.runReply(request).0 == .drop)
    }

    @Test("direct routing beside NAT is unchanged: only the MACs move")
    func directRoutingBeside() {
        var forwarder = makeTranslatingForwarder()
        let syn = PacketBuilder().ethernet(from: clientMAC, to: vipMAC).ipv4(from: client, to: vip)
            .tcp(sourcePort: 40000, destinationPort: 443, flags: .syn).build()
        let (verdict, sent) = forwarder.run(syn)
        guard case .transmitOnBack = verdict else {
            Issue.record("not forwarded: \(verdict)")
            return
        }
        #expect(Array(sent.dropFirst(12)) == Array(syn.dropFirst(12)))
    }
}

/// ICMP errors about NAT connections, each way.
@Suite("NAT: ICMP errors")
struct ICMPErrorTranslationTests {
    /// An ICMP error frame quoting the first 28 bytes (IP header and 8 of transport) of `quoted`'s
    /// IP packet, with a valid ICMP checksum.
    static func icmpError(type: UInt8 = 3, code: UInt8 = 4, mtu: UInt16 = 1400, quoting quoted: [UInt8], from source: IPv4Address,
                          to destination: IPv4Address, macs: (MACAddress, MACAddress)) -> [UInt8] {
        var body: [UInt8] = [type, code, 0, 0, 0, 0, UInt8(mtu >> 8), UInt8(mtu & 0xFF)] + Array(quoted[14..<(14 + 28)])
        let checksum = body.withUnsafeBytes { InternetChecksum.checksum($0.bytes) }
        body[2] = UInt8(checksum >> 8)
        body[3] = UInt8(checksum & 0xFF)
        return PacketBuilder().ethernet(from: macs.0, to: macs.1).ipv4(from: source, to: destination)
            .with { $0.transport = .other(protocolNumber: 1) }.payload(body).build()
    }

    /// Whether every checksum in an ICMP error frame (outer IP, ICMP, quoted IP header) holds.
    static func checksumsHold(_ frame: [UInt8]) -> Bool {
        frame.withUnsafeBytes { bytes in
            let all = bytes.bytes
            let outer = all.extracting(14..<34), icmp = all.extracting(34..<all.byteCount), quoted = all.extracting(42..<62)
            return InternetChecksum.sum(outer) == 0xFFFF && InternetChecksum.sum(icmp) == 0xFFFF && InternetChecksum.sum(quoted) == 0xFFFF
        }
    }

    static let router = IPv4Address(198, 18, 0, 1)

    @Test("from the clients' side, about a reply from VIP:80: relayed to the connection's server as about its own packet from 8080")
    func towardsServer() throws {
        var forwarder = makeTranslatingForwarder()
        let syn = PacketBuilder().ethernet(from: clientMAC, to: vipMAC).ipv4(from: client, to: vip)
            .tcp(sourcePort: 40000, destinationPort: 80, flags: .syn).build()
        let (_, sent) = forwarder.run(syn)
        let server = try #require(servers.first { $0.mac == macAddress(sent[...]) })
        // A 1,500-byte reply from the VIP did not fit the router's next link.
        let reply = PacketBuilder().ethernet(from: vipMAC, to: clientMAC).ipv4(from: vip, to: client)
            .tcp(sourcePort: 80, destinationPort: 40000, flags: [.ack, .psh], sequence: 5000).payload([UInt8](repeating: 7, count: 1460)).build()
        let error = Self.icmpError(quoting: reply, from: Self.router, to: vip, macs: (clientMAC, vipMAC))
        let (verdict, relayed) = forwarder.run(error)
        guard case .transmitOnBack(let length, _) = verdict else {
            Issue.record("not relayed: \(verdict)")
            return
        }
        #expect(length == error.count && macAddress(relayed[...]) == server.mac)
        #expect(Self.checksumsHold(relayed), "every checksum holds after the rewrite")
        guard case .icmpError(let parsed) = relayed.withUnsafeBytes({ FrameParser.parse($0.bytes) }) else {
            Issue.record("not an ICMP error any more")
            return
        }
        #expect(parsed.destination == server.address && parsed.source == Self.router)
        #expect(parsed.quotedSource == server.address && parsed.quotedSourcePort == 8080)
        #expect(parsed.quotedDestination == client && parsed.quotedDestinationPort == 40000)
        #expect(parsed.type == 3 && parsed.code == 4 && Array(relayed[40..<42]) == [0x05, 0x78], "the next hop's MTU (1400) is kept")
        #expect(forwarder.counter("icmp_errors_relayed") == 1)
        // About a flow the director does not have: dropped, not guessed.
        let stranger = PacketBuilder().ethernet(from: vipMAC, to: clientMAC).ipv4(from: vip, to: client)
            .tcp(sourcePort: 80, destinationPort: 40001, flags: .ack).build()
        #expect(forwarder.run(Self.icmpError(quoting: stranger, from: Self.router, to: vip, macs: (clientMAC, vipMAC))).0 == .drop)
        #expect(forwarder.counter("drop_icmp_error_without_connection") == 1)
    }

    @Test("from the back, about a packet to a server's 8080: relayed to the client from the VIP, as about its packet to VIP:80")
    func towardsClient() throws {
        var forwarder = makeTranslatingForwarder()
        let syn = PacketBuilder().ethernet(from: clientMAC, to: vipMAC).ipv4(from: client, to: vip)
            .tcp(sourcePort: 40000, destinationPort: 80, flags: .syn).build()
        let (_, sent) = forwarder.run(syn)
        let server = try #require(servers.first { $0.mac == macAddress(sent[...]) })
        let error = Self.icmpError(code: 3, quoting: sent, from: server.ipv4Address, to: client, macs: (server.mac, gateway.mac))
        let (verdict, relayed) = forwarder.runReply(error)
        guard case .transmitOnFront(let length, _) = verdict else {
            Issue.record("not relayed: \(verdict)")
            return
        }
        #expect(length == error.count && macAddress(relayed[...]) == clientMAC && macAddress(relayed[6...]) == vipMAC)
        #expect(Self.checksumsHold(relayed))
        guard case .icmpError(let parsed) = relayed.withUnsafeBytes({ FrameParser.parse($0.bytes) }) else {
            Issue.record("not an ICMP error any more")
            return
        }
        #expect(parsed.source == vip && parsed.destination == client)
        #expect(parsed.quotedSource == client && parsed.quotedSourcePort == 40000)
        #expect(parsed.quotedDestination == vip && parsed.quotedDestinationPort == 80)
        // The same error about the port of a server that is no NAT service's: dropped.
        let other = PacketBuilder().ethernet(from: backMAC, to: server.mac).ipv4(from: client, to: server.ipv4Address)
            .tcp(sourcePort: 40000, destinationPort: 9999, flags: .syn).build()
        #expect(forwarder.runReply(Self.icmpError(quoting: other, from: server.ipv4Address, to: client, macs: (server.mac, gateway.mac))).0 == .drop)
        #expect(forwarder.counter("drop_reply_not_from_nat_server") == 1)
    }

    @Test("direct routing: an ICMP error about the VIP's reply goes to the server unchanged but for the MACs")
    func directRouting() {
        var forwarder = makeTranslatingForwarder()
        let syn = PacketBuilder().ethernet(from: clientMAC, to: vipMAC).ipv4(from: client, to: vip)
            .tcp(sourcePort: 40000, destinationPort: 443, flags: .syn).build()
        _ = forwarder.run(syn)
        let reply = PacketBuilder().ethernet(from: vipMAC, to: clientMAC).ipv4(from: vip, to: client)
            .tcp(sourcePort: 443, destinationPort: 40000, flags: .ack).build()
        let error = Self.icmpError(quoting: reply, from: Self.router, to: vip, macs: (clientMAC, vipMAC))
        let (verdict, relayed) = forwarder.run(error)
        guard case .transmitOnBack = verdict else {
            Issue.record("not relayed: \(verdict)")
            return
        }
        #expect(Array(relayed.dropFirst(12)) == Array(error.dropFirst(12)))
    }

    @Test("ICMP that is no error about TCP or UDP is passed over; a cut quote is malformed")
    func otherICMP() {
        var forwarder = makeTranslatingForwarder()
        let echo = PacketBuilder().ethernet(from: clientMAC, to: vipMAC).ipv4(from: client, to: vip)
            .with { $0.transport = .other(protocolNumber: 1) }.payload([8, 0, 0xF7, 0xFF, 0, 0, 0, 0]).build()
        #expect(forwarder.run(echo).0 == .drop)
        #expect(forwarder.counter("passed_over_other_ip_protocol") == 1)
        let reply = PacketBuilder().ethernet(from: vipMAC, to: clientMAC).ipv4(from: vip, to: client)
            .tcp(sourcePort: 80, destinationPort: 40000, flags: .ack).build()
        let cut = Array(Self.icmpError(quoting: reply, from: Self.router, to: vip, macs: (clientMAC, vipMAC)).dropLast(6))
        var shortened = cut
        shortened[16] = 0
        shortened[17] = UInt8(cut.count - 14)   // the outer total length says so too
        #expect(forwarder.run(shortened).0 == .drop)
        #expect(forwarder.counter("malformed_truncated_icmp_error") == 1)
    }
}
