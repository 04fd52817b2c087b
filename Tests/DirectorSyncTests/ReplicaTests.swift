import DirectorCore
import DirectorSync
import DirectorWire
import Testing

private let vipMAC = MACAddress("02:18:00:00:00:64")!
private let vip = IPv4Address(198, 18, 0, 100)
private let client = IPv4Address(198, 18, 1, 10)
private let vip6 = IPv6Address("2001:2::100")!
private let client6 = IPv6Address("2001:2:0:1::10")!

struct ChangeLog: ConnectionChangeSink {
    var changes: [ConnectionChange<IPv4Address>] = []
    var changes6: [ConnectionChange<IPv6Address>] = []
    mutating func record(_ change: ConnectionChange<IPv4Address>) { changes.append(change) }
    mutating func record(_ change: ConnectionChange<IPv6Address>) { changes6.append(change) }
}

/// A director's forwarder with rr over three real servers. `order` permutes the pool: the two
/// directors number and order their real servers differently, as two configs may.
func director(order: [Int] = [0, 1, 2], timeouts: ConnectionTimeouts = ConnectionTimeouts()) -> Forwarder<ChangeLog> {
    let servers = order.enumerated().map { position, index in
        RealServer(id: UInt16(position + 1), address: IPv4Address(198, 18, 2, UInt8(11 + index)), port: 80, weight: 1,
                   mac: MACAddress(rawValue: 0x02_00_00_00_02_00 + UInt64(index)))
    }
    let servers6 = order.enumerated().map { position, index in
        RealServer(id: UInt16(position + 11), address: .v6(IPv6Address("2001:2:0:2::\(11 + index)")!), port: 80, weight: 1,
                   mac: MACAddress(rawValue: 0x02_00_00_00_06_00 + UInt64(index)))
    }
    let services = ServiceTable(services: [VirtualService(address: vip, port: 80, transport: .tcp, pool: servers, scheduler: .roundRobin),
                                           VirtualService(address: .v6(vip6), port: 80, transport: .tcp, pool: servers6, scheduler: .roundRobin)])
    return Forwarder(table: ConnectionTable<IPv4Address>(capacity: 64)!, services: services,
                     settings: ForwarderSettings(virtualMAC: vipMAC, backMAC: MACAddress("02:00:00:00:00:b0")!, timeouts: timeouts),
                     changes: ChangeLog())
}

func segment6(port: UInt16, flags: TCPFlags, data: [UInt8] = []) -> [UInt8] {
    PacketBuilder().ethernet(from: MACAddress("02:00:00:00:01:01")!, to: vipMAC).ipv6(from: client6, to: vip6)
        .tcp(sourcePort: port, destinationPort: 80, flags: flags).payload(data).build()
}

func segment(port: UInt16, flags: TCPFlags, data: [UInt8] = []) -> [UInt8] {
    PacketBuilder().ethernet(from: MACAddress("02:00:00:00:01:01")!, to: vipMAC).ipv4(from: client, to: vip)
        .tcp(sourcePort: port, destinationPort: 80, flags: flags).payload(data).build()
}

extension Forwarder {
    mutating func run(_ frame: [UInt8], now: UInt64) -> (Verdict, [UInt8]) {
        var bytes = frame
        let verdict = bytes.withUnsafeMutableBytes { buffer in
            var span = buffer.mutableBytes
            return process(&span, now: now)
        }
        return (verdict, bytes)
    }

    /// Sends every change recorded so far to `peer` through the real wire format and codec.
    mutating func sync(to peer: inout Forwarder<ChangeLog>, now: UInt64) throws where Sink == ChangeLog {
        let codec = SyncCodec(key: [UInt8](repeating: 7, count: 32))!
        let records = changes.changes.compactMap { SyncRecord($0, services: services, now: now, timeouts: settings.timeouts) }
            + changes.changes6.compactMap { SyncRecord($0, services: services, now: now, timeouts: settings.timeouts) }
        changes.changes.removeAll()
        changes.changes6.removeAll()
        let header = SyncHeader(nodeID: 1, incarnation: 1, sequence: 1, sentAt: 0)
        let received = try codec.decode(codec.encode(SyncDatagram(header: header, body: .deltas(dataSequence: 1, records: records))))
        guard case .deltas(_, let decoded) = received.body else { return }
        for record in decoded {
            switch record.replicaDecision(services: peer.services, timeouts: peer.settings.timeouts) {
            case .apply(let update, _): peer.apply(update, now: now)
            case .apply6(let update, _): peer.apply(update, now: now)
            case .unknownService, .unknownRealServer: peer.countUnknownReplicaServer()
            }
        }
    }
}

@Suite("Replicas")
struct ReplicaTests {
    @Test("with rr, a synced connection goes on at the other director, to the same real server")
    func takeoverWithRoundRobin() throws {
        var owner = director()
        var survivor = director(order: [2, 0, 1])
        // The owner sees the handshake; its rr picks a real server.
        _ = survivor.run(segment(port: 40001, flags: .syn), now: 1_000)     // moves the survivor's rr cursor
        let (_, viaOwner) = owner.run(segment(port: 40000, flags: .syn), now: 1_000)
        _ = owner.run(segment(port: 40000, flags: .ack), now: 1_001)
        try owner.sync(to: &survivor, now: 1_002)
        #expect(survivor.counters[.replicasApplied] == 2)
        // The owner dies; the next segment of the flow reaches the survivor.
        let (verdict, viaSurvivor) = survivor.run(segment(port: 40000, flags: [.ack, .psh]), now: 1_500)
        #expect(verdict != .drop, "no SYN, rr: only the replica can place this segment")
        #expect(viaSurvivor.prefix(6) == viaOwner.prefix(6), "the same real server, though numbered differently here")
        #expect(survivor.counters[.replicasTakenOver] == 1 && survivor.counters[drop: .noConnectionForNonSYN] == 0)
        guard case .created(let live) = survivor.changes.changes.last else { Issue.record("takeover not reported"); return }
        #expect(!live.isReplica && live.state == .established)
    }

    @Test("an IPv6 connection too: synced in a 68-byte record, it goes on at the other director, to the same real server")
    func takeoverOverIPv6() throws {
        var owner = director()
        var survivor = director(order: [2, 0, 1])
        _ = survivor.run(segment6(port: 40001, flags: .syn), now: 1_000)
        let (_, viaOwner) = owner.run(segment6(port: 40000, flags: .syn), now: 1_000)
        _ = owner.run(segment6(port: 40000, flags: .ack), now: 1_001)
        let record = try #require(owner.changes.changes6.first.flatMap { SyncRecord($0, services: owner.services, now: 1_001, timeouts: owner.settings.timeouts) })
        #expect(record.wireLength == SyncWireFormat.ipv6RecordLength && record.clientAddress == .v6(client6) && record.realServerAddress.isIPv6)
        try owner.sync(to: &survivor, now: 1_002)
        #expect(survivor.counters[.replicasApplied] == 2 && survivor.table6.count == 2)
        let (verdict, viaSurvivor) = survivor.run(segment6(port: 40000, flags: [.ack, .psh]), now: 1_500)
        #expect(verdict != .drop, "no SYN, rr: only the replica can place this segment")
        #expect(viaSurvivor.prefix(6) == viaOwner.prefix(6), "the same real server, though numbered differently here")
        #expect(survivor.counters[.replicasTakenOver] == 1)
        guard case .created(let live) = survivor.changes.changes6.last else { Issue.record("takeover not reported"); return }
        #expect(!live.isReplica && live.state == .established)
    }

    @Test("without the replica, the same segment is dropped (rr cannot guess)")
    func noReplicaNoTakeover() {
        var survivor = director()
        let (verdict, _) = survivor.run(segment(port: 40000, flags: [.ack, .psh]), now: 1_500)
        #expect(verdict == .drop && survivor.counters[drop: .noConnectionForNonSYN] == 1)
    }

    @Test("a replica never overrides the worker's own entry; removal touches replicas only")
    func ownEntriesWin() throws {
        var local = director()
        _ = local.run(segment(port: 40000, flags: .syn), now: 1_000)
        let key = FlowKey(clientAddress: client, clientPort: 40000, virtualAddress: vip, virtualPort: 80, transport: .tcp)
        let ownServer = local.table[local.table.find(key, hash: key.tableHash)!].realServerID
        local.apply(.upsert(key: key, state: .finWait, realServerID: ownServer % 3 + 1, lifetime: 5, claimsFlow: false), now: 1_001)
        local.apply(.remove(key: key), now: 1_002)
        let slot = local.table.find(key, hash: key.tableHash)
        #expect(slot != nil && local.table[slot!].realServerID == ownServer && local.table[slot!].state == .synReceived)
        #expect(local.counters[.replicasApplied] == 0 && local.counters[.replicasRemoved] == 0)
    }

    @Test("replicas expire on their own timers, silently, and never count as load")
    func replicasExpire() {
        var worker = director()
        for port in UInt16(0)..<10 {
            let key = FlowKey(clientAddress: client, clientPort: 30000 + port, virtualAddress: vip, virtualPort: 80, transport: .tcp)
            worker.apply(.upsert(key: key, state: .established, realServerID: 1, lifetime: 100, claimsFlow: false), now: 1_000)
        }
        #expect(worker.table.count == 10 && worker.load.activeConnections(1) == 0)
        worker.expire(now: 1_100, budget: 1_000)
        #expect(worker.table.count == 0 && worker.counters[.replicasExpired] == 10)
        #expect(worker.changes.changes.isEmpty, "a replica's end is the peer's to report")
    }

    @Test("a record is checked against this director's own services, servers and timeouts")
    func recordsAreChecked() {
        func record(vip: IPv4Address = vip, port: UInt16 = 80, transport: TransportProtocol = .tcp, server: IPv4Address = IPv4Address(198, 18, 2, 11),
                    serverPort: UInt16 = 80, state: ConnectionState = .established, lifetime: UInt32 = 1000) -> SyncRecord {
            SyncRecord(change: .created, state: state, transport: transport, clientAddress: client, clientPort: 1, virtualAddress: vip,
                       virtualPort: port, realServerAddress: server, realServerPort: serverPort, remainingLifetime: lifetime)
        }
        let local = director()
        let decide = { (record: SyncRecord) in record.replicaDecision(services: local.services, timeouts: local.settings.timeouts) }
        #expect(decide(record(server: IPv4Address(198, 18, 2, 99))) == .unknownRealServer)
        #expect(decide(record(serverPort: 8080)) == .unknownRealServer, "the server's address with another port is another server")
        #expect(decide(record(vip: IPv4Address(198, 18, 0, 7))) == .unknownService)
        #expect(decide(record(port: 443)) == .unknownService)
        #expect(decide(record(transport: .udp)) == .unknownService)
        guard case .apply(.upsert(_, _, let id, let lifetime, _, _), false) = decide(record()) else { Issue.record("a right record is applied"); return }
        #expect(lifetime == 1000 && local.services.realServer(id: id)?.address == .v4(IPv4Address(198, 18, 2, 11)))
        let timeouts = local.settings.timeouts
        let longest = timeouts.timeout(for: .established) + timeouts.replicaMargin(for: .established)
        #expect(decide(record(lifetime: .max)) == .apply(.upsert(key: record().ipv4Key, state: .established, realServerID: id, lifetime: longest, claimsFlow: true),
                                                     lifetimeClamped: true), "49 days from the wire become what this director gives the state")
        #expect(decide(record(state: .synReceived, lifetime: 3_600_000)).clampedLifetime == timeouts.timeout(for: .synReceived) + timeouts.replicaMargin(for: .synReceived))
    }

    @Test("a record naming a real server a reload removed is applied: that server's open connections go on, the peer's replicas of them too")
    func retiredServerRecords() {
        let pool = [RealServer(id: 1, address: IPv4Address(198, 18, 2, 11), port: 80, weight: 1, mac: MACAddress(rawValue: 0x02_00_00_00_02_11))]
        let retired = [RealServer(id: 2, address: IPv4Address(198, 18, 2, 12), port: 80, weight: 0, mac: MACAddress(rawValue: 0x02_00_00_00_02_12))]
        let services = ServiceTable(services: [VirtualService(address: vip, port: 80, transport: .tcp, pool: pool, scheduler: .maglev)], retired: retired)
        let record = SyncRecord(change: .created, state: .established, transport: .tcp, clientAddress: client, clientPort: 1, virtualAddress: vip,
                                virtualPort: 80, realServerAddress: IPv4Address(198, 18, 2, 12), realServerPort: 80, remainingLifetime: 1000)
        guard case .apply(.upsert(_, _, let id, _, _, _), _) = record.replicaDecision(services: services, timeouts: ConnectionTimeouts()) else {
            Issue.record("the retired server's record was refused")
            return
        }
        #expect(id == 2 && services.destinationMAC(id) == retired[0].mac)
        #expect(ServiceTable(services: services.services).destinationMAC(2) == .zero, "without the retired list it would be refused")
    }

    @Test("counter regions do not overlap")
    func counterLayout() {
        #expect(WorkerCounter.allCases.count <= WorkerCounters.dropBase)
        #expect(WorkerCounters.dropBase + DropReason.allCases.count <= WorkerCounters.malformedBase)
        #expect(WorkerCounters.malformedBase + MalformedReason.allCases.count <= WorkerCounters.passOverBase)
        #expect(WorkerCounters.passOverBase + PassOverReason.allCases.count <= WorkerCounters.count)
        #expect(Set(WorkerCounters.layout.map(\.index)).count == WorkerCounters.layout.count)
    }
}

@Suite("Replica lifetimes and claims")
struct ReplicaLifetimeTests {
    let key = FlowKey(clientAddress: client, clientPort: 40000, virtualAddress: vip, virtualPort: 80, transport: .tcp)

    @Test("a busy flow is refreshed to the peer once half its timeout has passed since the peer last heard of it")
    func refreshes() {
        var timeouts = ConnectionTimeouts()
        timeouts.established = 10_000
        var owner = director(timeouts: timeouts)
        _ = owner.run(segment(port: 40000, flags: .syn), now: 1_000)
        _ = owner.run(segment(port: 40000, flags: [.ack, .psh], data: Array("GET /".utf8)), now: 1_100)   // → ESTABLISHED and proven, reported
        owner.changes.changes.removeAll()
        for now in stride(from: UInt64(2_000), through: 5_000, by: 1_000) { _ = owner.run(segment(port: 40000, flags: .ack), now: now) }
        #expect(owner.changes.changes.isEmpty, "under half the timeout: nothing to say")
        _ = owner.run(segment(port: 40000, flags: .ack), now: 6_200)
        guard case .refreshed(let entry) = owner.changes.changes.last else { Issue.record("no refresh"); return }
        #expect(entry.state == .established)
        let record = SyncRecord(.refreshed(entry), services: owner.services, now: 6_200, timeouts: timeouts)!
        #expect(record.remainingLifetime == 10_000 + 5_000 + 1_000, "the replica outlives the owner's entry by the refresh margin")
    }

    @Test("the peer's claim on a flow turns this worker's own entry into a replica; a refresh does not")
    func claims() {
        var worker = director()
        _ = worker.run(segment(port: 40000, flags: .syn), now: 1_000)
        let slot = { worker.table.find(key, hash: key.tableHash)! }
        worker.apply(.upsert(key: key, state: .established, realServerID: 1, lifetime: 50, claimsFlow: false), now: 1_001)
        #expect(!worker.table[slot()].isReplica)
        worker.apply(.upsert(key: key, state: .established, realServerID: 1, lifetime: 50, claimsFlow: true), now: 1_002)
        #expect(worker.table[slot()].isReplica && worker.counters[.replicasYielded] == 1)
        #expect(worker.load.activeConnections(1) == 0, "a yielded flow no longer counts as this worker's load")
    }

    @Test("after a resync, replicas the snapshot did not write again are purged; fresh ones stay")
    func purge() {
        var worker = director()
        for port in UInt16(0)..<20 {
            let stale = FlowKey(clientAddress: client, clientPort: 30000 + port, virtualAddress: vip, virtualPort: 80, transport: .tcp)
            worker.apply(.upsert(key: stale, state: .established, realServerID: 1, lifetime: 60_000, claimsFlow: false), now: 1_000)
        }
        _ = worker.run(segment(port: 40000, flags: .syn), now: 1_000)     // an own entry: never purged
        worker.beginResync()
        for port in UInt16(0)..<5 {
            let fresh = FlowKey(clientAddress: client, clientPort: 30000 + port, virtualAddress: vip, virtualPort: 80, transport: .tcp)
            worker.apply(.upsert(key: fresh, state: .established, realServerID: 1, lifetime: 60_000, claimsFlow: false), now: 1_001)
        }
        worker.completeResync()
        for _ in 0..<100 { worker.purgeStaleReplicas(budget: 8) }
        #expect(worker.table.count == 6 && worker.counters[.replicasRemoved] == 15)
        #expect(worker.table.find(key, hash: key.tableHash).map { !worker.table[$0].isReplica } == true)
    }

    @Test("a proven connection reaches the peer proven, with the ESTABLISHED lifetime; a forged handshake with the SYN_RECV one")
    func provenTravels() throws {
        var owner = director(), peer = director()
        _ = owner.run(segment(port: 40000, flags: .syn), now: 1_000)
        _ = owner.run(segment(port: 40000, flags: .ack), now: 1_001)
        _ = owner.run(segment(port: 40001, flags: .syn), now: 1_000)
        _ = owner.run(segment(port: 40001, flags: .ack), now: 1_001)
        _ = owner.run(segment(port: 40001, flags: [.ack, .psh], data: Array("GET /".utf8)), now: 1_002)
        try owner.sync(to: &peer, now: 1_003)
        func replica(_ port: UInt16) -> ConnectionEntry<IPv4Address>? {
            let key = FlowKey(clientAddress: client, clientPort: port, virtualAddress: vip, virtualPort: 80, transport: .tcp)
            return peer.table.find(key, hash: key.tableHash).map { peer.table[$0] }
        }
        let timeouts = ConnectionTimeouts()
        let forged = try #require(replica(40000)), real = try #require(replica(40001))
        #expect(!forged.isProven && forged.expiresAt <= 1_003 + timeouts.synReceived + timeouts.replicaMargin(for: .synReceived))
        #expect(real.isProven && real.expiresAt >= 1_003 + timeouts.established)
    }

    @Test("a full shard of the worker's own half-open flows: the peer's records do not push one out")
    func replicasDoNotEvictOwnEntries() {
        var worker = director()
        for port in UInt16(0)..<64 { _ = worker.run(segment(port: 40000 + port, flags: .syn), now: 1_000) }
        #expect(worker.table.count == 64)
        for port in UInt16(0)..<32 {
            let key = FlowKey(clientAddress: client, clientPort: 30000 + port, virtualAddress: vip, virtualPort: 80, transport: .tcp)
            worker.apply(.upsert(key: key, state: .synReceived, realServerID: 1, lifetime: 60_000, claimsFlow: false), now: 1_001)
        }
        #expect(worker.counters[drop: .replicaTableFull] == 32 && worker.counters[.connectionsReclaimed] == 0)
        #expect(worker.changes.changes.filter { if case .removed = $0 { true } else { false } }.isEmpty, "no own flow was given up")
    }

    @Test("a new flow that takes a half-open replica's place leaves the load counts alone (they never wrap)")
    func reclaimedReplicaKeepsTheLoad() {
        var worker = director()
        for port in UInt16(0)..<64 {
            let key = FlowKey(clientAddress: client, clientPort: 30000 + port, virtualAddress: vip, virtualPort: 80, transport: .tcp)
            worker.apply(.upsert(key: key, state: .synReceived, realServerID: UInt16(port % 3 + 1), lifetime: 60_000, claimsFlow: false), now: 1_000)
        }
        for port in UInt16(0)..<6 {
            let (verdict, _) = worker.run(segment(port: 40000 + port, flags: .syn), now: 1_001)
            #expect(verdict != .drop)
        }
        #expect(worker.counters[.connectionsReclaimed] == 6)
        for server in UInt16(1)...3 {
            #expect(worker.load.inactiveConnections(server) == 2 && worker.load.activeConnections(server) == 0,
                    "server \(server): \(worker.load.inactiveConnections(server)) inactive, \(worker.load.activeConnections(server)) active")
        }
        #expect(worker.changes.changes.filter { if case .removed = $0 { true } else { false } }.isEmpty, "a replica's end is the peer's to report")
    }

    @Test("closing more connections than were opened leaves a count at zero")
    func loadNeverWraps() {
        let load = ConnectionLoad()
        load.connectionOpened(7, state: .established)
        load.connectionClosed(7, state: .established)
        load.connectionClosed(7, state: .established)
        load.connectionClosed(7, state: .synReceived)
        #expect(load.activeConnections(7) == 0 && load.inactiveConnections(7) == 0)
    }
}

@Suite("ACK probe")
struct AckProbeTests {
    @Test("the probe is a valid bare ACK from the VIP to the client, with checksums right and no data")
    func frame() {
        let key = FlowKey(clientAddress: client, clientPort: 40000, virtualAddress: vip, virtualPort: 80, transport: .tcp)
        let entry = ConnectionEntry(key: key, keyHash: key.tableHash, state: .established, realServerID: 1, expiresAt: 0, isReplica: true)
        #expect(AckProbe.applies(to: entry))
        let router = MACAddress("02:00:00:00:01:01")!
        let frame = AckProbe.frame(for: entry, from: vipMAC, to: router)
        guard case .ipv4(let flow) = frame.withUnsafeBytes({ FrameParser.parse($0.bytes) }) else { Issue.record("not parsed"); return }
        #expect(flow.sourceMAC == vipMAC && flow.destinationMAC == router)
        #expect(flow.source == vip && flow.destination == client && flow.sourcePort == 80 && flow.destinationPort == 40000)
        #expect(flow.tcpFlags == .ack && flow.packetLength == 40, "no payload")
        let ipSum = frame[14..<34].withUnsafeBytes { InternetChecksum.checksum($0.bytes) }
        #expect(ipSum == 0, "IPv4 header checksum verifies")
        var live = entry
        live.isReplica = false
        #expect(!AckProbe.applies(to: live), "a flow already carried here needs no probe")
    }

    @Test("the IPv6 probe: a bare ACK from the IPv6 VIP to the client, its TCP checksum right")
    func frame6() {
        let key = FlowKey(clientAddress: client6, clientPort: 40000, virtualAddress: vip6, virtualPort: 80, transport: .tcp)
        let entry = ConnectionEntry(key: key, keyHash: key.tableHash, state: .closeWait, realServerID: 1, expiresAt: 0, isReplica: true)
        #expect(AckProbe.applies(to: entry))
        let frame = AckProbe.frame(for: entry, from: vipMAC, to: MACAddress("02:00:00:00:01:01")!)
        guard case .ipv6(let flow) = frame.withUnsafeBytes({ FrameParser.parse($0.bytes) }) else { Issue.record("not parsed"); return }
        #expect(flow.source == vip6 && flow.destination == client6 && flow.sourcePort == 80 && flow.destinationPort == 40000)
        #expect(flow.tcpFlags == .ack && flow.packetLength == 60, "no payload")
        let pseudo = InternetChecksum.pseudoHeaderSum(source: vip6, destination: client6, length: 20, nextHeader: 6)
        #expect(frame[54...].withUnsafeBytes { InternetChecksum.sum($0.bytes, initial: pseudo) } == 0xFFFF, "TCP checksum verifies")
    }
}

extension ReplicaDecision {
    var clampedLifetime: UInt64? {
        guard case .apply(.upsert(_, _, _, let lifetime, _, _), true) = self else { return nil }
        return lifetime
    }
}
