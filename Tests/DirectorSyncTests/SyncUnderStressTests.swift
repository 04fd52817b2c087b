import DirectorCore
import DirectorSync
import DirectorWire
import Testing

/// The pair's promise when things go wrong: a restart, a NACK storm, a lost change, a refused
/// filter, a dispatcher unfit to serve. Each case on the simulated link of `SimulatedPair`.
@Suite("Sync under stress")
struct SyncUnderStressTests {
    @Test("a restarted peer starts at the sequence its survivor announces: nothing NACKed, nothing retransmitted")
    func restartStartsAtTheAnnouncedSequence() {
        var pair = SimulatedPair()
        var random = SeededGenerator(seed: 3)
        pair.step(milliseconds: 1_100)
        churn(&pair, onA: true, milliseconds: 300, perStep: 40, random: &random)
        #expect(pair.a.session.highestDataSequenceSent > 200, "A has a long history before B restarts")
        let retransmittedBefore = pair.a.session.counters.datagramsRetransmitted
        pair.b = SimulatedNode(id: 2, peer: 1, share: .evenShare(64, node: 1, of: 2), now: pair.now, incarnation: 2)
        pair.step(milliseconds: 300)
        #expect(pair.b.session.counters.nacksSent == 0, "the history before the restart is the snapshot's, not the NACKs'")
        #expect(pair.a.session.counters.datagramsRetransmitted == retransmittedBefore)
        #expect(pair.b.events.contains(.caughtUp))
        #expect(sameFlows(pair.a.ownTable, pair.b.replica), "replica \(pair.b.replica.count) vs owner \(pair.a.ownTable.count)")
        #expect(pair.a.ownership == pair.a.session.configuredShare && pair.b.ownership == pair.b.session.configuredShare)
    }

    @Test("one NACK for everything is answered a bounded number of datagrams per tick, the kept bytes, each once")
    func nackIsPaced() {
        var pair = SimulatedPair()
        var random = SeededGenerator(seed: 5)
        pair.step(milliseconds: 1_100)
        churn(&pair, onA: true, milliseconds: 100, perStep: 100, random: &random)
        let sent = pair.a.session.highestDataSequenceSent
        #expect(sent > 200)
        // A NACK from B's node for every data sequence there is, as a peer with a bug might send.
        let codec = SyncCodec(key: key)!
        let nack = codec.encode(SyncDatagram(header: SyncHeader(nodeID: 2, incarnation: 1, sequence: 1 << 40, sentAt: 0),
                                             body: .nack(missing: [1...(UInt64.max - 1)])))
        let before = pair.a.session.counters.datagramsRetransmitted
        pair.a.receive(nack, now: pair.now)
        var largestTick = 0
        for _ in 0..<15 {
            pair.now += 1_000_000
            pair.a.tick(now: pair.now)
            let out = pair.a.session.takeOutgoing()
            largestTick = max(largestTick, out.count)
        }
        let retransmitted = pair.a.session.counters.datagramsRetransmitted - before
        #expect(largestTick <= pair.a.session.settings.retransmissionsPerTick + 4, "at most the per-tick budget (and a few control datagrams)")
        #expect(retransmitted == sent, "every kept datagram once: \(retransmitted) of \(sent)")
        #expect(pair.a.session.counters.retransmissionsUnavailable >= UInt64(pair.a.session.settings.retention) - sent)
    }

    @Test("a change lost to a full worker ring makes the peer resync, and the lost change arrives with the snapshot")
    func lostChangeMakesThePeerResync() {
        var pair = SimulatedPair()
        var random = SeededGenerator(seed: 13)
        pair.step(milliseconds: 1_100)
        churn(&pair, onA: true, milliseconds: 50, perStep: 20, random: &random)
        let snapshotsBefore = pair.b.session.counters.snapshotsCompleted
        // The worker's ring was full: the change is in A's table, never in the session.
        let lost = flowRecord(90_000, change: .created)
        pair.a.ownTable[lost.ipv4Key] = lost
        pair.a.session.recordsLost(now: pair.now, wallClock: pair.now)
        churn(&pair, onA: true, milliseconds: 20, perStep: 5, random: &random)
        pair.step(milliseconds: 200)
        #expect(pair.a.session.counters.sequencesSkipped == 1)
        #expect(pair.b.session.counters.snapshotsCompleted > snapshotsBefore, "the gap could not be repaired by NACK: a snapshot followed")
        #expect(pair.b.replica[lost.ipv4Key] != nil, "the lost change arrived with the snapshot")
        #expect(sameFlows(pair.a.ownTable, pair.b.replica))
    }

    @Test("buckets a dispatcher cannot accept go back to the peer at once; it tries again after a pause")
    func refusedTakeGoesBack() {
        var pair = SimulatedPair(startB: false)
        pair.step(milliseconds: 1_100)
        #expect(pair.a.ownership == .all(64))
        pair.b = SimulatedNode(id: 2, peer: 1, share: .evenShare(64, node: 1, of: 2), now: pair.now, incarnation: 2)
        pair.b.failingTakes = 1
        pair.unservedBucketSteps = 0
        pair.step(milliseconds: 300)
        #expect(pair.b.session.counters.handoverFailures == 1)
        #expect(pair.a.ownership == .all(64), "A took back what B could not accept")
        #expect(pair.b.ownership.ownedCount == 0, "B waits before it asks again")
        #expect(pair.unservedBucketSteps <= 64 * 5, "no bucket was left without an owner for long")
        pair.step(milliseconds: 1_500)
        #expect(pair.a.ownership == pair.a.session.configuredShare && pair.b.ownership == pair.b.session.configuredShare,
                "after the pause B asked again and took its share")
    }

    @Test("a dispatcher unfit to serve withholds its heartbeats: the peer takes over; fit again, it takes its share back")
    func faultHandsEverythingToThePeer() {
        var pair = SimulatedPair()
        pair.step(milliseconds: 1_100)
        // As the daemon does on a fault with a live peer: stop accepting, stop the heartbeats.
        pair.a.silent = true
        pair.a.session.setFault(true)
        pair.a.ownership = .none(64)
        pair.unservedBucketSteps = 0
        pair.step(milliseconds: 60)
        #expect(pair.b.ownership == .all(64), "B declared A dead and serves everything")
        #expect(pair.b.session.counters.peerDeaths == 1)
        #expect(pair.unservedBucketSteps <= 32 * 45, "A's share was unserved for at most the detection time")
        pair.step(milliseconds: 500)
        #expect(pair.a.ownership.ownedCount == 0, "in fault, A asks for nothing")
        pair.a.silent = false
        pair.a.session.setFault(false)
        pair.unservedBucketSteps = 0
        pair.step(milliseconds: 300)
        #expect(pair.a.ownership == pair.a.session.configuredShare && pair.b.ownership == pair.b.session.configuredShare)
        #expect(pair.unservedBucketSteps <= 32, "the handback left the buckets unserved for at most a step")
    }

    @Test("a dispatcher that once served alone, fit again beside a live peer, asks for its share: it never takes the peer's buckets")
    func faultAfterServingAlone() {
        var pair = SimulatedPair(startB: false)
        pair.step(milliseconds: 1_100)
        #expect(pair.a.ownership == .all(64), "no peer within the start-up grace: A serves everything")
        pair.b = SimulatedNode(id: 2, peer: 1, share: .evenShare(64, node: 1, of: 2), now: pair.now, incarnation: 2)
        pair.step(milliseconds: 300)
        #expect(pair.a.ownership == pair.a.session.configuredShare && pair.b.ownership == pair.b.session.configuredShare)
        pair.a.silent = true
        pair.a.session.setFault(true)
        pair.a.ownership = .none(64)
        pair.step(milliseconds: 100)
        #expect(pair.b.ownership == .all(64), "B declared A dead and serves everything")
        pair.a.silent = false
        let eventsBefore = pair.a.events.count
        pair.a.session.setFault(false)
        var mostServedTwice = 0
        for _ in 0..<300 {
            pair.step()
            mostServedTwice = max(mostServedTwice, pair.a.ownership.intersection(pair.b.ownership).ownedCount)
        }
        #expect(!pair.a.events[eventsBefore...].contains(.takeAll), "A asked for its share instead of taking everything")
        #expect(mostServedTwice == 0, "no bucket was accepted by both: \(mostServedTwice) at most")
        #expect(pair.a.ownership == pair.a.session.configuredShare && pair.b.ownership == pair.b.session.configuredShare)
    }

    @Test("a heartbeat on the sync channel, or anything else on the liveness channel, is refused")
    func channelsStayApart() {
        let codec = SyncCodec(key: key)!
        var liveness = LivenessChannel(nodeID: 1, peerNodeID: 2, incarnation: 5, codec: codec)
        var peerLiveness = LivenessChannel(nodeID: 2, peerNodeID: 1, incarnation: 9, codec: codec)
        // The handshake first: the peer hears this side's challenge and echoes it.
        _ = peerLiveness.receive(liveness.heartbeat(HeartbeatAnnouncement(ownershipVersion: 1, highestDataSequence: 0, bucketCount: 64, ownedBuckets: 32),
                                                    wallClock: 0), now: 0)
        let heartbeat = peerLiveness.heartbeat(HeartbeatAnnouncement(ownershipVersion: 1, highestDataSequence: 7, bucketCount: 64, ownedBuckets: 32),
                                               wallClock: 0)
        let ack = codec.encode(SyncDatagram(header: SyncHeader(nodeID: 2, incarnation: 9, sequence: 50, sentAt: 0), body: .ack(dataSequence: 0)))
        #expect(liveness.receive(ack, now: 1) == nil)
        #expect(liveness.rejected[SyncRejection.wrongChannel.rawValue] == 1)
        let heard = liveness.receive(heartbeat, now: 2)
        #expect(heard?.announcement.highestDataSequence == 7 && heard?.incarnation == 9 && heard?.heardAt == 2)
        #expect(liveness.receive(heartbeat, now: 3) == nil, "a heartbeat once")
        var session = SyncSession(settings: SyncSettings(nodeID: 1, peerNodeID: 2), configuredShare: .all(64), codec: codec, incarnation: 5, now: 0)
        session.receive(heartbeat, now: 4, wallClock: 4)
        #expect(session.counters[rejected: .wrongChannel] == 1)
        #expect(session.peer == .unknown, "only the liveness channel brings a peer to life")
    }

    @Test("a request for every bucket releases only the requester's configured share, never this side's own")
    func requestBeyondShare() {
        var pair = SimulatedPair()
        pair.step(milliseconds: 1_100)
        let share = pair.a.session.configuredShare
        #expect(pair.a.ownership == share)
        let codec = SyncCodec(key: key)!
        let request = codec.encode(SyncDatagram(
            header: SyncHeader(nodeID: 2, incarnation: 1, sequence: 1 << 40, sentAt: 0),
            body: .ownership(version: 1 << 40, highestDataSequence: pair.b.session.highestDataSequenceSent, action: .request,
                             clientNextHop: .zero, ranges: [0...63])))
        let eventsBefore = pair.a.events.count
        pair.a.receive(request, now: pair.now)
        for _ in 0..<200 {
            pair.step()
            #expect(pair.a.ownership == share, "A kept its own share throughout: \(pair.a.ownership)")
            if pair.a.ownership != share { break }
        }
        #expect(pair.a.session.counters.requestsBeyondShare == 1)
        #expect(!pair.a.events[eventsBefore...].contains { if case .release = $0 { true } else { false } })
    }
}

@Suite("Stream repair")
struct StreamRepairTests {
    static let policy = DeltaInbox.Policy(nackInterval: 3, nacksBeforeResync: 5, widestRepairableGap: 1_000)
    static let batch = DeltaInbox.Batch(records: [], changedAt: 0)

    @Test("a fresh inbox starts at the first sequence it hears of, announced or received")
    func anchoring() {
        var announced = DeltaInbox(policy: StreamRepairTests.policy)
        announced.senderHasSent(upTo: 900)
        #expect(announced.missingCount == 0 && announced.contiguous == 900)
        #expect(announced.receive(901, StreamRepairTests.batch)?.count == 1)
        var received = DeltaInbox(policy: StreamRepairTests.policy)
        #expect(received.receive(500, StreamRepairTests.batch)?.count == 1)
        #expect(received.missingCount == 0 && received.contiguous == 500)
        received.restart()
        received.senderHasSent(upTo: 3)
        #expect(!received.needsResync && received.missingCount == 0, "after a restart, the count starts where the sender says")
        #expect(received.receive(0, StreamRepairTests.batch) == nil && received.receive(.max, StreamRepairTests.batch) == nil,
                "0 and the largest sequence are refused, never a trap")
    }

    @Test("gaps fill from either end or the middle; NACKs go oldest first, a bounded number at a time")
    func gaps() {
        var inbox = DeltaInbox(policy: StreamRepairTests.policy)
        _ = inbox.receive(1, StreamRepairTests.batch)
        _ = inbox.receive(10, StreamRepairTests.batch)      // 2...9 missing
        _ = inbox.receive(20, StreamRepairTests.batch)      // 11...19 missing
        #expect(inbox.missingCount == 17)
        #expect(inbox.rangesToNack(now: 100, limit: 1) == [2...9])
        #expect(inbox.rangesToNack(now: 100) == [11...19], "the first gap was NACKed this tick already")
        #expect(inbox.receive(5, StreamRepairTests.batch) == [], "held behind the gap")
        #expect(inbox.receive(5, StreamRepairTests.batch) == nil, "a second copy")
        _ = inbox.receive(2, StreamRepairTests.batch)
        _ = inbox.receive(9, StreamRepairTests.batch)
        #expect(inbox.rangesToNack(now: 103) == [3...4, 6...8, 11...19])
        #expect(inbox.missingCount == 14 && inbox.contiguous == 2)
        for sequence: UInt64 in [3, 4, 6, 7, 8] { _ = inbox.receive(sequence, StreamRepairTests.batch) }
        #expect(inbox.contiguous == 10 && inbox.missingCount == 9)
    }
}

@Suite("Retransmission queue")
struct RetransmissionQueueTests {
    @Test("NACKed sequences are queued once, served oldest first within a limit, clamped to what is kept")
    func queue() {
        var queue = RetransmissionQueue(retention: 100)
        #expect(queue.add(150...160, highest: 200) == 0)
        #expect(queue.add(155...158, highest: 200) == 0, "already queued: once")
        #expect(queue.count == 11)
        #expect(queue.add(90...110, highest: 200) == 11, "90…100 are no longer kept")
        #expect(queue.add(190...260, highest: 200) == 60, "201…260 were never sent")
        #expect(queue.take(limit: 5, highest: 200) == [101, 102, 103, 104, 105])
        #expect(queue.count == 11 + 10 + 11 - 5)
        let rest = queue.take(limit: 1_000, highest: 200)
        #expect(rest.first == 106 && rest.last == 200 && rest.count == 27 && queue.isEmpty)
        #expect(queue.add(0...(UInt64.max - 1), highest: 200) == 100, "the whole number space counts as the retention, no overflow")
        #expect(queue.count == 100)
        #expect(queue.take(limit: 3, highest: 250) == [151, 152, 153], "slots whose sequence left the retention serve the newer one")
    }
}
