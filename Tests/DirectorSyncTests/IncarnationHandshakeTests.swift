import DirectorCore
import DirectorSync
import DirectorWire
import Testing

/// The liveness channel believes an incarnation of its peer only once a heartbeat of it echoes
/// this side's challenge: a restart is recognised whatever the clocks say, a replayed capture
/// is never believed, and forgeries are turned away before any HMAC is computed.
@Suite("Incarnation handshake")
struct IncarnationHandshakeTests {
    static let announcement = HeartbeatAnnouncement(ownershipVersion: 1, highestDataSequence: 0, bucketCount: 64, ownedBuckets: 32)

    @Test("two fresh channels believe each other after two heartbeats each way")
    func freshPair() {
        var a = LivenessChannel(nodeID: 1, peerNodeID: 2, incarnation: 0xA, codec: codec)
        var b = LivenessChannel(nodeID: 2, peerNodeID: 1, incarnation: 0xB, codec: codec)
        var rounds = 0
        var heardByA: PeerHeartbeat?, heardByB: PeerHeartbeat?
        while a.verifiedIncarnation == nil || b.verifiedIncarnation == nil, rounds < 10 {
            rounds += 1
            heardByB = b.receive(a.heartbeat(Self.announcement, wallClock: 0), now: UInt64(rounds)) ?? heardByB
            heardByA = a.receive(b.heartbeat(Self.announcement, wallClock: 0), now: UInt64(rounds)) ?? heardByA
        }
        #expect(rounds == 2, "A's first heartbeat carries its challenge, B's answer the echo; B's challenge is echoed in A's second")
        #expect(a.verifiedIncarnation == 0xB && b.verifiedIncarnation == 0xA)
        #expect(heardByA?.incarnation == 0xB && heardByB?.incarnation == 0xA)
        #expect(b.rejected[SyncRejection.unverifiedIncarnation.rawValue] == 1, "the heartbeat before the echo is not heard")
    }

    @Test("a peer of another sync wire version is never heard, and its version is kept for the log")
    func otherVersion() {
        var a = LivenessChannel(nodeID: 1, peerNodeID: 2, incarnation: 0xA, codec: codec)
        var b = LivenessChannel(nodeID: 2, peerNodeID: 1, incarnation: 0xB, codec: codec)
        for round in 1...3 {
            var older = b.heartbeat(Self.announcement, wallClock: 0)
            older[2] = SyncWireFormat.version - 1
            #expect(a.receive(older, now: UInt64(round)) == nil)
        }
        #expect(a.rejected[SyncRejection.unsupportedVersion.rawValue] == 3 && a.takeForeignVersion() == SyncWireFormat.version - 1)
        #expect(a.takeForeignVersion() == nil, "taken once")
        #expect(a.verifiedIncarnation == nil)
    }

    @Test("a restart with a smaller incarnation (the clock stepped back) is a restart like any other")
    func clockSteppedBack() {
        var pair = SimulatedPair()
        pair.b = SimulatedNode(id: 2, peer: 1, share: .evenShare(64, node: 1, of: 2), now: pair.now, incarnation: 1_800_000_000_000_000_000)
        pair.step(milliseconds: 1_100)
        #expect(pair.a.session.peerIncarnation == 1_800_000_000_000_000_000)
        for n in 0..<20 { pair.b.change(flowRecord(n, change: .created), now: pair.now) }
        pair.step(milliseconds: 20)
        pair.b.running = false
        pair.step(milliseconds: 200)
        #expect(pair.a.ownership == .all(64), "A took over the dead peer")
        pair.b = SimulatedNode(id: 2, peer: 1, share: .evenShare(64, node: 1, of: 2), now: pair.now, incarnation: 1_700_000_000_000_000_000)
        pair.step(milliseconds: 300)
        #expect(pair.a.session.peerIncarnation == 1_700_000_000_000_000_000, "the smaller incarnation was believed")
        #expect(pair.a.session.peer == .alive && pair.a.session.counters.peerRestarts == 1)
        #expect(pair.a.ownership == pair.a.session.configuredShare && pair.b.ownership == pair.b.session.configuredShare,
                "the restarted peer got its share back")
        for n in 100..<120 { pair.b.change(flowRecord(n, change: .created), now: pair.now) }
        pair.step(milliseconds: 20)
        #expect(sameFlows(pair.a.replica, pair.b.ownTable), "the record stream of the new life flows")
    }

    @Test("a capture of the peer's heartbeats, replayed to a freshly started dispatcher, does not stop it taking over")
    func replayedCaptureAtStart() {
        var pair = SimulatedPair()
        pair.step(milliseconds: 1_100)
        pair.capturingB = true
        pair.step(milliseconds: 3_000)
        pair.capturingB = false
        let capture = pair.captured
        #expect(capture.count >= 290)
        // B dies; A starts afresh (a restart of its own), and an attacker replays B's old life at
        // its original pace.
        pair.b.running = false
        pair.a = SimulatedNode(id: 1, peer: 2, share: .evenShare(64, node: 0, of: 2), now: pair.now, incarnation: 3)
        let startedAt = pair.now
        var tookAllAt: UInt64?
        for bytes in capture {
            pair.a.receiveHeartbeat(bytes, now: pair.now)
            pair.step(milliseconds: 10)
            if tookAllAt == nil, pair.a.ownership == .all(64) { tookAllAt = pair.now }
        }
        #expect(!pair.a.events.contains { if case .peerAlive = $0 { true } else { false } }, "the replayed peer never came to life")
        #expect(pair.a.session.peer == .unknown)
        #expect(tookAllAt.map { $0 - startedAt <= pair.a.session.settings.startupGrace + 10_000_000 } == true,
                "A served every bucket when its startup grace ended")
        #expect(pair.a.liveness.rejected[SyncRejection.unverifiedIncarnation.rawValue] > 0)
    }

    @Test("a capture replayed to a dispatcher that knew the peer does not keep the dead peer alive")
    func replayedCaptureLater() {
        var pair = SimulatedPair()
        pair.step(milliseconds: 1_100)
        pair.capturingB = true
        pair.step(milliseconds: 500)
        pair.capturingB = false
        pair.b.running = false
        let diedAt = pair.now
        var tookAllAt: UInt64?
        for bytes in pair.captured {
            pair.a.receiveHeartbeat(bytes, now: pair.now)
            pair.step()
            if tookAllAt == nil, pair.a.ownership == .all(64) { tookAllAt = pair.now }
        }
        #expect(pair.a.session.counters.peerDeaths == 1)
        #expect(tookAllAt.map { $0 - diedAt <= pair.a.session.settings.deadAfter + 2_000_000 } == true)
        #expect(pair.a.liveness.rejected[SyncRejection.replayed.rawValue] + pair.a.liveness.rejected[SyncRejection.outsideReplayWindow.rawValue]
                == UInt64(pair.captured.count))
    }

    @Test("forgeries of an unbelieved incarnation, or of a sequence already seen, are refused before the HMAC")
    func forgeriesCostNoHMAC() {
        var a = LivenessChannel(nodeID: 1, peerNodeID: 2, incarnation: 0xA, codec: codec)
        var b = LivenessChannel(nodeID: 2, peerNodeID: 1, incarnation: 0xB, codec: codec)
        for round in 0..<2 {
            _ = b.receive(a.heartbeat(Self.announcement, wallClock: 0), now: UInt64(round))
            _ = a.receive(b.heartbeat(Self.announcement, wallClock: 0), now: UInt64(round))
        }
        #expect(a.verifiedIncarnation == 0xB)
        var session = SyncSession(settings: SyncSettings(nodeID: 1, peerNodeID: 2), configuredShare: .all(64), codec: codec, incarnation: 0xA, now: 0)
        session.heard(PeerHeartbeat(incarnation: 0xB, announcement: Self.announcement, heardAt: 0), now: 0, wallClock: 0)
        let forger = SyncCodec(key: [UInt8](repeating: 0x77, count: 32))!
        var random = SeededGenerator(seed: 7)
        let now: UInt64 = 1_000_000_000
        var heard = 0
        for n in 0..<10_000 {
            let incarnation = UInt64.random(in: 1...UInt64.max, using: &random)
            let forgedBeat = forger.encode(SyncDatagram(header: SyncHeader(nodeID: 2, incarnation: incarnation, sequence: UInt64(n), sentAt: 0),
                                                        body: .heartbeat(Self.announcement, challenge: 1, echo: 2)))
            // Forgers who read the link: the believed incarnation, sequences already seen.
            let replayedBeat = forger.encode(SyncDatagram(header: SyncHeader(nodeID: 2, incarnation: 0xB, sequence: 1, sentAt: 0),
                                                          body: .heartbeat(Self.announcement, challenge: 1, echo: 2)))
            let forgedAck = forger.encode(SyncDatagram(header: SyncHeader(nodeID: 2, incarnation: incarnation, sequence: UInt64(n), sentAt: 0),
                                                       body: .ack(dataSequence: 5)))
            _ = a.receive(forgedBeat, now: now)
            _ = a.receive(replayedBeat, now: now)
            session.receive(forgedAck, now: now, wallClock: now)
            if n % 1_000 == 0, a.receive(b.heartbeat(Self.announcement, wallClock: 0), now: now) != nil { heard += 1 }
        }
        #expect(heard == 10, "the real peer is heard throughout")
        #expect(a.rejected[SyncRejection.badAuthenticator.rawValue] <= UInt64(8), "at most the unverified-check budget paid an HMAC")
        #expect(a.rejected[SyncRejection.unverifiedIncarnation.rawValue] >= 9_992)
        #expect(a.rejected[SyncRejection.replayed.rawValue] + a.rejected[SyncRejection.outsideReplayWindow.rawValue] == 10_000)
        #expect(session.counters[rejected: .unverifiedIncarnation] == 10_000 && session.counters[rejected: .badAuthenticator] == 0)
    }
}
