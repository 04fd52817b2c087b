import DirectorCore
import DirectorWire
import Testing

private let clientMAC = MACAddress("02:00:00:00:01:01")!
private let vipMAC = MACAddress("02:00:00:00:00:64")!
private let backMAC = MACAddress("02:00:00:00:00:b0")!
private let client = IPv4Address(198, 18, 1, 10)
private let vip = IPv4Address(198, 18, 0, 100)
private let toVIP = PacketBuilder().ethernet(from: clientMAC, to: vipMAC).ipv4(from: client, to: vip)

struct RecordingSink: ConnectionChangeSink {
    var changes: [ConnectionChange<IPv4Address>] = []
    var changes6: [ConnectionChange<IPv6Address>] = []
    mutating func record(_ change: ConnectionChange<IPv4Address>) { changes.append(change) }
    mutating func record(_ change: ConnectionChange<IPv6Address>) { changes6.append(change) }
}

func makeForwarder(_ scheduler: SchedulerKind = .maglev, weights: [UInt32] = [1, 1, 1], capacity: Int = 1024,
                   timeouts: ConnectionTimeouts = ConnectionTimeouts()) -> Forwarder<RecordingSink> {
    let services = ServiceTable(services: [
        VirtualService(address: vip, port: 80, transport: .tcp, pool: pool(weights), scheduler: scheduler),
        VirtualService(address: vip, port: 53, transport: .udp, pool: pool(weights), scheduler: scheduler),
    ])
    return Forwarder(table: ConnectionTable<IPv4Address>(capacity: capacity)!, services: services,
                     settings: ForwarderSettings(virtualMAC: vipMAC, backMAC: backMAC, timeouts: timeouts), changes: RecordingSink())
}

extension Forwarder {
    /// Runs one frame through the pipeline; returns the verdict and the frame as it left.
    mutating func run(_ frame: [UInt8], now: UInt64 = 1_000) -> (Verdict, [UInt8]) {
        var bytes = frame
        let verdict = bytes.withUnsafeMutableBytes { buffer in
            var span = buffer.mutableBytes
            return process(&span, now: now)
        }
        return (verdict, bytes)
    }
}

/// The frame a real server should receive: the input with only its Ethernet addresses changed.
func directRouted(_ frame: [UInt8], to server: MACAddress) -> [UInt8] {
    server.octets + backMAC.octets + Array(frame.dropFirst(12))
}

struct PipelineFixture: Sendable, CustomTestStringConvertible {
    let name: String
    let frame: [UInt8]
    let verdict: Verdict
    let counter: String
    var testDescription: String { name }
}

private let fixtures: [PipelineFixture] = [
    .init(name: "SYN to the VIP is forwarded", frame: toVIP.tcp(sourcePort: 40000, destinationPort: 80, flags: .syn).build(),
          verdict: .transmitOnBack(length: 54, checksum: TransportChecksum(start: 34, fieldOffset: 16, end: 54)), counter: "connections_created"),
    .init(name: "UDP to a UDP service is forwarded", frame: toVIP.udp(sourcePort: 5000, destinationPort: 53).payload([1, 2, 3, 4]).build(),
          verdict: .transmitOnBack(length: 46, checksum: TransportChecksum(start: 34, fieldOffset: 6, end: 46)), counter: "connections_created"),
    .init(name: "frame for another MAC", frame: toVIP.ethernet(from: clientMAC, to: MACAddress("02:00:00:00:00:99")!).tcp(sourcePort: 1, destinationPort: 80, flags: .syn).build(),
          verdict: .drop, counter: "drop_not_addressed_to_director"),
    .init(name: "port without a service", frame: toVIP.tcp(sourcePort: 40000, destinationPort: 443, flags: .syn).build(),
          verdict: .drop, counter: "drop_no_virtual_service"),
    .init(name: "UDP to a TCP-only port", frame: toVIP.udp(sourcePort: 40000, destinationPort: 80).build(),
          verdict: .drop, counter: "drop_no_virtual_service"),
    .init(name: "address without a service", frame: toVIP.ipv4(from: client, to: IPv4Address(198, 18, 0, 7)).tcp(sourcePort: 1, destinationPort: 80, flags: .syn).build(),
          verdict: .drop, counter: "drop_no_virtual_service"),
    .init(name: "RST without a connection", frame: toVIP.tcp(sourcePort: 40001, destinationPort: 80, flags: .rst).build(),
          verdict: .drop, counter: "drop_no_connection_for_non_syn"),
    .init(name: "IPv6 is passed over where no IPv6 service runs", frame: PacketBuilder().ethernet(from: clientMAC, to: vipMAC)
            .ipv6(from: IPv6Address("2001:2::1:10")!, to: IPv6Address("2001:2::100")!).tcp(sourcePort: 40000, destinationPort: 80, flags: .syn).build(),
          verdict: .drop, counter: "passed_over_ipv6"),
    .init(name: "an IPv6 packet in an IPv4 frame is broken", frame: toVIP.with { $0.etherTypeOverride = EtherType.ipv6 }.build(),
          verdict: .drop, counter: "malformed_bad_ip_version"),
    .init(name: "a fragment is dropped", frame: toVIP.tcp(sourcePort: 1, destinationPort: 80, flags: .syn).with { $0.fragmentField = IPv4Header.moreFragmentsBit }.build(),
          verdict: .drop, counter: "malformed_fragment"),
    .init(name: "ARP for another address", frame: PacketBuilder.arpRequest(from: clientMAC, senderAddress: client, for: IPv4Address(198, 18, 0, 1)),
          verdict: .drop, counter: "drop_arp_not_for_virtual_address"),
] + implausibleFixtures

/// What no honest client sends: each dropped before any table work, under a counter of its own.
private let implausibleFixtures: [PipelineFixture] = {
    let syn = { (builder: PacketBuilder) in builder.tcp(sourcePort: 40000, destinationPort: 80, flags: .syn).build() }
    var rows: [PipelineFixture] = [
        .init(name: "a multicast source MAC", frame: syn(toVIP.ethernet(from: MACAddress("01:00:5e:00:00:01")!, to: vipMAC)),
              verdict: .drop, counter: "drop_source_mac_group"),
        .init(name: "the broadcast source MAC", frame: syn(toVIP.ethernet(from: .broadcast, to: vipMAC)),
              verdict: .drop, counter: "drop_source_mac_group"),
        .init(name: "TTL 0", frame: syn(toVIP.ipv4(from: client, to: vip, ttl: 0)), verdict: .drop, counter: "drop_ttl_zero"),
        .init(name: "TCP source port 0", frame: toVIP.tcp(sourcePort: 0, destinationPort: 80, flags: .syn).build(),
              verdict: .drop, counter: "drop_port_zero"),
        .init(name: "TCP destination port 0 (no service can be on it)", frame: toVIP.tcp(sourcePort: 40000, destinationPort: 0, flags: .syn).build(),
              verdict: .drop, counter: "drop_no_virtual_service"),
        .init(name: "UDP source port 0", frame: toVIP.udp(sourcePort: 0, destinationPort: 53).build(),
              verdict: .drop, counter: "drop_port_zero"),
    ]
    let impossibleSources: [(String, IPv4Address)] = [
        ("this network 0/8", IPv4Address(0, 1, 2, 3)), ("loopback 127/8", IPv4Address(127, 0, 0, 1)),
        ("multicast 224/4", IPv4Address(224, 0, 0, 5)), ("reserved 240/4", IPv4Address(240, 0, 0, 1)),
        ("the limited broadcast", IPv4Address(255, 255, 255, 255)), ("the VIP itself", vip),
    ]
    rows += impossibleSources.map { name, source in
        .init(name: "source address: \(name)", frame: syn(toVIP.ipv4(from: source, to: vip)), verdict: .drop, counter: "drop_source_address_impossible")
    }
    let impossibleFlags: [(String, TCPFlags)] = [
        ("no control bits", []), ("SYN+FIN", [.syn, .fin]), ("SYN+RST", [.syn, .rst]), ("SYN+ACK", [.syn, .ack]),
        ("FIN without ACK", .fin), ("PSH without ACK", .psh), ("SYN+PSH without ACK", [.syn, .psh]), ("FIN+PSH+URG (Xmas)", TCPFlags(rawValue: 0x29)),
    ]
    rows += impossibleFlags.map { name, flags in
        .init(name: "TCP: \(name)", frame: toVIP.tcp(sourcePort: 40000, destinationPort: 80, flags: flags).build(),
              verdict: .drop, counter: "drop_tcp_flags_impossible")
    }
    rows.append(.init(name: "RST+ACK without a connection is a client's, just unknown", frame: toVIP.tcp(sourcePort: 40001, destinationPort: 80, flags: [.rst, .ack]).build(),
                      verdict: .drop, counter: "drop_no_connection_for_non_syn"))
    return rows
}()

@Suite("Forwarding pipeline")
struct ForwarderTests {
    @Test("fixtures: verdict and counter", arguments: fixtures)
    func fixture(_ fixture: PipelineFixture) {
        var forwarder = makeForwarder()
        let (verdict, output) = forwarder.run(fixture.frame)
        #expect(verdict == fixture.verdict)
        let index = WorkerCounters.layout.first { $0.name == fixture.counter }!.index
        #expect(forwarder.counters.values[index] == 1, "\(fixture.counter)")
        if case .transmitOnBack = verdict {
            let server = forwarder.services.destinationMACs.firstIndex { $0.octets == Array(output.prefix(6)) }
            #expect(server != nil, "sent to a real server's MAC")
            #expect(output == directRouted(fixture.frame, to: MACAddress(rawValue: output.prefix(6).reduce(0) { $0 << 8 | UInt64($1) })))
        } else {
            #expect(output == fixture.frame, "a dropped frame is left as it was")
        }
    }

    @Test("a connection's packets all go to the server its SYN went to; states follow the client")
    func connectionLifecycle() {
        var forwarder = makeForwarder(.roundRobin)
        let segments: [(TCPFlags, ConnectionState)] = [(.syn, .synReceived), (.ack, .established), ([.ack, .psh], .established), ([.fin, .ack], .finWait), (.ack, .finWait)]
        var destinations = Set<[UInt8]>()
        for (flags, state) in segments {
            let (verdict, output) = forwarder.run(toVIP.tcp(sourcePort: 41000, destinationPort: 80, flags: flags).build())
            #expect(verdict == .transmitOnBack(length: 54, checksum: TransportChecksum(start: 34, fieldOffset: 16, end: 54)))
            destinations.insert(Array(output.prefix(6)))
            let key = FlowKey(clientAddress: client, clientPort: 41000, virtualAddress: vip, virtualPort: 80, transport: .tcp)
            #expect(forwarder.table[forwarder.table.find(key, hash: key.tableHash)!].state == state)
        }
        #expect(destinations.count == 1)
        // Created, then SR→ES and ES→FW: three changes recorded, in order.
        #expect(forwarder.changes.changes.count == 3)
        guard case .created(let created) = forwarder.changes.changes[0], case .stateChanged(let last) = forwarder.changes.changes[2] else {
            Issue.record("changes: \(forwarder.changes.changes)"); return
        }
        #expect(created.state == .synReceived && last.state == .finWait)
    }

    @Test("a SYN reusing the port of an ended connection is scheduled afresh, by the weights in force; one of a live connection is not")
    func portReuse() throws {
        var forwarder = makeForwarder(.roundRobin)
        let key = FlowKey(clientAddress: client, clientPort: 41500, virtualAddress: vip, virtualPort: 80, transport: .tcp)
        for flags: TCPFlags in [.syn, .ack, [.fin, .ack]] { _ = forwarder.run(toVIP.tcp(sourcePort: 41500, destinationPort: 80, flags: flags).build()) }
        let found = forwarder.table.find(key, hash: key.tableHash)
        let first = forwarder.table[try #require(found)]
        #expect(first.state == .finWait)
        // The first server is quiesced (weight 0) by a reload; the client reuses its port.
        var weights: [UInt32] = [1, 1, 1]
        weights[Int(first.realServerID) - 1] = 0
        forwarder.install(ServiceTable(services: [VirtualService(address: vip, port: 80, transport: .tcp, pool: pool(weights), scheduler: .roundRobin)]))
        let (verdict, output) = forwarder.run(toVIP.tcp(sourcePort: 41500, destinationPort: 80, flags: .syn).build())
        let reopened = forwarder.table[try #require(found)]
        #expect(verdict != .drop && reopened.realServerID != first.realServerID && reopened.state == .synReceived && !reopened.isProven)
        #expect(Array(output.prefix(6)) == pool(weights)[Int(reopened.realServerID) - 1].mac.octets)
        #expect(forwarder.counters[.connectionsReopened] == 1 && forwarder.load.inactiveConnections(first.realServerID) == 0)
        guard case .created(let claimed) = forwarder.changes.changes.last else { Issue.record("no created record"); return }
        #expect(claimed.realServerID == reopened.realServerID, "the peer hears of the new connection")
        // A SYN within a live connection (a retransmission) keeps its server.
        _ = forwarder.run(toVIP.tcp(sourcePort: 41500, destinationPort: 80, flags: .syn).build())
        #expect(forwarder.table[try #require(found)].realServerID == reopened.realServerID, "the entry stays in its slot")
        #expect(forwarder.counters[.connectionsReopened] == 1)
    }

    @Test("round robin spreads new connections; a non-SYN without an entry is dropped with rr")
    func roundRobinMidstream() {
        var forwarder = makeForwarder(.roundRobin)
        let (verdict, _) = forwarder.run(toVIP.tcp(sourcePort: 42000, destinationPort: 80, flags: .ack).build())
        #expect(verdict == .drop && forwarder.counters[drop: .noConnectionForNonSYN] == 1)
    }

    @Test("with mh, a mid-stream flow is picked up by the server mh chooses")
    func maglevMidstream() {
        var forwarder = makeForwarder(.maglev)
        let (_, viaSYN) = forwarder.run(toVIP.tcp(sourcePort: 43000, destinationPort: 80, flags: .syn).build())
        var other = makeForwarder(.maglev)
        let (verdict, viaACK) = other.run(toVIP.tcp(sourcePort: 43000, destinationPort: 80, flags: .ack).build())
        #expect(verdict == .transmitOnBack(length: 54, checksum: TransportChecksum(start: 34, fieldOffset: 16, end: 54)))
        #expect(viaSYN.prefix(6) == viaACK.prefix(6), "both directors choose the same real server")
        #expect(other.counters[.midstreamPickups] == 1)
        // Provisional until the client's next segment: reclaimable and short-lived meanwhile.
        let key = FlowKey(clientAddress: client, clientPort: 43000, virtualAddress: vip, virtualPort: 80, transport: .tcp)
        #expect(other.table[other.table.find(key, hash: key.tableHash)!].state == .synReceived)
        _ = other.run(toVIP.tcp(sourcePort: 43000, destinationPort: 80, flags: .ack).build())
        #expect(other.table[other.table.find(key, hash: key.tableHash)!].state == .established)
    }

    @Test("an ARP request for the VIP is turned into the reply, byte for byte")
    func arpReply() {
        var forwarder = makeForwarder()
        let request = PacketBuilder.arpRequest(from: clientMAC, senderAddress: client, for: vip)
        let (verdict, output) = forwarder.run(request)
        #expect(verdict == .answer(length: 42))
        let expected: [UInt8] = clientMAC.octets + vipMAC.octets + [0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2]
            + vipMAC.octets + [198, 18, 0, 100] + clientMAC.octets + [198, 18, 1, 10]
        #expect(output == expected)
    }

    @Test("entries expire after their state's timeout and the load counts fall back")
    func expiry() {
        var timeouts = ConnectionTimeouts()
        timeouts.synReceived = 5_000
        var forwarder = makeForwarder(.leastConnection, timeouts: timeouts)
        for port in 0..<100 { _ = forwarder.run(toVIP.tcp(sourcePort: UInt16(20000 + port), destinationPort: 80, flags: .syn).build(), now: 1_000) }
        #expect(forwarder.table.count == 100)
        forwarder.expire(now: 5_999, budget: 10_000)
        #expect(forwarder.table.count == 100)
        forwarder.expire(now: 6_000, budget: 10_000)
        #expect(forwarder.table.count == 0 && forwarder.counters[.connectionsExpired] == 100)
        for id in UInt16(1)...3 { #expect(forwarder.load.inactiveConnections(id) == 0 && forwarder.load.activeConnections(id) == 0) }
    }

    @Test("a full table of real connections drops new flows and counts them")
    func tableFull() {
        var forwarder = makeForwarder(capacity: 8)
        for port in 0..<8 {
            _ = forwarder.run(toVIP.tcp(sourcePort: UInt16(1000 + port), destinationPort: 80, flags: .syn).build())
            _ = forwarder.run(toVIP.tcp(sourcePort: UInt16(1000 + port), destinationPort: 80, flags: .ack).build())
            _ = forwarder.run(toVIP.tcp(sourcePort: UInt16(1000 + port), destinationPort: 80, flags: [.ack, .psh]).payload(Array("GET /".utf8)).build())
        }
        #expect(forwarder.counters[.connectionsProven] == 8)
        let (verdict, _) = forwarder.run(toVIP.tcp(sourcePort: 2000, destinationPort: 80, flags: .syn).build())
        #expect(verdict == .drop && forwarder.counters[drop: .connectionTableFull] == 1)
    }

    @Test("a UDP flow's first datagram gets the SYN_RECV timeout, its second proves it and gets the UDP one")
    func udpProof() {
        let timeouts = ConnectionTimeouts()
        var forwarder = makeForwarder(timeouts: timeouts)
        let datagram = toVIP.udp(sourcePort: 5000, destinationPort: 53).payload([1, 2, 3, 4]).build()
        let key = FlowKey(clientAddress: client, clientPort: 5000, virtualAddress: vip, virtualPort: 53, transport: .udp)
        _ = forwarder.run(datagram, now: 1_000)
        #expect(forwarder.table.find(key, hash: key.tableHash).map { forwarder.table[$0].expiresAt } == 1_000 + min(timeouts.synReceived, timeouts.udp))
        _ = forwarder.run(datagram, now: 2_000)
        let slot = forwarder.table.find(key, hash: key.tableHash)
        #expect(slot.map { forwarder.table[$0].isProven && forwarder.table[$0].expiresAt == 2_000 + timeouts.udp } == true)
        #expect(forwarder.counters[.connectionsProven] == 1)
    }

    @Test("forged handshakes (a SYN, then an ACK, never data) fill no table: they keep the SYN_RECV timeout and new clients take their places")
    func forgedHandshakes() {
        var timeouts = ConnectionTimeouts()
        timeouts.synReceived = 5_000
        var forwarder = makeForwarder(capacity: 64, timeouts: timeouts)
        for port in 0..<64 {
            _ = forwarder.run(toVIP.tcp(sourcePort: UInt16(1000 + port), destinationPort: 80, flags: .syn).build(), now: 1_000)
            _ = forwarder.run(toVIP.tcp(sourcePort: UInt16(1000 + port), destinationPort: 80, flags: .ack).build(), now: 1_001)
        }
        #expect(forwarder.table.count == 64 && forwarder.counters[.connectionsProven] == 0)
        let forged = forwarder.table.find(FlowKey(clientAddress: client, clientPort: 1000, virtualAddress: vip, virtualPort: 80, transport: .tcp),
                                          hash: FlowKey(clientAddress: client, clientPort: 1000, virtualAddress: vip, virtualPort: 80, transport: .tcp).tableHash)
        #expect(forged.map { forwarder.table[$0].state == .established && forwarder.table[$0].expiresAt == 1_001 + 5_000 } == true,
                "ESTABLISHED, but with the SYN_RECV timeout")
        // Real clients: SYN, ACK, data. Each takes a forged entry's place and proves its own.
        for port in 0..<16 {
            let (verdict, _) = forwarder.run(toVIP.tcp(sourcePort: UInt16(3000 + port), destinationPort: 80, flags: .syn).build(), now: 1_100)
            #expect(verdict != .drop)
            _ = forwarder.run(toVIP.tcp(sourcePort: UInt16(3000 + port), destinationPort: 80, flags: .ack).build(), now: 1_101)
            _ = forwarder.run(toVIP.tcp(sourcePort: UInt16(3000 + port), destinationPort: 80, flags: [.ack, .psh]).payload(Array("GET /".utf8)).build(), now: 1_102)
        }
        #expect(forwarder.counters[.connectionsReclaimed] == 16 && forwarder.counters[.connectionsProven] == 16)
        #expect(forwarder.counters[drop: .connectionTableFull] == 0)
        // More forged SYNs now find only each other's places: the real connections stay.
        for port in 0..<200 { _ = forwarder.run(toVIP.tcp(sourcePort: UInt16(5000 + port), destinationPort: 80, flags: .syn).build(), now: 1_200) }
        let real = (0..<16).filter { port in
            let key = FlowKey(clientAddress: client, clientPort: UInt16(3000 + port), virtualAddress: vip, virtualPort: 80, transport: .tcp)
            return forwarder.table.find(key, hash: key.tableHash).map { forwarder.table[$0].isProven } == true
        }
        #expect(real.count == 16, "every real connection kept its entry under the flood")
        let proven = FlowKey(clientAddress: client, clientPort: 3000, virtualAddress: vip, virtualPort: 80, transport: .tcp)
        #expect(forwarder.table.find(proven, hash: proven.tableHash).map { forwarder.table[$0].expiresAt } == 1_102 + timeouts.established,
                "a proven connection has the ESTABLISHED timeout")
    }

    @Test("a real server with no MAC yet is a counted drop")
    func unresolved() {
        var servers = pool([1])
        servers[0].mac = .zero
        let table = ServiceTable(services: [VirtualService(address: vip, port: 80, transport: .tcp, pool: servers, scheduler: .maglev)])
        var forwarder = Forwarder(table: ConnectionTable<IPv4Address>(capacity: 16)!, services: table,
                                  settings: ForwarderSettings(virtualMAC: vipMAC, backMAC: backMAC), changes: RecordingSink())
        let (verdict, _) = forwarder.run(toVIP.tcp(sourcePort: 1, destinationPort: 80, flags: .syn).build())
        #expect(verdict == .drop && forwarder.counters[drop: .realServerUnresolved] == 1)
    }

    @Test("a SYN on a live entry whose server takes no new connections (drained, failed its check) is scheduled afresh; one on a server in service is a retransmission")
    func synToQuiescedServer() throws {
        var forwarder = makeForwarder(.roundRobin)
        let key = FlowKey(clientAddress: client, clientPort: 41700, virtualAddress: vip, virtualPort: 80, transport: .tcp)
        let syn = toVIP.tcp(sourcePort: 41700, destinationPort: 80, flags: .syn).build()
        _ = forwarder.run(syn)
        let found = forwarder.table.find(key, hash: key.tableHash)
        let first = forwarder.table[try #require(found)].realServerID
        _ = forwarder.run(syn)
        #expect(forwarder.table[try #require(found)].realServerID == first && forwarder.counters[.connectionsReopened] == 0)
        var weights: [UInt32] = [1, 1, 1]
        weights[Int(first) - 1] = 0
        forwarder.install(ServiceTable(services: [VirtualService(address: vip, port: 80, transport: .tcp, pool: pool(weights), scheduler: .roundRobin)]))
        _ = forwarder.run(syn)
        #expect(forwarder.table[try #require(found)].realServerID != first && forwarder.counters[.connectionsReopened] == 1)
    }

    @Test("a connection whose server failed its check, in a service that resets: its client gets a valid RST from the VIP, the entry goes; UDP and a SYN start over")
    func resetOnServerFailure() throws {
        var forwarder = makeForwarder(.roundRobin)
        let key = FlowKey(clientAddress: client, clientPort: 41600, virtualAddress: vip, virtualPort: 80, transport: .tcp)
        _ = forwarder.run(toVIP.tcp(sourcePort: 41600, destinationPort: 80, flags: .syn, sequence: 1000).build())
        let found = forwarder.table.find(key, hash: key.tableHash)
        let server = forwarder.table[try #require(found)].realServerID
        var weights: [UInt32] = [1, 1, 1]
        weights[Int(server) - 1] = 0
        let udpKey = FlowKey(clientAddress: client, clientPort: 5000, virtualAddress: vip, virtualPort: 53, transport: .udp)
        let datagram = toVIP.udp(sourcePort: 5000, destinationPort: 53).payload([1, 2, 3, 4]).build()
        _ = forwarder.run(datagram)
        let udpFound = forwarder.table.find(udpKey, hash: udpKey.tableHash)
        let udpServer = forwarder.table[try #require(udpFound)].realServerID
        var udpWeights: [UInt32] = [1, 1, 1]
        udpWeights[Int(udpServer) - 1] = 0
        forwarder.install(ServiceTable(services: [
            VirtualService(address: vip, port: 80, transport: .tcp, pool: pool(weights), scheduler: .roundRobin),
            VirtualService(address: vip, port: 53, transport: .udp, pool: pool(udpWeights), scheduler: .roundRobin),
        ], resetting: [server, udpServer]))

        let countedBefore = forwarder.load.activeConnections(server) + forwarder.load.inactiveConnections(server)
        // Data from the client: seq 1001, ack 5000, 10 bytes.
        let data = toVIP.tcp(sourcePort: 41600, destinationPort: 80, flags: [.ack, .psh], sequence: 1001, acknowledgment: 5000)
            .payload(Array(repeating: 0x61, count: 10)).build()
        let (verdict, output) = forwarder.run(data)
        guard case .answer(let length) = verdict else { Issue.record("no reset: \(verdict)"); return }
        let reset = Array(output.prefix(length))
        guard case .ipv4(let flow) = reset.withUnsafeBytes({ FrameParser.parse($0.bytes) }) else { Issue.record("the reset does not parse"); return }
        #expect(flow.destinationMAC == clientMAC && flow.sourceMAC == vipMAC)
        #expect(flow.source == vip && flow.destination == client && flow.sourcePort == 80 && flow.destinationPort == 41600)
        #expect(flow.tcpFlags == TCPFlags.rst && flow.packetLength == 40)
        #expect(reset.withUnsafeBytes { $0.bytes.bigEndianUInt32(at: flow.transportOffset + 4) } == 5000, "its sequence is the client's acknowledgment")
        #expect(reset.withUnsafeBytes { InternetChecksum.checksum($0.bytes.extracting(14..<34)) } == 0, "a valid IP checksum")
        let pseudo = (vip.rawValue >> 16) + (vip.rawValue & 0xFFFF) + (client.rawValue >> 16) + (client.rawValue & 0xFFFF) + 6 + 20
        #expect(reset.withUnsafeBytes { InternetChecksum.checksum($0.bytes.extracting(34..<54), initial: pseudo) } == 0, "a valid TCP checksum")
        #expect(forwarder.table.find(key, hash: key.tableHash) == nil && forwarder.counters[.connectionsReset] == 1)
        #expect(forwarder.load.activeConnections(server) + forwarder.load.inactiveConnections(server) == countedBefore - 1, "its load is given back")
        guard case .removed(_, .serverFailed) = forwarder.changes.changes.last else { Issue.record("the peer is not told"); return }

        // The client's next SYN goes to a server that is up.
        let (synVerdict, _) = forwarder.run(toVIP.tcp(sourcePort: 41600, destinationPort: 80, flags: .syn, sequence: 9000).build())
        #expect(synVerdict != .drop)
        let reopened = forwarder.table.find(key, hash: key.tableHash)
        #expect(forwarder.table[try #require(reopened)].realServerID != server)
        // The UDP flow is scheduled afresh, to a server that is up.
        let (udpVerdict, _) = forwarder.run(datagram)
        #expect(udpVerdict != .drop && forwarder.counters[.connectionsReset] == 2)
        let rescheduled = forwarder.table.find(udpKey, hash: udpKey.tableHash)
        #expect(forwarder.table[try #require(rescheduled)].realServerID != udpServer)
    }
}

extension RealServer {
    /// The address of a server of an IPv4 service (the tests' frames are built from it).
    var ipv4Address: IPv4Address {
        guard case .v4(let address) = address else { preconditionFailure("\(address) is not an IPv4 address") }
        return address
    }
}
