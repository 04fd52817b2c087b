import DirectorCore
import DirectorWire

/// Timers and limits of the sync protocol. Times are nanoseconds.
public struct SyncSettings: Sendable, Equatable {
    public var nodeID: UInt8
    public var peerNodeID: UInt8
    /// Heartbeat period (the liveness channel's), and the period of acknowledgements.
    public var heartbeatInterval: UInt64
    /// The peer is dead after this many heartbeat intervals without a heartbeat.
    public var deadAfterMissed: Int
    /// The longest a record waits in the outbox before it is sent.
    public var flushDelay: UInt64
    /// At start, how long to wait for the peer before serving every bucket alone.
    public var startupGrace: UInt64
    /// Datagrams kept for retransmission.
    public var retention: Int
    public var nackInterval: UInt64
    public var nacksBeforeResync: Int
    /// A snapshot that makes no progress for this long is asked for again.
    public var snapshotTimeout: UInt64
    /// A bucket request without an answer is sent again after this long.
    public var requestRetry: UInt64
    /// Datagrams retransmitted per tick at most, and NACK ranges asked per tick at most: one
    /// NACK costs the sender a bounded share of each turn, however much it asks for.
    public var retransmissionsPerTick: Int
    public var nackRangesPerTick: Int
    /// After a handover this dispatcher could not carry out (its kernel filter refused the
    /// change), it waits this long before it asks or answers again, doubling up to 32 times it.
    public var handoverBackoff: UInt64

    public init(nodeID: UInt8, peerNodeID: UInt8, heartbeatInterval: UInt64 = 10_000_000, deadAfterMissed: Int = Self.defaultDeadAfterMissed,
                flushDelay: UInt64 = 1_000_000, startupGrace: UInt64 = 1_000_000_000, retention: Int = 8192,
                nackInterval: UInt64 = 3_000_000, nacksBeforeResync: Int = 5, snapshotTimeout: UInt64 = 1_000_000_000,
                requestRetry: UInt64 = 50_000_000, retransmissionsPerTick: Int = 32, nackRangesPerTick: Int = 256,
                handoverBackoff: UInt64 = 1_000_000_000) {
        self.nodeID = nodeID
        self.peerNodeID = peerNodeID
        self.heartbeatInterval = heartbeatInterval
        self.deadAfterMissed = deadAfterMissed
        self.flushDelay = flushDelay
        self.startupGrace = startupGrace
        self.retention = retention
        self.nackInterval = nackInterval
        self.nacksBeforeResync = nacksBeforeResync
        self.snapshotTimeout = snapshotTimeout
        self.requestRetry = requestRetry
        self.retransmissionsPerTick = retransmissionsPerTick
        self.nackRangesPerTick = nackRangesPerTick
        self.handoverBackoff = handoverBackoff
    }

    /// Silence after which the peer is declared dead.
    public var deadAfter: UInt64 { heartbeatInterval * UInt64(deadAfterMissed) }

    /// Five heartbeats: 50 ms at the default interval. A virtual machine's vCPUs are sometimes
    /// held by the hypervisor for 20–35 ms (measured in the lab's soak, on both CPUs at once):
    /// with three, such a pause of the sender was enough for its peer to take over a living
    /// dispatcher now and then.
    public static let defaultDeadAfterMissed = 5
}

/// What the session asks of the daemon that runs it.
public enum SyncEvent: Equatable, Sendable {
    /// Records from the peer for the workers, changed at wall-clock time `changedAt` (the
    /// oldest change in their datagram: for measuring replica lag).
    case apply(records: [SyncRecord], changedAt: UInt64)
    /// The peer wants this dispatcher's whole table: walk it and hand the entries to
    /// `appendSnapshot`, then call `finishSnapshot`.
    case snapshotWanted(requestID: UInt64)
    case peerAlive(restarted: Bool)
    case peerDead(silence: UInt64)
    /// The peer's silence reached the death window only across a pause of this dispatcher's own
    /// (the process was stopped, or held off its CPUs): `pause` ns of the `silence` do not count,
    /// and the peer is not declared dead for them.
    case ownPauseExcused(pause: UInt64, silence: UInt64)
    /// A snapshot of the peer's table was asked for: replicas not written from here on until
    /// `resyncCompleted` are ones the peer no longer has.
    case resyncStarted
    /// The snapshot arrived whole: drop the replicas not written since `resyncStarted`.
    case resyncCompleted
    /// This dispatcher's replica of the peer's table is complete for the first time since the
    /// peer (re)appeared.
    case caughtUp
    /// Serve every bucket: the peer died, or never answered at start.
    case takeAll
    /// Stop accepting these buckets, let every worker finish what it holds, then call `didRelease`.
    case release(BucketOwnership)
    /// Make sure every worker applied the peer's records, accept these buckets, then call `didTake`.
    case take(BucketOwnership)
    /// The peer accepted buckets this dispatcher released, `gap` after it stopped accepting them.
    case handoverCompleted(gap: UInt64)
    /// What the peer's health checks say of its real servers (part of its view `version`).
    case peerHealth(version: UInt64, reports: [ServerHealthReport])
}


/// The connection-sync protocol of one dispatcher towards its peer, without sockets or threads:
/// datagrams in, datagrams and events out, time passed in. The daemon's sync thread runs it;
/// tests run two of them over a simulated link.
///
/// What it keeps: the record stream both ways (outbox, inbox with NACKs and snapshot resync),
/// the peer's liveness as the liveness channel reports it (`heard`), and the pair's bucket
/// handovers:
/// - the peer is dead after `deadAfter` without a heartbeat → `takeAll`;
/// - alone at start (no peer within `startupGrace`) → `takeAll`;
/// - caught up with a live peer but missing some configured buckets → ask for them (`request`);
///   the holder stops accepting them (`release`), says so (`released`), and the asker takes them
///   once every record sent before that has arrived (`take`, then `taken`);
/// - both accepting some bucket (after a cut link healed) → each announces what it accepts
///   (`taken`) and lets go of what is outside its configured share;
/// - a bucket the peer released that nobody accepts (the peer could not take it) is taken.
///
/// No call does more than a bounded amount of work: retransmissions and NACKs are paced per
/// tick, so a heartbeat-carrying thread is never held up by what the peer asks.
public struct SyncSession: ~Copyable {
    public enum PeerState: String, Sendable {
        case unknown
        case alive
        case dead
    }

    public let settings: SyncSettings
    /// This dispatcher's configured share: what it takes back whenever the peer is alive.
    public let configuredShare: BucketOwnership
    public let incarnation: UInt64
    /// When false, buckets move only by operator command or on the peer's death.
    public var automaticHandover = true
    public private(set) var counters = SyncCounters()
    public private(set) var peer = PeerState.unknown
    public private(set) var caughtUp = false
    /// When the latest heartbeat arrived (monotonic), as the liveness channel reported it.
    public private(set) var lastHeard: UInt64?
    /// Since `lastHeard`, how long this dispatcher itself did not run (see `checkLiveness`).
    private var pausedSinceHeard: UInt64 = 0
    /// The latest pause was reported (`SyncEvent.ownPauseExcused`, once a pause).
    private var pauseExcused = false
    /// When liveness was last checked: the previous turn.
    private var lastLivenessCheck: UInt64?
    /// The peer's incarnation, once heard of.
    public private(set) var peerIncarnation: UInt64?
    /// The peer's latest heartbeat: its ownership version and how many buckets it accepts.
    public private(set) var peerOwnershipVersion: UInt64 = 0
    public private(set) var peerOwnedBuckets: Int?
    /// The highest data sequence the peer acknowledged receiving in order.
    public private(set) var peerAcknowledged: UInt64 = 0
    public private(set) var ownershipVersion: UInt64 = 0
    public private(set) var lastHandoverGap: UInt64?
    /// This dispatcher cannot serve (its front link is down, a worker is stuck): it asks for
    /// nothing and takes nothing; its heartbeats are silent meanwhile, so the peer takes over.
    public private(set) var isInFault = false
    /// The MAC this dispatcher's client frames come from (the daemon keeps it current), said in
    /// every ownership message; and the peer's, as its latest ownership message said it.
    public var clientNextHop = MACAddress.zero
    public private(set) var peerClientNextHop = MACAddress.zero

    private let codec: SyncCodec
    private var replay = ReplayWindow()
    private var outbox: DeltaOutbox
    public private(set) var inbox: DeltaInbox
    private var retransmissions: RetransmissionQueue
    private var datagramSequence: UInt64 = 0
    private let startedAt: UInt64
    private var lastAck: UInt64?
    private var outboxSince: UInt64?
    private var ownership: BucketOwnership
    private var tookAllAlone = false
    /// The peer restarted while it was not alive here: its next heartbeat is a restart's.
    private var restartedWhileAway = false

    private var snapshotRequest: (id: UInt64, lastProgress: UInt64)?
    private var snapshotLastSequence: UInt64?
    private var nextRequestID: UInt64 = 1
    private var healthVersion: UInt64 = 0
    private var requestSentAt: UInt64?
    private var releasedByPeer: BucketOwnership
    private var releasedByPeerAt: UInt64?
    private var releaseStartedAt: UInt64?
    private var lastAnnouncement: UInt64?
    private var releasing = false
    private var taking = false
    /// After a failed handover: no requests sent or answered before this time (monotonic).
    private var handoverPausedUntil: UInt64?
    private var handoverFailures = 0

    private var events: [SyncEvent] = []
    private var outgoing: [[UInt8]] = []

    public init(settings: SyncSettings, configuredShare: BucketOwnership, codec: SyncCodec, incarnation: UInt64, now: UInt64) {
        self.settings = settings
        self.configuredShare = configuredShare
        self.codec = codec
        self.incarnation = incarnation
        startedAt = now
        outbox = DeltaOutbox(retention: settings.retention)
        inbox = DeltaInbox(policy: .init(nackInterval: settings.nackInterval, nacksBeforeResync: settings.nacksBeforeResync,
                                         widestRepairableGap: UInt64(settings.retention)))
        retransmissions = RetransmissionQueue(retention: settings.retention)
        ownership = .none(configuredShare.bucketCount)
        releasedByPeer = .none(configuredShare.bucketCount)
    }

    /// Events since the last call, oldest first.
    public mutating func takeEvents() -> [SyncEvent] {
        defer { events.removeAll(keepingCapacity: true) }
        return events
    }

    /// Datagrams to send to the peer since the last call, oldest first.
    public mutating func takeOutgoing() -> [[UInt8]] {
        defer { outgoing.removeAll(keepingCapacity: true) }
        return outgoing
    }

    public var highestDataSequenceSent: UInt64 { outbox.highestDataSequence }

    /// What this dispatcher's heartbeats say now (the liveness channel sends them).
    public var announcement: HeartbeatAnnouncement {
        HeartbeatAnnouncement(ownershipVersion: ownershipVersion, highestDataSequence: outbox.highestDataSequence,
                              bucketCount: UInt16(truncatingIfNeeded: ownership.bucketCount),
                              ownedBuckets: UInt16(truncatingIfNeeded: ownership.ownedCount))
    }

    /// Data sequences NACKed by the peer and not yet sent again.
    public var retransmissionsQueued: Int { retransmissions.count }

    // MARK: - This dispatcher's changes

    /// A change of one of this dispatcher's connections, made at wall-clock time `changedAt`.
    public mutating func record(_ record: SyncRecord, changedAt: UInt64, now: UInt64) {
        if !outbox.hasPending { outboxSince = now }
        if let full = outbox.append(record, changedAt: changedAt) { send(full) }
    }

    /// Changes were lost before they reached the session (a worker's ring to the sync thread was
    /// full). A data sequence is skipped for them: the peer cannot repair the gap by NACK and
    /// resyncs from a snapshot, which carries what was lost.
    public mutating func recordsLost(now: UInt64, wallClock: UInt64) {
        for numbered in outbox.flush(now: wallClock) { send(numbered) }
        outboxSince = nil
        outbox.skip()
        counters.sequencesSkipped += 1
    }

    public mutating func appendSnapshot(_ record: SyncRecord, requestID: UInt64, now: UInt64, wallClock: UInt64) {
        if !outbox.hasPending { outboxSince = now }
        if let full = outbox.appendSnapshot(record, requestID: requestID, now: wallClock) { send(full) }
    }

    public mutating func finishSnapshot(requestID: UInt64, now: UInt64, wallClock: UInt64) {
        for numbered in outbox.flush(now: wallClock) { send(numbered) }
        send(outbox.finishSnapshot(requestID: requestID, now: wallClock))
        counters.snapshotsServed += 1
    }

    // MARK: - Time

    /// Flushes what is due, acknowledges, retransmits and NACKs a bounded amount, and decides on
    /// liveness and buckets. `ownership` is what this dispatcher accepts now.
    public mutating func tick(now: UInt64, wallClock: UInt64, ownership current: BucketOwnership) {
        if current != ownership {
            ownership = current
            ownershipVersion += 1
        }
        if let since = outboxSince, now &- since >= settings.flushDelay || peer == .dead {
            for numbered in outbox.flush(now: wallClock) { send(numbered) }
            outboxSince = nil
        }
        checkLiveness(now: now)
        guard peer == .alive else { return }
        if lastAck.map({ now &- $0 >= settings.heartbeatInterval }) ?? true {
            lastAck = now
            sendControl(.ack(dataSequence: inbox.contiguous), wallClock: wallClock)
        }
        serveRetransmissions()
        repairStream(now: now, wallClock: wallClock)
        coordinateBuckets(now: now, wallClock: wallClock)
    }

    /// Enters or leaves the fault state (see `isInFault`). Leaving it while no live peer serves
    /// the buckets (it died, or none came within the start-up grace), this dispatcher takes them
    /// all. Beside a live peer it asks for its share, even if it once served alone: taking
    /// everything then would have both accept the peer's buckets.
    public mutating func setFault(_ fault: Bool) {
        guard fault != isInFault else { return }
        isInFault = fault
        // The daemon abandons a handover under way when it enters a fault: no release or take is
        // pending any more, so once fit again this side asks for its share like any other time.
        if fault {
            releasing = false
            taking = false
        }
        if !fault, peer == .dead || (peer == .unknown && tookAllAlone) { events.append(.takeAll) }
    }

    private mutating func checkLiveness(now: UInt64) {
        // A turn more than a heartbeat interval after this dispatcher last ran: it was stopped
        // (SIGSTOP, a frozen VM) or held off its CPUs. The peer's heartbeats of that time may wait
        // unread on the liveness socket, so that silence may be this side's: beyond one interval,
        // it does not count. One interval a turn always does, so that a thread starved into late
        // turns for good still declares a real death (later, not never). This side last ran at
        // its previous turn or, if later, when its liveness thread stamped the latest heartbeat:
        // one heard after the previous turn and just before the stop proves nothing about the
        // time after it; one read from the queue after the thaw leaves no pause to excuse.
        let previousCheck = lastLivenessCheck
        lastLivenessCheck = now
        if let previousCheck {
            let lastRan = max(previousCheck, lastHeard ?? 0)
            if now > lastRan + settings.heartbeatInterval {
                pausedSinceHeard += now - lastRan - settings.heartbeatInterval
                pauseExcused = false
            }
        }
        switch peer {
        case .unknown:
            if !tookAllAlone, now &- startedAt >= settings.startupGrace {
                tookAllAlone = true
                if !isInFault { events.append(.takeAll) }
            }
        case .alive:
            if let lastHeard, now > lastHeard, now - lastHeard >= settings.deadAfter {
                let silence = now - lastHeard
                if silence - min(silence, pausedSinceHeard) < settings.deadAfter {
                    if !pauseExcused {
                        pauseExcused = true
                        counters.ownPausesExcused += 1
                        events.append(.ownPauseExcused(pause: pausedSinceHeard, silence: silence))
                    }
                    return
                }
                peer = .dead
                counters.peerDeaths += 1
                caughtUp = false
                snapshotRequest = nil
                snapshotLastSequence = nil
                requestSentAt = nil
                releasedByPeerAt = nil
                releasedByPeer = .none(configuredShare.bucketCount)
                releasing = false
                taking = false
                retransmissions.removeAll()
                events.append(.peerDead(silence: now - lastHeard))
                if !isInFault { events.append(.takeAll) }
            }
        case .dead:
            break
        }
    }

    private mutating func serveRetransmissions() {
        guard !retransmissions.isEmpty else { return }
        for sequence in retransmissions.take(limit: settings.retransmissionsPerTick, highest: outbox.highestDataSequence) {
            if let datagram = outbox.retransmission(of: sequence) {
                counters.datagramsRetransmitted += 1
                outgoing.append(datagram)
            } else {
                counters.retransmissionsUnavailable += 1
            }
        }
    }

    private mutating func repairStream(now: UInt64, wallClock: UInt64) {
        let missing = inbox.rangesToNack(now: now, limit: settings.nackRangesPerTick)
        var start = 0
        while start < missing.count {
            let part = Array(missing[start..<min(missing.count, start + SyncWireFormat.rangesPerNack)])
            sendControl(.nack(missing: part), wallClock: wallClock)
            counters.nacksSent += 1
            start += SyncWireFormat.rangesPerNack
        }
        if inbox.needsResync {
            requestSnapshot(now: now, wallClock: wallClock)
        } else if let request = snapshotRequest, now &- request.lastProgress >= settings.snapshotTimeout {
            requestSnapshot(now: now, wallClock: wallClock)
        }
        if let last = snapshotLastSequence, inbox.contiguous >= last {
            snapshotLastSequence = nil
            snapshotRequest = nil
            counters.snapshotsCompleted += 1
            events.append(.resyncCompleted)
            if !caughtUp {
                caughtUp = true
                events.append(.caughtUp)
            }
        }
    }

    private func handoversPaused(now: UInt64) -> Bool {
        handoverPausedUntil.map { now < $0 } ?? false
    }

    private mutating func coordinateBuckets(now: UInt64, wallClock: UInt64) {
        guard automaticHandover, !releasing, !taking, !isInFault, !handoversPaused(now: now) else { return }
        // The peer released buckets: take them once every record it sent before has arrived,
        // or after a bounded wait (the records may have been lost for good; a resync follows).
        // Those of this side's share, and any that nobody accepts any more.
        if let releasedAt = releasedByPeerAt {
            let wanted = releasedByPeer.subtracting(ownership)
            let complete = inbox.missingCount == 0 && inbox.highestReceived >= inbox.senderReached
            if wanted.isEmpty {
                releasedByPeerAt = nil
                releasedByPeer = .none(configuredShare.bucketCount)
            } else if complete || now &- releasedAt >= settings.requestRetry {
                taking = true
                releasedByPeerAt = nil
                releasedByPeer = releasedByPeer.subtracting(wanted)
                events.append(.take(wanted))
                return
            }
        }
        let missing = configuredShare.subtracting(ownership)
        if caughtUp, !missing.isEmpty, requestSentAt.map({ now &- $0 >= settings.requestRetry }) ?? true {
            requestSentAt = now
            sendOwnership(.request, missing, wallClock: wallClock)
        }
        // Both accept some buckets (the link was cut and has healed): say what this side accepts;
        // the peer lets go of what is outside its share, and so does this side on its announcement.
        if let peerOwned = peerOwnedBuckets, peerOwned + ownership.ownedCount > Int(ownership.bucketCount),
           lastAnnouncement.map({ now &- $0 >= settings.requestRetry }) ?? true {
            lastAnnouncement = now
            sendOwnership(.taken, ownership, wallClock: wallClock)
        }
    }

    // MARK: - Handover steps the daemon has carried out

    /// The daemon stopped accepting `released` at `stoppedAt` (monotonic) and every worker has
    /// handed in its changes since.
    public mutating func didRelease(_ released: BucketOwnership, stoppedAt: UInt64, now: UInt64, wallClock: UInt64) {
        releasing = false
        for numbered in outbox.flush(now: wallClock) { send(numbered) }
        outboxSince = nil
        // The message carries the last data sequence sent: the peer takes the buckets once
        // everything up to it has arrived.
        sendOwnership(.released, released, wallClock: wallClock)
        releaseStartedAt = stoppedAt
        counters.handoversGiven += 1
        handoverFailures = 0
    }

    /// The daemon accepts `taken` now.
    public mutating func didTake(_ taken: BucketOwnership, now: UInt64, wallClock: UInt64) {
        taking = false
        ownership = ownership.union(taken)
        ownershipVersion += 1
        counters.handoversTaken += 1
        sendOwnership(.taken, ownership, wallClock: wallClock)
        requestSentAt = nil
        handoverFailures = 0
    }

    /// The daemon could not stop accepting `buckets` (its kernel filter refused the change): it
    /// still serves them, and answers no request for a while.
    public mutating func releaseFailed(_ buckets: BucketOwnership, now: UInt64) {
        releasing = false
        counters.handoverFailures += 1
        pauseHandovers(now: now)
    }

    /// The daemon could not accept `buckets`: they go back to the peer at once (it takes what
    /// nobody accepts), so no bucket is left without an owner; no request for a while.
    public mutating func takeFailed(_ buckets: BucketOwnership, now: UInt64, wallClock: UInt64) {
        taking = false
        counters.handoverFailures += 1
        sendOwnership(.released, buckets, wallClock: wallClock)
        pauseHandovers(now: now)
    }

    private mutating func pauseHandovers(now: UInt64) {
        let factor = UInt64(1) << UInt64(min(handoverFailures, 5))
        handoverFailures += 1
        handoverPausedUntil = now + settings.handoverBackoff * factor
    }

    // MARK: - The peer's heartbeats (liveness channel)

    /// A heartbeat the liveness channel accepted: the peer is alive (or back, or restarted).
    public mutating func heard(_ heartbeat: PeerHeartbeat, now: UInt64, wallClock: UInt64) {
        noteIncarnation(heartbeat.incarnation, now: now, wallClock: wallClock)
        if heartbeat.heardAt > lastHeard ?? 0 {
            if let lastCheck = lastLivenessCheck, heartbeat.heardAt < lastCheck, pausedSinceHeard > 0 {
                // Stamped before the latest turn's check, taken in only now (it came between that
                // turn's news and its check, and a pause followed): the pause counted since may
                // have begun after it, so what of it lies after the heartbeat still counts as
                // this side's.
                pausedSinceHeard = min(pausedSinceHeard, lastCheck - heartbeat.heardAt)
            } else {
                pausedSinceHeard = 0
                pauseExcused = false
            }
            lastHeard = heartbeat.heardAt
        }
        let announced = heartbeat.announcement
        inbox.senderHasSent(upTo: announced.highestDataSequence)
        peerOwnershipVersion = announced.ownershipVersion
        peerOwnedBuckets = UInt32(announced.bucketCount) == ownership.bucketCount & 0xFFFF ? Int(announced.ownedBuckets) : nil
        guard peer != .alive else { return }
        // First contact or a restart: learn the peer's table whole. Back after a silence in the
        // same life (a cut link, a fault): the stream goes on where it stopped; NACKs repair the
        // gap and only a gap beyond repair costs a snapshot.
        let firstContact = peer == .unknown, restarted = restartedWhileAway
        restartedWhileAway = false
        peer = .alive
        lastAck = nil
        events.append(.peerAlive(restarted: restarted))
        if firstContact || restarted {
            requestSnapshot(now: now, wallClock: wallClock)
        } else {
            caughtUp = true
        }
    }

    /// Learns the peer's incarnation from a heartbeat the liveness channel heard (it believes an
    /// incarnation only once it answered a challenge). Another one than known: the peer
    /// restarted, its stream starts over, and sync datagrams of the old one are refused.
    private mutating func noteIncarnation(_ incarnation: UInt64, now: UInt64, wallClock: UInt64) {
        guard incarnation != peerIncarnation else { return }
        replay.start(incarnation: incarnation)
        guard peerIncarnation != nil else {
            peerIncarnation = incarnation
            return
        }
        peerIncarnation = incarnation
        counters.peerRestarts += 1
        inbox.restart()
        retransmissions.removeAll()
        peerAcknowledged = 0
        releasedByPeerAt = nil
        releasedByPeer = .none(configuredShare.bucketCount)
        caughtUp = false
        if peer == .alive {
            events.append(.peerAlive(restarted: true))
            requestSnapshot(now: now, wallClock: wallClock)
        } else {
            restartedWhileAway = true
        }
    }

    // MARK: - Datagrams from the peer (sync channel)

    /// Takes one datagram from the sync socket. What is wrong with it is counted. Only the
    /// incarnation the liveness channel believes is heard, and a control datagram only once:
    /// both are checked before the authenticator, so forgeries cost no HMAC.
    public mutating func receive(_ bytes: [UInt8], now: UInt64, wallClock: UInt64) {
        let preview: SyncPreview
        do {
            preview = try codec.preview(bytes)
        } catch {
            counters[rejected: error] += 1
            return
        }
        guard preview.header.nodeID == settings.peerNodeID else {
            counters[rejected: .unexpectedSender] += 1
            return
        }
        let kind = preview.kind, header = preview.header
        guard !kind.isLiveness else {
            counters[rejected: .wrongChannel] += 1
            return
        }
        if let refusal = replay.refusal(incarnation: header.incarnation, sequence: header.sequence),
           refusal == .unverifiedIncarnation || !kind.isData {
            counters[rejected: refusal] += 1
            return
        }
        let datagram: SyncDatagram
        do {
            datagram = try codec.decode(bytes)
        } catch {
            counters[rejected: error] += 1
            return
        }
        let refusal = kind.isData ? replay.admitData(incarnation: header.incarnation, sequence: header.sequence)
                                  : replay.admit(incarnation: header.incarnation, sequence: header.sequence)
        if let refusal {
            counters[rejected: refusal] += 1
            return
        }
        counters.datagramsReceived += 1
        handle(datagram, now: now, wallClock: wallClock)
    }

    private mutating func handle(_ datagram: SyncDatagram, now: UInt64, wallClock: UInt64) {
        switch datagram.body {
        case let .deltas(dataSequence, records):
            accept(records, dataSequence: dataSequence, changedAt: datagram.header.sentAt)
        case let .snapshotChunk(requestID, dataSequence, _, isLast, records):
            accept(records, dataSequence: dataSequence, changedAt: datagram.header.sentAt)
            if let request = snapshotRequest, request.id == requestID {
                snapshotRequest?.lastProgress = now
                if isLast { snapshotLastSequence = dataSequence }
            }
        case .heartbeat:
            break   // refused in `receive`: heartbeats come through `heard`
        case let .ack(dataSequence):
            peerAcknowledged = max(peerAcknowledged, min(dataSequence, outbox.highestDataSequence))
        case let .nack(missing):
            for range in missing {
                counters.retransmissionsUnavailable += UInt64(retransmissions.add(range, highest: outbox.highestDataSequence))
            }
        case let .snapshotRequest(requestID):
            events.append(.snapshotWanted(requestID: requestID))
        case let .ownership(_, highestDataSequence, action, nextHop, ranges):
            inbox.senderHasSent(upTo: highestDataSequence)
            if nextHop != .zero, !nextHop.isGroup { peerClientNextHop = nextHop }
            let buckets = BucketOwnership(bucketCount: ownership.bucketCount, ranges: ranges.map { UInt32($0.lowerBound)...UInt32($0.upperBound) })
            peerSays(action, buckets, now: now, wallClock: wallClock)
        case let .health(version, reports):
            events.append(.peerHealth(version: version, reports: reports))
        }
    }

    private mutating func accept(_ records: [SyncRecord], dataSequence: UInt64, changedAt: UInt64) {
        counters.recordsReceived += UInt64(records.count)
        guard let ready = inbox.receive(dataSequence, .init(records: records, changedAt: changedAt)) else {
            counters.duplicatesIgnored += 1
            return
        }
        deliver(ready)
    }

    private mutating func deliver(_ batches: [DeltaInbox.Batch]) {
        for batch in batches where !batch.records.isEmpty {
            events.append(.apply(records: batch.records, changedAt: batch.changedAt))
        }
    }

    private mutating func peerSays(_ action: OwnershipAction, _ buckets: BucketOwnership, now: UInt64, wallClock: UInt64) {
        switch action {
        case .request:
            guard automaticHandover, !handoversPaused(now: now) else { return }
            // A request takes back only what is the peer's by configuration, never this side's
            // own share: a peer with a bug (or a wrong config) must not empty this dispatcher.
            let asked = buckets.subtracting(configuredShare)
            if asked != buckets { counters.requestsBeyondShare += 1 }
            guard !asked.isEmpty else { return }
            let held = asked.intersection(ownership)
            if held.isEmpty {
                // Nothing held (or already released): say so again, the answer may have been lost.
                sendOwnership(.released, asked, wallClock: wallClock)
            } else if !releasing, !taking {
                releasing = true
                events.append(.release(held))
            }
        case .released:
            // Buckets this side released and the peer gives back (it could not take them): that
            // handover is over, without an owner's confirmation.
            if releaseStartedAt != nil, !buckets.intersection(configuredShare.complement).isEmpty { releaseStartedAt = nil }
            // Only what this side does not accept already: a stale entry must never make it take
            // a bucket the peer has since taken back.
            let unowned = buckets.subtracting(ownership)
            guard !unowned.isEmpty else { return }
            releasedByPeer = releasedByPeer.union(unowned)
            if releasedByPeerAt == nil { releasedByPeerAt = now }
        case .taken:
            releasedByPeer = releasedByPeer.subtracting(buckets)
            if let started = releaseStartedAt, !buckets.intersection(configuredShare.complement).isEmpty {
                lastHandoverGap = now &- started
                releaseStartedAt = nil
                events.append(.handoverCompleted(gap: now &- started))
            }
            // Both accept these: keep what is this side's by configuration, let go of the rest.
            let overlap = buckets.intersection(ownership).subtracting(configuredShare)
            if automaticHandover, !overlap.isEmpty, !releasing, !taking {
                releasing = true
                events.append(.release(overlap))
            }
        }
    }

    // MARK: - Sending

    private mutating func requestSnapshot(now: UInt64, wallClock: UInt64) {
        let id = nextRequestID
        nextRequestID += 1
        snapshotRequest = (id, now)
        snapshotLastSequence = nil
        deliver(inbox.forgiveGaps())
        events.append(.resyncStarted)
        counters.snapshotsRequested += 1
        sendControl(.snapshotRequest(requestID: id), wallClock: wallClock)
    }

    private mutating func send(_ numbered: DeltaOutbox.Numbered) {
        switch numbered.body {
        case .deltas(_, let records), .snapshotChunk(_, _, _, _, let records): counters.recordsSent += UInt64(records.count)
        default: break
        }
        let datagram = encode(numbered.body, sentAt: numbered.oldestChange)
        outbox.keep(datagram, for: numbered.dataSequence)
    }

    /// Each action is a statement about a set of buckets, so a scattered set may go in parts.
    private mutating func sendOwnership(_ action: OwnershipAction, _ buckets: BucketOwnership, wallClock: UInt64) {
        let ranges = SyncSession.ranges(buckets)
        var start = 0
        repeat {
            let part = Array(ranges[start..<min(ranges.count, start + SyncWireFormat.rangesPerOwnershipMessage)])
            sendControl(.ownership(version: ownershipVersion, highestDataSequence: outbox.highestDataSequence, action: action,
                                   clientNextHop: clientNextHop, ranges: part), wallClock: wallClock)
            start += SyncWireFormat.rangesPerOwnershipMessage
        } while start < ranges.count
    }

    /// Tells the peer this dispatcher's whole view of its real servers' health (see
    /// `ServerHealthReport`), in as many messages as it takes. Unreliable like any control
    /// message: the daemon says it again on every change and every second.
    public mutating func shareHealth(_ reports: [ServerHealthReport], wallClock: UInt64) {
        healthVersion += 1
        var start = 0
        repeat {
            let part = Array(reports[start..<min(reports.count, start + SyncWireFormat.healthReportsPerMessage)])
            sendControl(.health(version: healthVersion, reports: part), wallClock: wallClock)
            start += SyncWireFormat.healthReportsPerMessage
        } while start < reports.count
    }

    private mutating func sendControl(_ body: SyncBody, wallClock: UInt64) {
        _ = encode(body, sentAt: wallClock)
    }

    private mutating func encode(_ body: SyncBody, sentAt: UInt64) -> [UInt8] {
        datagramSequence += 1
        let header = SyncHeader(nodeID: settings.nodeID, incarnation: incarnation, sequence: datagramSequence, sentAt: sentAt)
        let datagram = codec.encode(SyncDatagram(header: header, body: body))
        outgoing.append(datagram)
        counters.datagramsSent += 1
        return datagram
    }

    /// Buckets as the wire's 16-bit ranges.
    static func ranges(_ buckets: BucketOwnership) -> [ClosedRange<UInt16>] {
        buckets.ownedRanges.map { UInt16($0.lowerBound)...UInt16($0.upperBound) }
    }
}
