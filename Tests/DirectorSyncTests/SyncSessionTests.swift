import DirectorCore
import DirectorSync
import DirectorWire
import Testing

/// xorshift64*: a seeded generator, so a lossy run is the same run every time.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed | 1 }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }
}

/// One dispatcher as the session sees it: its own table (key → record), its replica of the
/// peer's, and the buckets it accepts. It carries out the session's events the way the daemon does.
struct SimulatedNode: ~Copyable {
    var session: SyncSession
    /// The liveness channel, as the daemon's liveness thread runs it: a heartbeat every interval.
    var liveness: LivenessChannel
    var lastBeat: UInt64?
    var heartbeats: [[UInt8]] = []
    /// Heartbeats withheld, as the liveness thread does while the dispatcher is unfit.
    var silent = false
    /// Takes that fail, as when the kernel refuses the new filter.
    var failingTakes = 0
    var ownTable: [FlowKey<IPv4Address>: SyncRecord] = [:]
    var replica: [FlowKey<IPv4Address>: SyncRecord] = [:]
    /// Replicas written since the current resync began (the daemon's workers mark them with an epoch).
    var touchedSinceResync: Set<FlowKey<IPv4Address>> = []
    var ownership: BucketOwnership
    var events: [SyncEvent] = []
    var peerHealth: [(version: UInt64, reports: [ServerHealthReport])] = []
    var running = true

    init(id: UInt8, peer: UInt8, share: BucketOwnership, now: UInt64, retention: Int = 8192, incarnation: UInt64 = 1, deadAfterMissed: Int = 3) {
        session = SyncSession(settings: SyncSettings(nodeID: id, peerNodeID: peer, deadAfterMissed: deadAfterMissed, retention: retention), configuredShare: share,
                              codec: SyncCodec(key: key)!, incarnation: incarnation, now: now)
        liveness = LivenessChannel(nodeID: id, peerNodeID: peer, incarnation: incarnation, codec: SyncCodec(key: key)!)
        ownership = .none(share.bucketCount)
    }

    /// A change to this node's own table, reported to the session as a worker would.
    mutating func change(_ record: SyncRecord, now: UInt64) {
        if record.change == .removed { ownTable[record.ipv4Key] = nil } else { ownTable[record.ipv4Key] = record }
        session.record(record, changedAt: now, now: now)
    }

    mutating func tick(now: UInt64) {
        session.tick(now: now, wallClock: now, ownership: ownership)
        handleEvents(now: now)
        if !silent, lastBeat.map({ now - $0 >= session.settings.heartbeatInterval }) ?? true {
            lastBeat = now
            heartbeats.append(liveness.heartbeat(session.announcement, wallClock: now))
        }
    }

    mutating func receive(_ bytes: [UInt8], now: UInt64) {
        session.receive(bytes, now: now, wallClock: now)
        handleEvents(now: now)
    }

    /// A datagram on the liveness socket.
    mutating func receiveHeartbeat(_ bytes: [UInt8], now: UInt64) {
        guard let heartbeat = liveness.receive(bytes, now: now) else { return }
        session.heard(heartbeat, now: now, wallClock: now)
        handleEvents(now: now)
    }

    mutating func takeHeartbeats() -> [[UInt8]] {
        defer { heartbeats.removeAll() }
        return heartbeats
    }

    private mutating func handleEvents(now: UInt64) {
        for event in session.takeEvents() {
            events.append(event)
            switch event {
            case .apply(let records, _):
                for record in records {
                    if record.change == .removed { replica[record.ipv4Key] = nil } else { replica[record.ipv4Key] = record }
                    touchedSinceResync.insert(record.ipv4Key)
                }
            case .resyncStarted:
                touchedSinceResync = []
            case .resyncCompleted:
                replica = replica.filter { touchedSinceResync.contains($0.key) }
            case .snapshotWanted(let id):
                for record in ownTable.values.sorted(by: { $0.clientPort < $1.clientPort }) {
                    var entry = record
                    entry.change = .refreshed
                    session.appendSnapshot(entry, requestID: id, now: now, wallClock: now)
                }
                session.finishSnapshot(requestID: id, now: now, wallClock: now)
            case .takeAll:
                ownership = .all(ownership.bucketCount)
            case .release(let buckets):
                ownership = ownership.subtracting(buckets)
                session.didRelease(buckets, stoppedAt: now, now: now, wallClock: now)
            case .take(let buckets):
                if failingTakes > 0 {
                    failingTakes -= 1
                    session.takeFailed(buckets, now: now, wallClock: now)
                    continue
                }
                ownership = ownership.union(buckets)
                session.didTake(buckets, now: now, wallClock: now)
            case .peerHealth(let version, let reports):
                peerHealth.append((version, reports))
            case .peerAlive, .peerDead, .ownPauseExcused, .caughtUp, .handoverCompleted:
                break
            }
        }
    }
}

/// Two simulated nodes joined by a link that can lose datagrams or be cut, on a simulated clock
/// of 1 ms steps (datagrams cross within the step they are sent in).
struct SimulatedPair: ~Copyable {
    var a: SimulatedNode
    var b: SimulatedNode
    var now: UInt64 = 1_000_000_000
    var lossRate = 0.0
    var linkUp = true
    var random = SeededGenerator(seed: 42)
    var delivered = 0
    var lost = 0
    /// Buckets neither node accepted, summed over steps (handovers should leave none for long).
    var unservedBucketSteps = 0
    /// While set, B's heartbeats are recorded as they leave (an eavesdropper's capture).
    var capturingB = false
    var captured: [[UInt8]] = []

    init(bucketCount: UInt32 = 64, retention: Int = 8192, startB: Bool = true, deadAfterMissed: Int = 3) {
        a = SimulatedNode(id: 1, peer: 2, share: .evenShare(bucketCount, node: 0, of: 2), now: now, retention: retention, deadAfterMissed: deadAfterMissed)
        b = SimulatedNode(id: 2, peer: 1, share: .evenShare(bucketCount, node: 1, of: 2), now: now, retention: retention, deadAfterMissed: deadAfterMissed)
        b.running = startB
    }

    mutating func step(milliseconds: Int = 1) {
        for _ in 0..<milliseconds {
            now += 1_000_000
            if a.running { a.tick(now: now) }
            if b.running { b.tick(now: now) }
            let beatsFromA = a.running ? a.takeHeartbeats() : []
            let beatsFromB = b.running ? b.takeHeartbeats() : []
            if capturingB { captured += beatsFromB }
            for bytes in beatsFromA where transmits() { if b.running { b.receiveHeartbeat(bytes, now: now) } }
            for bytes in beatsFromB where transmits() { if a.running { a.receiveHeartbeat(bytes, now: now) } }
            // Both directions, until nothing is left in flight.
            var rounds = 0
            while rounds < 8 {
                rounds += 1
                let fromA = a.running ? a.session.takeOutgoing() : []
                let fromB = b.running ? b.session.takeOutgoing() : []
                if fromA.isEmpty && fromB.isEmpty { break }
                for bytes in fromA where transmits() { if b.running { b.receive(bytes, now: now) } }
                for bytes in fromB where transmits() { if a.running { a.receive(bytes, now: now) } }
            }
            let served = (a.running ? a.ownership : .none(a.ownership.bucketCount)).union(b.running ? b.ownership : .none(b.ownership.bucketCount))
            unservedBucketSteps += Int(served.bucketCount) - served.ownedCount
        }
    }

    /// Steps 1 ms at a time, at most `limit` steps, until A declares B dead; how long after
    /// `since` it did (`UInt64.max` if it did not). `running(step)` says whether A runs in a step.
    mutating func stepUntilADeclaresDeath(since: UInt64, limit: Int = 100, aRuns running: (Int) -> Bool = { _ in true }) -> UInt64 {
        for step in 1...limit {
            a.running = running(step)
            self.step()
            if a.events.contains(where: { if case .peerDead = $0 { true } else { false } }) { return now - since }
        }
        return .max
    }

    private mutating func transmits() -> Bool {
        guard linkUp, Double.random(in: 0..<1, using: &random) >= lossRate else { lost += 1; return false }
        delivered += 1
        return true
    }
}

func flowRecord(_ n: Int, change: SyncRecord.Change, state: ConnectionState = .established) -> SyncRecord {
    SyncRecord(change: change, state: state, transport: .tcp, clientAddress: IPv4Address(198, 18, 1, UInt8(10 + n % 200)),
               clientPort: UInt16(10_000 + n / 200), virtualAddress: IPv4Address(198, 18, 0, 100), virtualPort: 80,
               realServerAddress: IPv4Address(198, 18, 2, UInt8(11 + n % 3)), realServerPort: 80, remainingLifetime: 900_000)
}

/// Creates, advances and closes flows on `node` for `milliseconds`, `perStep` changes a step; the
/// flows it touches are the ones it numbered (`flowRecord`), the same in every run of a seed.
func churn(_ pair: inout SimulatedPair, onA: Bool, milliseconds: Int, perStep: Int, random: inout SeededGenerator) {
    var next = (onA ? pair.a.ownTable.count : pair.b.ownTable.count) + 1
    for _ in 0..<milliseconds {
        for _ in 0..<perStep {
            let table = onA ? pair.a.ownTable : pair.b.ownTable
            let roll = Int.random(in: 0..<10, using: &random)
            var record: SyncRecord
            // The flow to change is chosen by its number, not from the dictionary: a dictionary's
            // order differs from process to process, and the run must be the same every time.
            if roll >= 5, next > 1, var existing = table[flowRecord(Int.random(in: 1..<next, using: &random), change: .created).ipv4Key] {
                existing.change = roll < 8 ? .stateChanged : .removed
                existing.state = roll < 8 ? .established : existing.state
                record = existing
            } else {
                record = flowRecord(next, change: .created, state: .synReceived)
                next += 1
            }
            if onA { pair.a.change(record, now: pair.now) } else { pair.b.change(record, now: pair.now) }
        }
        pair.step()
    }
}

/// Compares what matters to forwarding: which flows exist and where they go, in which state.
func sameFlows(_ left: [FlowKey<IPv4Address>: SyncRecord], _ right: [FlowKey<IPv4Address>: SyncRecord]) -> Bool {
    guard left.count == right.count else { return false }
    return left.allSatisfy { key, record in
        guard let other = right[key] else { return false }
        return other.realServerAddress == record.realServerAddress && other.state == record.state
    }
}

@Suite("Sync session")
struct SyncSessionTests {
    @Test("10 % of datagrams lost both ways: NACKs and retransmissions make the replica equal the owner's table")
    func lossyLinkConverges() {
        // Only heartbeats count as signs of life; at 10 % loss three in a row go missing now and
        // then, so a link this lossy is run with a more patient liveness setting.
        var pair = SimulatedPair(deadAfterMissed: 10)
        pair.step(milliseconds: 20)
        pair.lossRate = 0.10
        var random = SeededGenerator(seed: 7)
        churn(&pair, onA: true, milliseconds: 2_000, perStep: 10, random: &random)
        pair.step(milliseconds: 200)
        #expect(pair.lost > 100, "the link did lose datagrams")
        #expect(pair.a.session.counters.datagramsRetransmitted > 0 && pair.b.session.counters.nacksSent > 0)
        #expect(pair.a.ownTable.count > 1_000)
        let converged = sameFlows(pair.a.ownTable, pair.b.replica)
        #expect(converged, "replica \(pair.b.replica.count) vs owner \(pair.a.ownTable.count)")
        #expect(pair.a.session.counters.peerDeaths == 0 && pair.b.session.counters.peerDeaths == 0, "10 % loss is not a death")
    }

    @Test("a gap wider than the sender retains is repaired by a snapshot")
    func snapshotResync() {
        var pair = SimulatedPair(retention: 32)
        pair.step(milliseconds: 20)
        var random = SeededGenerator(seed: 9)
        churn(&pair, onA: true, milliseconds: 100, perStep: 20, random: &random)
        let snapshotsBefore = pair.b.session.counters.snapshotsCompleted
        // The link drops everything for 10 ms (at most 20 ms without a heartbeat: less than the
        // 30 ms that make a death) while A sends far more datagrams than its 32 retained ones.
        pair.linkUp = false
        churn(&pair, onA: true, milliseconds: 10, perStep: 300, random: &random)
        pair.linkUp = true
        churn(&pair, onA: true, milliseconds: 100, perStep: 20, random: &random)
        pair.step(milliseconds: 300)
        #expect(pair.a.session.counters.retransmissionsUnavailable > 0 || pair.b.session.counters.snapshotsRequested > 1)
        #expect(pair.b.session.counters.snapshotsCompleted > snapshotsBefore, "a snapshot repaired the gap")
        let converged = sameFlows(pair.a.ownTable, pair.b.replica)
        #expect(converged, "replica \(pair.b.replica.count) vs owner \(pair.a.ownTable.count)")
        #expect(pair.a.session.counters.peerDeaths == 0)
    }

    @Test("a silent peer is dead within the configured misses; the survivor takes every bucket")
    func deathDetection() {
        var pair = SimulatedPair()
        pair.step(milliseconds: 1_100)
        #expect(pair.a.ownership == pair.a.session.configuredShare && pair.b.ownership == pair.b.session.configuredShare,
                "both started together and split the buckets as configured")
        pair.b.running = false
        let killedAt = pair.now
        let detection = pair.stepUntilADeclaresDeath(since: killedAt)
        #expect(detection >= 20_000_000 && detection <= 40_000_000, "3 missed 10 ms heartbeats: \(detection / 1_000_000) ms")
        #expect(pair.a.ownership == .all(64))
    }

    @Test("a dispatcher frozen for a second (SIGSTOP) does not, thawed, declare its peer dead for the silence it slept through; the peer took over and hands back")
    func frozenDispatcher() {
        var pair = SimulatedPair()
        pair.step(milliseconds: 1_100)
        pair.a.running = false
        pair.step(milliseconds: 1_000)
        #expect(pair.b.session.counters.peerDeaths == 1 && pair.b.ownership == .all(64), "B took over the frozen A")
        pair.a.running = true
        pair.step(milliseconds: 300)
        #expect(pair.a.session.counters.peerDeaths == 0, "A never declared B dead")
        #expect(pair.a.session.counters.ownPausesExcused == 1)
        #expect(pair.a.events.contains { if case .ownPauseExcused(let pause, _) = $0 { pause >= 980_000_000 } else { false } })
        #expect(pair.a.ownership == pair.a.session.configuredShare && pair.b.ownership == pair.b.session.configuredShare, "the pair split again")
    }

    @Test("a dispatcher frozen just after its liveness thread heard a heartbeat, before its next turn, does not, thawed, declare its living peer dead")
    func frozenRightAfterAHeartbeat() {
        var pair = SimulatedPair()
        pair.step(milliseconds: 1_100)
        // Heard half a millisecond after A's last turn: the next turn, the one that takes the
        // heartbeat in, comes only after the freeze.
        let heartbeat = pair.b.liveness.heartbeat(pair.b.session.announcement, wallClock: pair.now)
        pair.a.receiveHeartbeat(heartbeat, now: pair.now + 500_000)
        pair.a.running = false
        pair.step(milliseconds: 1_000)
        pair.a.running = true
        pair.step(milliseconds: 300)
        #expect(pair.a.session.counters.peerDeaths == 0, "A never declared B dead")
        #expect(pair.a.session.counters.ownPausesExcused == 1)
        #expect(pair.a.ownership == pair.a.session.configuredShare && pair.b.ownership == pair.b.session.configuredShare, "the pair split again")
    }

    @Test("a dispatcher frozen between taking in its liveness thread's news and its check, whose liveness thread stamped a heartbeat in between, does not declare its living peer dead when it takes that heartbeat in after the thaw")
    func heartbeatTakenInAfterTheThaw() {
        var pair = SimulatedPair()
        pair.step(milliseconds: 1_100)
        // No heartbeat of B's at A's last turn before the freeze: the one below is the newest.
        if pair.b.lastBeat == pair.now { pair.step() }
        let frozenAt = pair.now
        let heartbeat = pair.b.liveness.heartbeat(pair.b.session.announcement, wallClock: frozenAt)
        pair.a.running = false
        // The freeze's heartbeats are lost (a virtual machine's freeze), and none comes at once.
        pair.b.silent = true
        pair.step(milliseconds: 1_000)
        pair.a.running = true
        pair.step()
        // Stamped 0.1 ms before A's last check, taken in at the turn after the thaw's.
        pair.a.receiveHeartbeat(heartbeat, now: frozenAt - 100_000)
        pair.step(milliseconds: 5)
        #expect(pair.a.session.counters.peerDeaths == 0, "A never declared B dead")
        #expect(pair.a.session.counters.ownPausesExcused == 1, "one pause, excused once")
        pair.b.silent = false
        pair.step(milliseconds: 300)
        #expect(pair.a.session.counters.peerDeaths == 0)
        #expect(pair.a.ownership == pair.a.session.configuredShare && pair.b.ownership == pair.b.session.configuredShare, "the pair split again")
    }

    @Test("a peer that dies while this dispatcher is frozen is declared dead within a death window of the thaw (the freeze counts as one heartbeat interval), not at once and not never")
    func peerDiesDuringAFreeze() {
        var pair = SimulatedPair()
        pair.step(milliseconds: 1_100)
        pair.a.running = false
        pair.b.running = false
        pair.step(milliseconds: 1_000)
        pair.a.running = true
        let thawedAt = pair.now
        let detection = pair.stepUntilADeclaresDeath(since: thawedAt)
        // Silence before the freeze counts (up to a heartbeat interval), and one interval of the
        // freeze; the rest does not.
        #expect(detection >= 10_000_000 && detection <= 21_000_000, "3 missed 10 ms heartbeats, less what the freeze counts: \(detection / 1_000_000) ms")
        #expect(pair.a.ownership == .all(64))
    }

    @Test("thawed, a dispatcher that reads the heartbeats queued during its freeze before its first turn still declares the peer that died meanwhile dead a death window later")
    func queuedHeartbeatsReadFirst() {
        var pair = SimulatedPair()
        pair.step(milliseconds: 1_100)
        pair.a.running = false
        pair.capturingB = true
        pair.step(milliseconds: 500)
        pair.b.running = false
        pair.capturingB = false
        pair.step(milliseconds: 500)
        // The liveness thread runs first (it is above the sync thread on the same CPU): what
        // waited on its socket is read, and stamped, at the thaw.
        pair.a.running = true
        let thawedAt = pair.now
        for bytes in pair.captured { pair.a.receiveHeartbeat(bytes, now: thawedAt) }
        let detection = pair.stepUntilADeclaresDeath(since: thawedAt)
        #expect(pair.captured.count >= 40, "B beat while A was frozen")
        #expect(detection >= 29_000_000 && detection <= 31_000_000, "dead a window (30 ms) after the last heartbeat was read: \(detection / 1_000_000) ms")
        #expect(pair.a.session.counters.ownPausesExcused == 0, "the freeze came before the last heartbeat: nothing to excuse")
    }

    @Test("a dispatcher whose turns come 15 ms apart for good (a heartbeat interval and a half) still declares its peer's real death, within twice the window")
    func starvedDispatcherStillDetectsADeath() {
        var pair = SimulatedPair()
        pair.step(milliseconds: 1_100)
        pair.b.running = false
        let killedAt = pair.now
        let detection = pair.stepUntilADeclaresDeath(since: killedAt, limit: 200) { $0 % 15 == 0 }
        #expect(detection <= 60_000_000, "dead after \(detection / 1_000_000) ms (30 ms when every turn is on time)")
        #expect(pair.a.session.counters.peerDeaths == 1)
    }

    @Test("a returning peer catches up, then takes its buckets back through the handshake")
    func returnAndHandback() {
        var pair = SimulatedPair(startB: false)
        var random = SeededGenerator(seed: 11)
        pair.step(milliseconds: 1_100)
        #expect(pair.a.ownership == .all(64), "alone after the start-up grace")
        churn(&pair, onA: true, milliseconds: 50, perStep: 20, random: &random)
        pair.unservedBucketSteps = 0
        pair.b = SimulatedNode(id: 2, peer: 1, share: .evenShare(64, node: 1, of: 2), now: pair.now, incarnation: 2)
        pair.step(milliseconds: 300)
        #expect(pair.b.events.contains(.caughtUp))
        #expect(pair.b.replica.count == pair.a.ownTable.count, "the snapshot came before the buckets")
        #expect(pair.a.ownership == pair.a.session.configuredShare && pair.b.ownership == pair.b.session.configuredShare)
        #expect(pair.a.events.contains { if case .handoverCompleted = $0 { true } else { false } })
        #expect(pair.unservedBucketSteps <= 32, "the handed-over buckets were unserved for at most one 1 ms step")
    }

    @Test("a health view shared by one side reaches the other whole, in parts, under one version that grows")
    func healthShared() {
        var pair = SimulatedPair()
        pair.step(milliseconds: 300)
        var reports: [ServerHealthReport] = []
        for n in 0..<200 {
            let port = UInt16(1000 + n)
            let server = HealthKey(virtualAddress: IPv4Address(198, 18, 0, 100), virtualPort: port, transport: .tcp,
                                   serverAddress: IPv4Address(198, 18, 2, 12), serverPort: port)
            reports.append(ServerHealthReport(server, isUp: n != 7))
        }
        pair.a.session.shareHealth(reports, wallClock: pair.now)
        pair.step(milliseconds: 5)
        pair.a.session.shareHealth(Array(reports.prefix(3)), wallClock: pair.now)
        pair.step(milliseconds: 5)
        let heard = pair.b.peerHealth
        let parts = (reports.count + SyncWireFormat.healthReportsPerMessage - 1) / SyncWireFormat.healthReportsPerMessage
        #expect(parts > 1 && heard.count == parts + 1, "200 reports in \(parts) parts, then one")
        #expect(heard.prefix(parts).flatMap(\.reports) == reports)
        #expect(Set(heard.prefix(parts).map(\.version)).count == 1 && heard[parts].version > heard[0].version)
    }

    @Test("a cut link makes both serve everything; healed, the pair returns to its configured split")
    func splitBrainHeals() {
        var pair = SimulatedPair()
        pair.step(milliseconds: 1_100)
        pair.linkUp = false
        pair.step(milliseconds: 5_000)
        #expect(pair.a.ownership == .all(64) && pair.b.ownership == .all(64), "both serve every bucket while cut")
        pair.unservedBucketSteps = 0
        pair.linkUp = true
        pair.step(milliseconds: 500)
        #expect(pair.a.ownership == pair.a.session.configuredShare && pair.b.ownership == pair.b.session.configuredShare)
        #expect(pair.unservedBucketSteps == 0, "healing never leaves a bucket unserved")
    }

    @Test("replayed, forged, unbelieved and foreign datagrams are counted and dropped")
    func rejections() {
        let settings = SyncSettings(nodeID: 1, peerNodeID: 2)
        var session = SyncSession(settings: settings, configuredShare: .all(64), codec: SyncCodec(key: key)!, incarnation: 5, now: 0)
        func datagram(node: UInt8 = 2, incarnation: UInt64 = 10, sequence: UInt64, codec: SyncCodec = SyncCodec(key: key)!) -> [UInt8] {
            codec.encode(SyncDatagram(header: SyncHeader(nodeID: node, incarnation: incarnation, sequence: sequence, sentAt: 0),
                                      body: .ack(dataSequence: 0)))
        }
        // The liveness channel believes incarnation 10 (it answered a challenge).
        session.heard(PeerHeartbeat(incarnation: 10, announcement: HeartbeatAnnouncement(ownershipVersion: 1, highestDataSequence: 0,
                                                                                       bucketCount: 64, ownedBuckets: 0), heardAt: 0),
                      now: 0, wallClock: 0)
        let first = datagram(sequence: 100)
        session.receive(first, now: 1, wallClock: 1)
        session.receive(first, now: 2, wallClock: 2)
        session.receive(datagram(sequence: 10), now: 3, wallClock: 3)
        session.receive(datagram(incarnation: 9, sequence: 101), now: 4, wallClock: 4)
        session.receive(datagram(node: 3, sequence: 102), now: 5, wallClock: 5)
        session.receive(datagram(sequence: 103, codec: SyncCodec(key: [UInt8](repeating: 1, count: 32))!), now: 6, wallClock: 6)
        session.receive(Array(first.prefix(20)), now: 7, wallClock: 7)
        let counters = session.counters
        #expect(counters.datagramsReceived == 1)
        #expect(counters[rejected: .replayed] == 1 && counters[rejected: .outsideReplayWindow] == 1)
        #expect(counters[rejected: .unverifiedIncarnation] == 1 && counters[rejected: .unexpectedSender] == 1)
        #expect(counters[rejected: .badAuthenticator] == 1 && counters[rejected: .truncated] == 1)
    }
}
