import DirectorCore
import DirectorWire
import Testing

private let clientMAC = MACAddress("02:00:00:00:01:01")!
private let vipMAC = MACAddress("02:00:00:00:00:64")!
private let client = IPv4Address(198, 18, 1, 10)
private let vip = IPv4Address(198, 18, 0, 100)
private let toVIP = PacketBuilder().ethernet(from: clientMAC, to: vipMAC).ipv4(from: client, to: vip)

private func segment(_ flags: TCPFlags, payload: [UInt8] = []) -> [UInt8] {
    toVIP.tcp(sourcePort: 40000, destinationPort: 80, flags: flags).payload(payload).build()
}

private let flow = FastPathFlow(clientAddress: client, virtualAddress: vip, clientPort: 40000, virtualPort: 80, transport: .tcp)
/// The same flow's key in the connection table.
private let key = FlowKey(clientAddress: client, clientPort: 40000, virtualAddress: vip, virtualPort: 80, transport: .tcp)

/// A forwarder whose worker runs the XDP fast path; its services count under statistics ids 7
/// (TCP port 80) and 8 (UDP port 53).
private func offloadingForwarder(_ scheduler: SchedulerKind = .maglev) -> Forwarder<RecordingSink> {
    var forwarder = makeForwarder(scheduler)
    var settings = forwarder.settings
    settings.offloadsEstablishedFlows = true
    var services = forwarder.services.services
    for index in services.indices { services[index].statisticsID = UInt16(7 + index) }
    forwarder.install(ServiceTable(services: services), settings: settings)
    return forwarder
}

/// The requests queued since the last call, emptied.
private func take(_ forwarder: inout Forwarder<RecordingSink>) -> [FastPathRequest] {
    var taken: [FastPathRequest] = []
    _ = forwarder.fastPathRequests.drain { taken.append($0) }
    return taken
}

/// The real server a forwarded frame went to.
private func server(of frame: [UInt8]) -> MACAddress {
    MACAddress(rawValue: frame.prefix(6).reduce(0) { $0 << 8 | UInt64($1) })
}

/// The offer of `flow` once `sent` was forwarded: the MAC of the server it went to, and the ids
/// the program counts its frames under (that server's, its service's).
private func offer(of flow: FastPathFlow, sent: [UInt8], by forwarder: borrowing Forwarder<RecordingSink>) -> FastPathRequest {
    let service = forwarder.services.services.first { $0.port == flow.virtualPort }!
    let member = service.pool.first { $0.mac == server(of: sent) }!
    var offered = flow
    offered.serverMAC = member.mac
    offered.serverID = member.id
    offered.serviceID = service.statisticsID
    return .offer(offered)
}

@Suite("XDP fast path: what the pipeline offers and withdraws")
struct FastPathTests {
    @Test("a TCP flow is offered once established and proven (data after the handshake), with its server's MAC; once per generation")
    func offeredWhenProven() {
        var forwarder = offloadingForwarder()
        _ = forwarder.run(segment(.syn))
        _ = forwarder.run(segment(.ack))
        #expect(take(&forwarder).isEmpty, "an ESTABLISHED entry without data is not proven: two forged frames make one")
        let (verdict, sent) = forwarder.run(segment([.ack, .psh], payload: Array("GET / HTTP/1.1\r\n\r\n".utf8)))
        guard case .transmitOnBack = verdict else { Issue.record("not forwarded: \(verdict)"); return }
        let offered = offer(of: flow, sent: sent, by: forwarder)
        if case .offer(let counted) = offered {
            #expect(counted.serverID != 0 && counted.serviceID == 7, "counted under its server's id and its service's")
        }
        #expect(take(&forwarder) == [offered])
        _ = forwarder.run(segment(.ack), now: 1_100)
        #expect(take(&forwarder).isEmpty, "offered once")
        forwarder.fastPathGeneration = 1
        _ = forwarder.run(segment(.ack), now: 1_200)
        #expect(take(&forwarder) == [offered], "a flush: the next frame on the ring offers the flow again")
        #expect(forwarder.counters[.fastPathOffers] == 2)
    }

    @Test("a FIN or RST passed to the ring withdraws the flow; the rest of the connection stays on the ring")
    func withdrawnAtTheEnd() {
        for ending: TCPFlags in [[.fin, .ack], .rst] {
            var forwarder = offloadingForwarder()
            _ = forwarder.run(segment(.syn))
            _ = forwarder.run(segment(.ack, payload: [1, 2, 3]))
            _ = take(&forwarder)
            _ = forwarder.run(segment(ending), now: 2_000)
            #expect(take(&forwarder) == [.withdraw(flow)], "\(ending)")
            _ = forwarder.run(segment(.ack), now: 2_100)
            #expect(take(&forwarder).isEmpty, "an ended connection is never offered again")
        }
    }

    @Test("expiry asks the program: a flow it forwarded lately stays, the peer hears it is busy; an idle one goes and is withdrawn")
    func expiryReadsTheProgram() {
        var forwarder = offloadingForwarder()
        _ = forwarder.run(segment(.syn))
        _ = forwarder.run(segment(.ack, payload: [1]), now: 1_000)
        _ = take(&forwarder)
        let timeout = forwarder.settings.timeouts.timeout(for: .established)
        let changesBefore = forwarder.changes.changes.count
        // Half a timeout on: the entry is due for review, and the program saw the flow a moment ago.
        var now = 1_000 + timeout / 2 + 1
        forwarder.expire(now: now, budget: 1024) { asked in
            #expect(asked == flow)
            return now - 5
        }
        #expect(forwarder.table.count == 1, "kept: the program forwarded it within a timeout")
        #expect(forwarder.counters[.fastPathReviewsAlive] == 1)
        guard case .refreshed? = forwarder.changes.changes.dropFirst(changesBefore).first else {
            Issue.record("the peer's replica is refreshed: \(forwarder.changes.changes.dropFirst(changesBefore))")
            return
        }
        // A whole timeout without a frame: gone, from the table and from the program.
        now += timeout + 1
        forwarder.expire(now: now, budget: forwarder.table.slotCount) { _ in 1_000 + timeout / 2 }
        #expect(forwarder.table.count == 0)
        #expect(take(&forwarder) == [.withdraw(flow)])
        #expect(forwarder.counters[.connectionsExpired] == 1)
    }

    @Test("a flow the program no longer has (pushed out of its map) is the ring's again: a whole timeout from its last frame there, offered again by its next")
    func missingFromTheProgram() {
        var forwarder = offloadingForwarder()
        _ = forwarder.run(segment(.syn))
        _ = forwarder.run(segment(.ack, payload: [1]), now: 1_000)
        _ = take(&forwarder)
        let timeout = forwarder.settings.timeouts.timeout(for: .established)
        forwarder.expire(now: 1_000 + timeout / 2 + 1, budget: forwarder.table.slotCount) { _ in nil }
        #expect(forwarder.table.count == 1, "kept: the ring carries it now")
        #expect(forwarder.counters[.fastPathReviewsMissing] == 1)
        #expect(take(&forwarder).isEmpty, "nothing to withdraw")
        forwarder.expire(now: 1_000 + timeout - 1, budget: forwarder.table.slotCount) { _ in Issue.record("asked again"); return nil }
        #expect(forwarder.table.count == 1, "alive until a whole timeout after its last frame")
        let (_, sent) = forwarder.run(segment(.ack), now: 1_000 + timeout - 1)
        #expect(take(&forwarder) == [offer(of: flow, sent: sent, by: forwarder)], "its next frame on the ring offers it again")
    }

    @Test("a flow whose frames come VLAN-tagged or with the checksum left to offload is never offered: the program would forward them wrong")
    func framesTheProgramCannotForward() {
        for (pending, tagged) in [(true, false), (false, true)] {
            var forwarder = offloadingForwarder()
            for (index, frame) in [segment(.syn), segment(.ack, payload: [1]), segment(.ack)].enumerated() {
                var bytes = frame
                _ = bytes.withUnsafeMutableBytes { buffer in
                    var span = buffer.mutableBytes
                    return forwarder.process(&span, now: 1_000 + UInt64(index), checksumPending: pending, vlanTagged: tagged)
                }
            }
            #expect(forwarder.table.count == 1 && take(&forwarder).isEmpty, "pending \(pending), tagged \(tagged)")
        }
    }

    @Test("nothing is offered without the fast path; UDP after its second datagram")
    func whatIsNeverOffered() {
        var off = makeForwarder()
        _ = off.run(segment(.syn))
        _ = off.run(segment(.ack, payload: [1]))
        _ = off.run(segment(.ack))
        #expect(take(&off).isEmpty)

        var forwarder = offloadingForwarder()
        let datagram = toVIP.udp(sourcePort: 5000, destinationPort: 53).payload([1, 2, 3, 4]).build()
        _ = forwarder.run(datagram)
        #expect(take(&forwarder).isEmpty, "one datagram proves nothing")
        let (_, sent) = forwarder.run(datagram, now: 1_001)
        let udp = FastPathFlow(clientAddress: client, virtualAddress: vip, clientPort: 5000, virtualPort: 53, transport: .udp)
        #expect(take(&forwarder) == [offer(of: udp, sent: sent, by: forwarder)])
    }

    @Test("the peer claiming the flow (it took it over) withdraws it: its program carries it now")
    func yieldedToThePeer() {
        var forwarder = offloadingForwarder()
        _ = forwarder.run(segment(.syn))
        _ = forwarder.run(segment(.ack, payload: [1]))
        _ = take(&forwarder)
        forwarder.apply(.upsert(key: key, state: .established, realServerID: forwarder.table[forwarder.table.find(key, hash: key.tableHash)!].realServerID,
                                lifetime: 60_000, claimsFlow: true, proven: true), now: 2_000)
        #expect(take(&forwarder) == [.withdraw(flow)])
        let slot = forwarder.table.find(key, hash: key.tableHash)!
        #expect(forwarder.table[slot].isReplica && !forwarder.table[slot].isOffloaded)
    }

    /// An offloaded flow whose server has just been given weight 0: the snapshot's flush sends
    /// its next frame to the ring, where it meets the new table.
    /// Returns that server's id.
    private static func offloadFlowAndQuiesceItsServer(_ forwarder: inout Forwarder<RecordingSink>, resetting: Bool) -> UInt16 {
        _ = forwarder.run(segment(.syn))
        _ = forwarder.run(segment(.ack, payload: [1]))
        _ = take(&forwarder)
        let server = forwarder.table[forwarder.table.find(key, hash: key.tableHash)!].realServerID
        var weights: [UInt32] = [1, 1, 1]
        weights[Int(server) - 1] = 0
        forwarder.install(ServiceTable(services: [VirtualService(address: vip, port: 80, transport: .tcp, pool: pool(weights), scheduler: .roundRobin)],
                                       resetting: resetting ? [server] : []), settings: forwarder.settings)
        forwarder.fastPathGeneration &+= 1
        return server
    }

    @Test("a connection whose server failed, in a service that resets: the frame the flush sends to the ring gets the reset, and the flow is withdrawn")
    func withdrawnOnReset() {
        var forwarder = offloadingForwarder(.roundRobin)
        _ = FastPathTests.offloadFlowAndQuiesceItsServer(&forwarder, resetting: true)
        let (verdict, _) = forwarder.run(segment(.ack, payload: [2]), now: 2_000)
        guard case .answer = verdict else { Issue.record("no reset: \(verdict)"); return }
        #expect(take(&forwarder) == [.withdraw(flow)])
        #expect(forwarder.counters[.connectionsReset] == 1)
    }

    @Test("a SYN reusing the client port of an offloaded connection whose server takes no new connections: withdrawn, scheduled afresh, offered again once proven")
    func withdrawnOnReopen() {
        var forwarder = offloadingForwarder(.roundRobin)
        let oldServer = FastPathTests.offloadFlowAndQuiesceItsServer(&forwarder, resetting: false)
        _ = forwarder.run(segment(.syn), now: 2_000)
        #expect(forwarder.counters[.connectionsReopened] == 1)
        #expect(take(&forwarder) == [.withdraw(flow)], "the program must not carry the new connection to the old server")
        let slot = forwarder.table.find(key, hash: key.tableHash)!
        #expect(forwarder.table[slot].realServerID != oldServer && !forwarder.table[slot].isOffloaded)
        _ = forwarder.run(segment(.ack), now: 2_100)
        let (_, sent) = forwarder.run(segment([.ack, .psh], payload: [3]), now: 2_200)
        #expect(take(&forwarder) == [offer(of: flow, sent: sent, by: forwarder)], "offered again, with the new server's MAC and id")
    }

    @Test("a withdrawal that does not fit the queue turns into a flush; an offer that does not fit is just not made")
    func overflowFlushes() {
        var requests = FastPathRequests(capacity: 1)
        requests.reserve()
        let first = requests.offer(flow), second = requests.offer(flow)
        #expect(first && !second)
        requests.withdraw(flow)
        #expect(requests.mustFlush)
        let outcome = requests.drain { _ in }
        #expect(outcome.flush && outcome.count == 1)
        #expect(requests.isEmpty)
    }
}
