import CDirectorShim
import DirectorCore
import DirectorSync
import DirectorWire
import PacketIO
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What the pair looks like now, for `director stats` and `director sync`: written by the sync
/// thread every turn of its loop, read by the control thread.
struct SyncStatus: Sendable {
    var peer = SyncSession.PeerState.unknown
    var caughtUp = false
    var peerIncarnation: UInt64?
    var lastHeardAgo: UInt64?
    var counters = SyncCounters()
    var liveness = LivenessReport()
    var foreignDatagrams: UInt64 = 0
    /// Datagrams the kernel refused to send (link down, queue full).
    var sendErrors: UInt64 = 0
    var recordsForUnknownServers: UInt64 = 0
    var recordsForUnknownServices: UInt64 = 0
    var replicaLifetimesClamped: UInt64 = 0
    /// Times a worker's inbound ring was full and records waited in a backlog (none are lost).
    var inboundRingFull: UInt64 = 0
    /// CLOCK_MONOTONIC (ns) when the peer was last declared dead, and the silence that made it so.
    var peerDeclaredDeadAt: UInt64?
    var deathSilence: UInt64?
    /// CLOCK_MONOTONIC (ns) when this dispatcher last finished taking every bucket.
    var tookAllAt: UInt64?
    /// CLOCK_MONOTONIC (ns) when this dispatcher last accepted buckets handed over by the peer.
    var tookBucketsAt: UInt64?
    var lastHandoverGap: UInt64?
    var highestDataSequenceSent: UInt64 = 0
    var peerAcknowledged: UInt64 = 0
    var missingDatagrams = 0
    var retransmissionsQueued = 0
    var automaticHandover = true
    /// Why this dispatcher cannot serve, while it cannot (its heartbeats are withheld).
    var fault: String?
    /// The longest turn of the loop, and the longest wait between turns (ns).
    var longestTurn: UInt64 = 0
    /// The most CPU time one turn used (ns): its own work, without waiting for a CPU.
    var longestTurnCPU: UInt64 = 0
    var longestWait: UInt64 = 0
    /// The longest time each step of a turn took (ns), by `SyncThread.Step`.
    var longestStep = [UInt64](repeating: 0, count: SyncThread.Step.allCases.count)
}

/// The dedicated sync thread of a paired director: the record stream's UDP socket on the
/// crossover link, the protocol (`SyncSession`), and the workers' rings. Each turn of its loop
/// (at most 500 µs apart, or at once when a datagram arrives) it
///   1. takes the liveness thread's news (the peer's latest heartbeat, this side's fitness),
///   2. reads the peer's datagrams, for at most `receiveBudget`,
///   3. drains the workers' outbound rings into the outbox, for at most `drainBudget`,
///   4. lets the session send what is due (deltas, acknowledgements, paced retransmissions and
///      NACKs) and decide,
///   5. carries out the decisions: replicas to the workers' inbound rings, takeover with
///      gratuitous ARP, and a step of any bucket handover in progress (`HandoverInProgress`),
///   6. sends.
/// No step waits for a worker or loops until something happens: what takes longer is state
/// carried to the next turn. Heartbeats are not its business: the liveness thread sends them.
final class SyncThread: @unchecked Sendable {
    unowned let director: Director
    let peer: Configuration.Peer
    let workers: [Worker]
    private let socket: SyncSocket
    var session: SyncSession
    let liveness: LivenessThread
    private let stopping = Atomic<Bool>(false)
    private var thread = DaemonThread(name: "sync")
    let status = Mutex(SyncStatus())
    var local = SyncStatus()
    private var pendingSnapshot: (requestID: UInt64, workersLeft: Set<Int>)?
    /// Per worker, instructions its full inbound ring could not take yet.
    private var backlogs: [[WorkerInstruction]]
    private var services: ServiceTable
    private var servicesGeneration: UInt64
    /// The bucket handover being carried out, a step per turn.
    var handover: HandoverInProgress?
    /// Every bucket is to be taken (the peer died, or never came) and the filter change has not
    /// succeeded yet: retried every turn.
    var takeAllPending = false
    var lastFilterRetryLog: UInt64 = 0
    /// Unfit to serve beside a live peer, this dispatcher lets go of every bucket, and the filter
    /// change has not succeeded yet: retried every turn (the peer takes everything meanwhile, so
    /// both would accept them).
    var releaseAllPending = false
    /// The latest heartbeat handed to the session (its arrival time), and the fault seen last.
    private var heartbeatSeen: UInt64 = 0
    private var faultSeen: String?
    /// Per worker, the sync-ring-full count last seen: a rise means changes were lost.
    private var ringFullSeen: [UInt64]
    /// Events the session produced that a turn had no time left to carry out, oldest first.
    private var eventsLeft: [SyncEvent] = []
    private var healthShareDue = true
    private var lastHealthShare: UInt64 = 0

    static let turnNanoseconds: UInt64 = 500_000
    static let handoverTurnNanoseconds: UInt64 = 50_000
    /// The most time a turn spends taking datagrams from the peer.
    static let receiveBudgetNanoseconds: UInt64 = 1_000_000
    /// The most time a turn spends taking the workers' reports.
    static let drainBudgetNanoseconds: UInt64 = 500_000
    /// The most time a turn spends carrying out events (a snapshot arriving is tens of thousands
    /// of records for the workers); the rest waits for the next turn, and no datagram is read
    /// meanwhile, so the socket's buffer holds what the workers have not caught up with.
    static let eventsBudgetNanoseconds: UInt64 = 1_000_000
    /// A turn longer than this is logged with where its time went.
    static let slowTurnNanoseconds: UInt64 = 5_000_000

    /// The steps of a turn, for the longest-step figures.
    enum Step: Int, CaseIterable {
        case liveness, receive, drain, tick, events, handover, send

        var name: String {
            switch self {
            case .liveness: "liveness"
            case .receive: "receive"
            case .drain: "drain"
            case .tick: "tick"
            case .events: "events"
            case .handover: "handover"
            case .send: "send"
            }
        }
    }

    init(director: Director, peer: Configuration.Peer, crossover: String, workers: [Worker]) throws {
        self.director = director
        self.peer = peer
        self.workers = workers
        backlogs = Array(repeating: [], count: workers.count)
        ringFullSeen = Array(repeating: 0, count: workers.count)
        socket = try SyncSocket(local: peer.localAddress, peer: peer.address, port: peer.syncPort, device: crossover)
        guard let codec = SyncCodec(key: peer.key) else { throw ConfigurationError(field: "director.peer.key", problem: "shorter than 16 bytes") }
        let settings = SyncSettings(nodeID: director.configuration.nodeID, peerNodeID: peer.nodeID,
                                    heartbeatInterval: UInt64(peer.heartbeatIntervalMilliseconds) * 1_000_000,
                                    deadAfterMissed: peer.deadAfterMissed, flushDelay: 0)
        // A fresh incarnation at each start, at random: the peer believes it once it answers the
        // peer's challenge, whatever the clocks say (see the handshake in SyncWireFormat).
        let incarnation = UInt64.random(in: 1...UInt64.max)
        let session = SyncSession(settings: settings, configuredShare: director.configuration.initialOwnership, codec: codec,
                                  incarnation: incarnation, now: director_monotonic_nanoseconds())
        liveness = try LivenessThread(peer: peer, crossover: crossover, nodeID: director.configuration.nodeID, incarnation: incarnation, codec: codec,
                                      workers: workers, front: director.front, initial: session.announcement, fastPath: director.fastPath)
        self.session = session
        services = director.currentServices
        servicesGeneration = services.generation
    }

    func start() {
        liveness.start()
        thread.start { self.run() }
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        thread.join()
        liveness.stop()
    }

    private func run() {
        DaemonThread.placeCurrent("sync thread", cpu: peer.syncCPU, realtimePriority: peer.syncRealtimePriority,
                                  riskIfRefused: "the record stream may lag under load")
        Log.info("sync: \(peer.localAddress):\(peer.syncPort) ↔ node \(peer.nodeID) at \(peer.address):\(peer.syncPort), heartbeats on port \(peer.heartbeatPort) "
            + "every \(peer.heartbeatIntervalMilliseconds) ms, dead after \(peer.deadAfterMissed) missed; waiting for the peer")
        var buffer = [UInt8](repeating: 0, count: 2048)
        var turnEnded = director_monotonic_nanoseconds()
        var marks = [UInt64](repeating: 0, count: Step.allCases.count + 1)
        var pacing = ReceivePacing()
        while !stopping.load(ordering: .relaxed) {
            // A handover waits for the workers to come round: turn more often meanwhile.
            pacing.wait(for: socket, nanoseconds: handover == nil ? SyncThread.turnNanoseconds : SyncThread.handoverTurnNanoseconds)
            let turnStarted = director_monotonic_nanoseconds()
            let cpuAtStart = director_thread_cpu_nanoseconds()
            // How punctual the thread is: a late turn is late news for the peer.
            local.longestWait = max(local.longestWait, turnStarted &- turnEnded)
            marks[0] = turnStarted
            switch handoverModeRequest.exchange(HandoverModeRequest.none, ordering: .relaxed) {
            case HandoverModeRequest.pause: session.automaticHandover = false
            case HandoverModeRequest.resume: session.automaticHandover = true
            default: break
            }
            refreshServices()
            // Where this side's client frames come from, for the peer's probes after a handover.
            if let hop = workers.lazy.map({ $0.clientNextHop.load(ordering: .relaxed) }).first(where: { $0 != 0 }) {
                session.clientNextHop = MACAddress(rawValue: hop)
            }
            takeLivenessNews()
            marks[1] = director_monotonic_nanoseconds()
            feedBacklogs()
            if let (read, drained) = receiveDatagrams(&buffer) { pacing.noteRead(read, drained: drained) }
            marks[2] = director_monotonic_nanoseconds()
            drainWorkers()
            marks[3] = director_monotonic_nanoseconds()
            session.tick(now: marks[3], wallClock: director_realtime_nanoseconds(), ownership: director.currentOwnership)
            marks[4] = director_monotonic_nanoseconds()
            let handled = carryOutEvents()
            marks[5] = director_monotonic_nanoseconds()
            continueHandover()
            shareHealthIfDue(now: marks[5])
            marks[6] = director_monotonic_nanoseconds()
            sendDatagrams()
            liveness.announce(session.announcement)
            turnEnded = director_monotonic_nanoseconds()
            marks[7] = turnEnded
            for step in Step.allCases {
                local.longestStep[step.rawValue] = max(local.longestStep[step.rawValue], marks[step.rawValue + 1] &- marks[step.rawValue])
            }
            local.longestTurn = max(local.longestTurn, turnEnded &- turnStarted)
            local.longestTurnCPU = max(local.longestTurnCPU, director_thread_cpu_nanoseconds() &- cpuAtStart)
            if turnEnded &- turnStarted > SyncThread.slowTurnNanoseconds {
                func ms(_ nanoseconds: UInt64) -> String { String(Double(nanoseconds / 10_000) / 100) }
                let steps = Step.allCases.map { "\($0.name) \(ms(marks[$0.rawValue + 1] &- marks[$0.rawValue]))" }.joined(separator: ", ")
                Log.warning("sync: a turn took \(ms(turnEnded &- turnStarted)) ms (\(steps); events [\(SyncThread.names(of: handled))])")
            }
            publishStatus()
        }
    }

    private func refreshServices() {
        let exchange = director.currentServicesGeneration
        if exchange != servicesGeneration {
            services = director.currentServices
            servicesGeneration = services.generation
        }
    }

    // MARK: - 1. The liveness thread's news

    private func takeLivenessNews() {
        let report = liveness.report.withLock { $0 }
        local.liveness = report
        let now = director_monotonic_nanoseconds(), wallClock = director_realtime_nanoseconds()
        if let heartbeat = report.latest, heartbeat.heardAt != heartbeatSeen {
            heartbeatSeen = heartbeat.heardAt
            session.heard(heartbeat, now: now, wallClock: wallClock)
        }
        if report.fault != faultSeen {
            faultSeen = report.fault
            enterOrLeaveFault(report.fault)
        }
    }

    // MARK: - 2. From the peer

    /// Returns how many datagrams it read and whether it emptied the socket; nil if it read none
    /// because earlier records still wait.
    private func receiveDatagrams(_ buffer: inout [UInt8]) -> (read: Int, drained: Bool)? {
        // Not while earlier records still wait to be handed to the workers.
        guard eventsLeft.isEmpty else { return nil }
        // A bounded amount per turn (a snapshot arriving is thousands of datagrams); the rest
        // waits in the socket's buffer for the next turns.
        let deadline = director_monotonic_nanoseconds() + SyncThread.receiveBudgetNanoseconds
        for count in 0..<1024 {
            if count % 8 == 7, director_monotonic_nanoseconds() > deadline { return (count, false) }
            switch socket.receive(into: &buffer) {
            case .datagram(let bytes):
                session.receive(bytes, now: director_monotonic_nanoseconds(), wallClock: director_realtime_nanoseconds())
            case .foreign:
                local.foreignDatagrams += 1
            case .none:
                return (count, true)
            }
        }
        return (1024, false)
    }

    // MARK: - 3. From the workers

    private func drainWorkers() {
        let now = director_monotonic_nanoseconds(), wallClock = director_realtime_nanoseconds()
        let deadline = now + SyncThread.drainBudgetNanoseconds
        let nowMilliseconds = now / 1_000_000
        let timeouts = services.timeouts ?? director.configuration.timeouts
        for worker in workers {
            // Changes this worker could not hand in (its ring was full) are gone: the peer must
            // resync to learn them.
            let ringFull = director.board.gauge(worker: worker.plan.index, .syncRingFull)
            if ringFull != ringFullSeen[worker.plan.index] {
                ringFullSeen[worker.plan.index] = ringFull
                session.recordsLost(now: now, wallClock: wallClock)
            }
        }
        // Round robin in slices, so one worker's snapshot walk does not starve the others, and
        // paced: a snapshot leaves as a stream rather than one burst that would overflow queues.
        var drainedAny = true
        while drainedAny, director_monotonic_nanoseconds() < deadline {
            drainedAny = false
            for worker in workers {
                guard let outbound = worker.link?.outbound else { continue }
                let drained = outbound.drain(limit: 256) { report in take(report, from: worker, nowMilliseconds: nowMilliseconds, timeouts: timeouts) }
                if drained > 0 { drainedAny = true }
            }
        }
    }

    private func take(_ report: WorkerReport, from worker: Worker, nowMilliseconds: UInt64, timeouts: ConnectionTimeouts) {
        let now = director_monotonic_nanoseconds()
        switch report {
        case .change(let change, let changedAt):
            if let record = SyncRecord(change, services: services, now: nowMilliseconds, timeouts: timeouts) {
                session.record(record, changedAt: changedAt, now: now)
            }
        case .change6(let change, let changedAt):
            if let record = SyncRecord(change, services: services, now: nowMilliseconds, timeouts: timeouts) {
                session.record(record, changedAt: changedAt, now: now)
            }
        case .snapshotEntry(let entry, let requestID):
            guard pendingSnapshot?.requestID == requestID,
                  let record = SyncRecord(snapshotOf: entry, services: services, now: nowMilliseconds, timeouts: timeouts) else { return }
            session.appendSnapshot(record, requestID: requestID, now: now, wallClock: director_realtime_nanoseconds())
        case .snapshotEntry6(let entry, let requestID):
            guard pendingSnapshot?.requestID == requestID,
                  let record = SyncRecord(snapshotOf: entry, services: services, now: nowMilliseconds, timeouts: timeouts) else { return }
            session.appendSnapshot(record, requestID: requestID, now: now, wallClock: director_realtime_nanoseconds())
        case .snapshotEnd(let requestID):
            guard pendingSnapshot?.requestID == requestID else { return }
            pendingSnapshot?.workersLeft.remove(worker.plan.index)
            if pendingSnapshot?.workersLeft.isEmpty == true {
                pendingSnapshot = nil
                session.finishSnapshot(requestID: requestID, now: now, wallClock: director_realtime_nanoseconds())
            }
        }
    }

    // MARK: - 5. Decisions

    /// Returns the events carried out (for the slow-turn log).
    @discardableResult
    private func carryOutEvents() -> [SyncEvent] {
        var kicked = Set<Int>()
        let events = eventsLeft + session.takeEvents()
        eventsLeft = []
        defer { for index in kicked { workers[index].link?.wakeup.ring() } }
        let deadline = director_monotonic_nanoseconds() + SyncThread.eventsBudgetNanoseconds
        let timeouts = services.timeouts ?? director.configuration.timeouts
        for (position, event) in events.enumerated() {
            if position % 8 == 7, director_monotonic_nanoseconds() > deadline {
                eventsLeft = Array(events[position...])
                return Array(events[..<position])
            }
            switch event {
            case .apply(let records, let changedAt):
                for record in records {
                    let instruction: WorkerInstruction
                    switch record.replicaDecision(services: services, timeouts: timeouts) {
                    case .apply(let checked, let clamped):
                        instruction = .apply(checked, changedAt: changedAt)
                        if clamped { local.replicaLifetimesClamped += 1 }
                    case .apply6(let checked, let clamped):
                        instruction = .apply6(checked, changedAt: changedAt)
                        if clamped { local.replicaLifetimesClamped += 1 }
                    case .unknownService:
                        local.recordsForUnknownServices += 1
                        continue
                    case .unknownRealServer:
                        local.recordsForUnknownServers += 1
                        continue
                    }
                    let worker = workerIndex(for: record)
                    hand(instruction, to: worker)
                    kicked.insert(worker)
                }
            case .resyncStarted:
                for index in workers.indices { hand(.beginResync, to: index); kicked.insert(index) }
            case .resyncCompleted:
                for index in workers.indices { hand(.completeResync, to: index); kicked.insert(index) }
            case .snapshotWanted(let requestID):
                pendingSnapshot = (requestID, Set(workers.indices))
                for index in workers.indices { hand(.walkForSnapshot(requestID: requestID), to: index); kicked.insert(index) }
                Log.info("sync: the peer asked for a snapshot (request \(requestID))")
            case .peerAlive(let restarted):
                Log.info("sync: peer node \(peer.nodeID) is alive\(restarted ? " (restarted)" : "")")
                director.setAnswersARP(director.configuration.answersARP)
                director.notifier.notify(["peer", "alive", "\(peer.nodeID)"])
                // A restarted peer's view starts over (and its versions with it).
                if restarted { director.forgetPeerHealth() }
                healthShareDue = true
                // Unfit to serve: the peer is here now to take every bucket (it hears no
                // heartbeat from this side), so this side lets go of them.
                if session.isInFault { releaseAllPending = true }
            case .ownPauseExcused(let pause, let silence):
                Log.warning("sync: this director did not run for a while (stopped, or held off its CPUs): \(pause / 1_000_000) ms of "
                    + "peer node \(peer.nodeID)'s \(silence / 1_000_000) ms of silence fell in that pause and do not count as a death")
            case .peerDead(let silence):
                local.peerDeclaredDeadAt = director_monotonic_nanoseconds()
                local.deathSilence = silence
                Log.warning("sync: peer node \(peer.nodeID) is dead (no heartbeat for \(silence / 1_000_000) ms); taking over its buckets")
                director.notifier.notify(["peer", "dead", "\(peer.nodeID)"])
                // Alone, this director's own checks decide.
                director.forgetPeerHealth()
            case .takeAll:
                handover = nil
                takeAllPending = true
                takeAll()
                // After a death (not a lonely start): wake the clients of the peer's connections.
                if local.peerDeclaredDeadAt != nil, session.peer == .dead {
                    let all = BucketOwnership.all(director.configuration.bucketCount)
                    for index in workers.indices { hand(.probeReplicas(all, nextHop: session.peerClientNextHop), to: index); kicked.insert(index) }
                }
            case .caughtUp:
                Log.info("sync: caught up with the peer's table (\(session.counters.recordsReceived) records received)")
            case .release(let buckets):
                beginRelease(buckets)
            case .take(let buckets):
                beginTake(buckets)
            case .handoverCompleted(let gap):
                local.lastHandoverGap = gap
                Log.info("sync: the peer accepts the buckets handed over; \(gap / 1_000) µs without an owner at most")
            case .peerHealth(let version, let reports):
                director.peerReportedHealth(version: version, reports: reports)
            }
        }
        return events
    }

    static func names(of events: [SyncEvent]) -> String {
        Set(events.map { event -> String in
            switch event {
            case .apply: "apply"
            case .snapshotWanted: "snapshot wanted"
            case .peerAlive: "peer alive"
            case .peerDead: "peer dead"
            case .ownPauseExcused: "own pause excused"
            case .resyncStarted: "resync started"
            case .resyncCompleted: "resync completed"
            case .caughtUp: "caught up"
            case .takeAll: "take all"
            case .release: "release"
            case .take: "take"
            case .handoverCompleted: "handover completed"
            case .peerHealth: "peer health"
            }
        }).sorted().joined(separator: ", ")
    }

    /// The worker whose shard holds the record's flow: the fan-out sends bucket b to worker b mod n.
    private func workerIndex(for record: SyncRecord) -> Int {
        let bucket = record.bucket(bucketCount: director.configuration.bucketCount)
        return Int(bucket) % workers.count
    }

    /// Hands an instruction to a worker, in order. When its ring is full (a large snapshot
    /// arriving faster than the worker applies it), the rest waits in a backlog that the next
    /// turns feed in: the sync thread never blocks on a worker.
    func hand(_ instruction: WorkerInstruction, to index: Int) {
        guard let inbound = workers[index].link?.inbound else { return }
        if backlogs[index].isEmpty, inbound.push(instruction) { return }
        if backlogs[index].isEmpty { local.inboundRingFull += 1 }
        backlogs[index].append(instruction)
    }

    var backlogsAreEmpty: Bool { backlogs.allSatisfy(\.isEmpty) }

    /// Feeds what waits in the backlogs into the rings, as far as they take it.
    private func feedBacklogs() {
        for index in workers.indices where !backlogs[index].isEmpty {
            guard let inbound = workers[index].link?.inbound else { continue }
            var fed = 0
            while fed < backlogs[index].count, inbound.push(backlogs[index][fed]) { fed += 1 }
            backlogs[index].removeFirst(fed)
            workers[index].link?.wakeup.ring()
        }
    }

    // MARK: - 6. To the peer

    func sendDatagrams() {
        for bytes in session.takeOutgoing() where !socket.send(bytes) {
            local.sendErrors += 1
        }
    }

    // MARK: - Status

    private func publishStatus() {
        local.counters = session.counters
        local.peer = session.peer
        local.caughtUp = session.caughtUp
        local.lastHeardAgo = session.lastHeard.map { director_monotonic_nanoseconds() &- $0 }
        local.highestDataSequenceSent = session.highestDataSequenceSent
        local.peerAcknowledged = session.peerAcknowledged
        local.missingDatagrams = session.inbox.missingCount
        local.retransmissionsQueued = session.retransmissionsQueued
        local.automaticHandover = session.automaticHandover
        local.fault = faultSeen
        let snapshot = local
        status.withLock { $0 = snapshot }
    }

    /// Tells the peer this director's health checks' view when it changed (`healthChanged`), the
    /// peer came back, or a second passed (a lost message costs a second at most).
    private func shareHealthIfDue(now: UInt64) {
        let changed = healthChangedFlag.exchange(false, ordering: .relaxed)
        guard changed || healthShareDue || now &- lastHealthShare >= SyncThread.healthShareNanoseconds else { return }
        healthShareDue = false
        lastHealthShare = now
        let reports = director.ownHealthReports()
        guard !reports.isEmpty else { return }
        session.shareHealth(reports, wallClock: director_realtime_nanoseconds())
    }

    /// The health checks changed a server's state: share the view at the next turn.
    func healthChanged() {
        healthChangedFlag.store(true, ordering: .relaxed)
    }

    private let healthChangedFlag = Atomic<Bool>(false)
    private static let healthShareNanoseconds: UInt64 = 1_000_000_000

    /// Operator moves pause (false) or resume (true) the automatic handovers; the sync thread
    /// takes the request at its next turn (the session is its alone).
    func setAutomaticHandover(_ automatic: Bool) {
        handoverModeRequest.store(automatic ? HandoverModeRequest.resume : HandoverModeRequest.pause, ordering: .relaxed)
    }

    private enum HandoverModeRequest {
        static let none = 0
        static let pause = 1
        static let resume = 2
    }

    private let handoverModeRequest = Atomic<Int>(HandoverModeRequest.none)
}
