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
    var foreignDatagrams: UInt64 = 0
    /// Datagrams the kernel refused to send (link down, queue full).
    var sendErrors: UInt64 = 0
    var recordsForUnknownServers: UInt64 = 0
    /// Times a worker's inbound ring was full and records waited in a backlog (none are lost).
    var inboundRingFull: UInt64 = 0
    /// CLOCK_MONOTONIC (ns) when the peer was last declared dead, and the silence that made it so.
    var peerDeclaredDeadAt: UInt64?
    var deathSilence: UInt64?
    /// CLOCK_MONOTONIC (ns) when this dispatcher last finished taking every bucket.
    var tookAllAt: UInt64?
    var lastHandoverGap: UInt64?
    var highestDataSequenceSent: UInt64 = 0
    var peerAcknowledged: UInt64 = 0
    var missingDatagrams = 0
    var automaticHandover = true
    /// The longest turn of the loop, and the longest wait between turns (ns): what delays a heartbeat.
    var longestTurn: UInt64 = 0
    var longestWait: UInt64 = 0
}

/// The dedicated sync thread of a paired director: one UDP socket on the crossover link, the
/// protocol (`SyncSession`), and the workers' rings. Each turn of its loop (at most 500 µs
/// apart, or at once when a datagram arrives) it
///   1. reads every waiting datagram from the peer,
///   2. drains every worker's outbound ring into the outbox (so a change waits ≤ ~0.5 ms),
///   3. lets the session send what is due (deltas, heartbeats, NACKs) and decide,
///   4. carries out the decisions: replicas to the workers' inbound rings, bucket handovers,
///      takeover with gratuitous ARP.
/// It runs at SCHED_FIFO priority by default, so a heartbeat never waits behind busy workers.
final class SyncThread: @unchecked Sendable {
    private unowned let director: Director
    private let peer: Configuration.Peer
    private let workers: [Worker]
    private let socket: SyncSocket
    private var session: SyncSession
    private let stopping = Atomic<Bool>(false)
    private var thread: pthread_t?
    let status = Mutex(SyncStatus())
    private var local = SyncStatus()
    private var pendingSnapshot: (requestID: UInt64, workersLeft: Set<Int>)?
    /// Per worker, instructions its full inbound ring could not take yet.
    private var backlogs: [[WorkerInstruction]]
    private var services: ServiceTable
    private var servicesGeneration: UInt64

    static let turnNanoseconds: UInt64 = 500_000
    /// The most time a turn spends taking datagrams from the peer.
    static let receiveBudgetNanoseconds: UInt64 = 2_000_000
    /// A turn longer than this is logged with where its time went.
    static let slowTurnNanoseconds: UInt64 = 5_000_000
    /// Worker reports taken per worker per turn: at 2,000 turns a second, far above any live
    /// change rate, yet small enough to pace a snapshot.
    static let reportsPerTurn = 4096

    init(director: Director, peer: Configuration.Peer, workers: [Worker]) throws {
        self.director = director
        self.peer = peer
        self.workers = workers
        backlogs = Array(repeating: [], count: workers.count)
        socket = try SyncSocket(local: peer.localAddress, peer: peer.address, port: peer.syncPort)
        guard let codec = SyncCodec(key: peer.key) else { throw ConfigurationError(field: "director.peer.key", problem: "shorter than 16 bytes") }
        let settings = SyncSettings(nodeID: director.configuration.nodeID, peerNodeID: peer.nodeID,
                                    heartbeatInterval: UInt64(peer.heartbeatIntervalMilliseconds) * 1_000_000,
                                    deadAfterMissed: peer.deadAfterMissed, flushDelay: 0)
        // A fresh incarnation at each start: the wall clock in ns only grows across restarts.
        session = SyncSession(settings: settings, configuredShare: director.configuration.initialOwnership, codec: codec,
                              incarnation: director_realtime_nanoseconds(), now: director_monotonic_nanoseconds())
        services = director.currentServices
        servicesGeneration = services.generation
    }

    func start() {
        let box = Unmanaged.passRetained(self)
        var handle = pthread_t()
        pthread_create(&handle, nil, { argument in
            let sync = Unmanaged<SyncThread>.fromOpaque(argument!).takeRetainedValue()
            sync.run()
            return nil
        }, box.toOpaque())
        thread = handle
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        if let thread { pthread_join(thread, nil) }
        thread = nil
    }

    private func run() {
        if let cpu = peer.syncCPU, director_pin_current_thread(Int32(cpu)) != 0 {
            Log.warning("sync thread: could not pin to CPU \(cpu)")
        }
        if peer.syncRealtimePriority > 0 {
            let result = director_make_current_thread_realtime(Int32(peer.syncRealtimePriority))
            if result != 0 { Log.warning("sync thread: SCHED_FIFO \(peer.syncRealtimePriority) refused (\(String(cString: strerror(result)))); heartbeats may be late under load") }
        }
        Log.info("sync: \(peer.localAddress):\(peer.syncPort) ↔ node \(peer.nodeID) at \(peer.address):\(peer.syncPort), "
            + "heartbeat \(peer.heartbeatIntervalMilliseconds) ms, dead after \(peer.deadAfterMissed) missed; waiting for the peer")
        var buffer = [UInt8](repeating: 0, count: 2048)
        var turnEnded = director_monotonic_nanoseconds()
        while !stopping.load(ordering: .relaxed) {
            socket.wait(timeoutNanoseconds: SyncThread.turnNanoseconds)
            let turnStarted = director_monotonic_nanoseconds()
            // How punctual the thread is: a late turn is a late heartbeat.
            local.longestWait = max(local.longestWait, turnStarted &- turnEnded)
            switch handoverModeRequest.exchange(HandoverModeRequest.none, ordering: .relaxed) {
            case HandoverModeRequest.pause: session.automaticHandover = false
            case HandoverModeRequest.resume: session.automaticHandover = true
            default: break
            }
            refreshServices()
            feedBacklogs()
            receiveDatagrams(&buffer)
            let received = director_monotonic_nanoseconds()
            drainWorkers()
            let drained = director_monotonic_nanoseconds()
            session.tick(now: drained, wallClock: director_realtime_nanoseconds(), ownership: director.currentOwnership)
            let ticked = director_monotonic_nanoseconds()
            let handled = carryOutEvents()
            let carried = director_monotonic_nanoseconds()
            sendDatagrams()
            turnEnded = director_monotonic_nanoseconds()
            local.longestTurn = max(local.longestTurn, turnEnded &- turnStarted)
            if turnEnded &- turnStarted > SyncThread.slowTurnNanoseconds {
                func ms(_ nanoseconds: UInt64) -> String { String(Double(nanoseconds / 10_000) / 100) }
                Log.warning("sync: a turn took \(ms(turnEnded &- turnStarted)) ms (receive \(ms(received &- turnStarted)), drain \(ms(drained &- received)), "
                    + "tick \(ms(ticked &- drained)), events \(ms(carried &- ticked)) [\(SyncThread.names(of: handled))], send \(ms(turnEnded &- carried))): heartbeats wait meanwhile")
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

    // MARK: - 1. From the peer

    private func receiveDatagrams(_ buffer: inout [UInt8]) {
        // A bounded amount per turn (a snapshot arriving is thousands of datagrams), so that no
        // turn runs long enough to delay a heartbeat; the rest waits in the socket's buffer.
        let deadline = director_monotonic_nanoseconds() + SyncThread.receiveBudgetNanoseconds
        for count in 0..<512 {
            if count % 16 == 15, director_monotonic_nanoseconds() > deadline { return }
            switch socket.receive(into: &buffer) {
            case .datagram(let bytes):
                session.receive(bytes, now: director_monotonic_nanoseconds(), wallClock: director_realtime_nanoseconds())
            case .foreign:
                local.foreignDatagrams += 1
            case .none:
                return
            }
        }
    }

    // MARK: - 2. From the workers

    private func drainWorkers() {
        let now = director_monotonic_nanoseconds(), wallClock = director_realtime_nanoseconds()
        let nowMilliseconds = now / 1_000_000
        let timeouts = director.configuration.timeouts
        for worker in workers {
            guard let outbound = worker.link?.outbound else { continue }
            // A bounded share per turn (about 100 datagrams): a snapshot leaves in a paced stream
            // rather than one burst that would overflow queues on the way and take heartbeats with it.
            outbound.drain(limit: SyncThread.reportsPerTurn) { report in
                switch report {
                case .change(let change, let changedAt):
                    if let record = SyncRecord(change, services: services, now: nowMilliseconds, timeouts: timeouts) {
                        session.record(record, changedAt: changedAt, now: now)
                    }
                case .snapshotEntry(let entry, let requestID):
                    guard pendingSnapshot?.requestID == requestID,
                          let record = SyncRecord(snapshotOf: entry, services: services, now: nowMilliseconds, timeouts: timeouts) else { return }
                    session.appendSnapshot(record, requestID: requestID, now: now, wallClock: wallClock)
                case .snapshotEnd(let requestID):
                    guard pendingSnapshot?.requestID == requestID else { return }
                    pendingSnapshot?.workersLeft.remove(worker.plan.index)
                    if pendingSnapshot?.workersLeft.isEmpty == true {
                        pendingSnapshot = nil
                        session.finishSnapshot(requestID: requestID, now: now, wallClock: director_realtime_nanoseconds())
                    }
                }
            }
        }
    }

    // MARK: - 4. Decisions

    /// Returns the events carried out (for the slow-turn log).
    @discardableResult
    private func carryOutEvents() -> [SyncEvent] {
        var kicked = Set<Int>()
        let events = session.takeEvents()
        defer { for index in kicked { workers[index].link?.wakeup.ring() } }
        for event in events {
            switch event {
            case .apply(let records, let changedAt):
                for record in records {
                    guard let update = record.replicaUpdate(services: services) else {
                        local.recordsForUnknownServers += 1
                        continue
                    }
                    let worker = workerIndex(for: record)
                    hand(.apply(update, changedAt: changedAt), to: worker)
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
            case .peerDead(let silence):
                local.peerDeclaredDeadAt = director_monotonic_nanoseconds()
                local.deathSilence = silence
                Log.warning("sync: peer node \(peer.nodeID) is dead (silent for \(silence / 1_000_000) ms); taking over its buckets")
            case .takeAll:
                takeAll()
                // After a death (not a lonely start): wake the clients of the peer's connections.
                if local.peerDeclaredDeadAt != nil, session.peer == .dead {
                    let all = BucketOwnership.all(director.configuration.bucketCount)
                    for index in workers.indices { hand(.probeReplicas(all), to: index); kicked.insert(index) }
                }
            case .caughtUp:
                Log.info("sync: caught up with the peer's table (\(session.counters.recordsReceived) records received)")
            case .release(let buckets):
                release(buckets)
            case .take(let buckets):
                for index in kicked { workers[index].link?.wakeup.ring() }
                kicked.removeAll()
                take(buckets)
            case .handoverCompleted(let gap):
                local.lastHandoverGap = gap
                Log.info("sync: the peer accepts the buckets handed over; \(gap / 1_000) µs without an owner at most")
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
            case .resyncStarted: "resync started"
            case .resyncCompleted: "resync completed"
            case .caughtUp: "caught up"
            case .takeAll: "take all"
            case .release: "release"
            case .take: "take"
            case .handoverCompleted: "handover completed"
            }
        }).sorted().joined(separator: ", ")
    }

    /// The worker whose shard holds the record's flow: the fan-out sends bucket b to worker b mod n.
    private func workerIndex(for record: SyncRecord) -> Int {
        let bucket = ClientBucket.bucket(address: record.clientAddress, port: record.clientPort, bucketCount: director.configuration.bucketCount)
        return Int(bucket) % workers.count
    }

    /// Hands an instruction to a worker, in order. When its ring is full (a large snapshot
    /// arriving faster than the worker applies it), the rest waits in a backlog that the next
    /// turns feed in: the sync thread never blocks on a worker, so heartbeats stay on time.
    private func hand(_ instruction: WorkerInstruction, to index: Int) {
        guard let inbound = workers[index].link?.inbound else { return }
        if backlogs[index].isEmpty, inbound.push(instruction) { return }
        if backlogs[index].isEmpty { local.inboundRingFull += 1 }
        backlogs[index].append(instruction)
    }

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

    private func takeAll() {
        let all = BucketOwnership.all(director.configuration.bucketCount)
        do {
            try director.setOwnership(all)
        } catch {
            Log.error("sync: taking every bucket failed: \(error)")
        }
        director.setAnswersARP(true)
        director.announceVirtualAddresses()
        local.tookAllAt = director_monotonic_nanoseconds()
    }

    /// Stops accepting `buckets`, waits until every worker has finished the frames it held and
    /// handed in their changes, sends those, then tells the peer.
    private func release(_ buckets: BucketOwnership) {
        let stoppedAt = director_monotonic_nanoseconds()
        do {
            try director.setOwnership(director.currentOwnership.subtracting(buckets))
        } catch {
            Log.error("sync: releasing buckets failed: \(error)")
        }
        for worker in workers where !worker.quiesce(timeoutNanoseconds: 50_000_000) {
            Log.warning("sync: worker \(worker.plan.index) did not come round within 50 ms of the release")
        }
        // Everything the workers reported before and during the release goes out before `released`.
        while workers.contains(where: { ($0.link?.outbound.count ?? 0) > 0 }) { drainWorkers() }
        session.didRelease(buckets, stoppedAt: stoppedAt, now: director_monotonic_nanoseconds(), wallClock: director_realtime_nanoseconds())
        sendDatagrams()
        Log.info("sync: released buckets \(buckets.description) to the peer")
    }

    /// Waits until every worker has applied what it was handed (the peer's records up to its
    /// release), then accepts `buckets`.
    private func take(_ buckets: BucketOwnership) {
        let deadline = director_monotonic_nanoseconds() + 50_000_000
        while backlogs.contains(where: { !$0.isEmpty }) && director_monotonic_nanoseconds() < deadline {
            feedBacklogs()
            usleep(50)
        }
        for worker in workers where !worker.quiesce(timeoutNanoseconds: 50_000_000) {
            Log.warning("sync: worker \(worker.plan.index) did not come round within 50 ms before the take")
        }
        do {
            try director.setOwnership(director.currentOwnership.union(buckets))
        } catch {
            Log.error("sync: taking buckets failed: \(error)")
        }
        session.didTake(buckets, now: director_monotonic_nanoseconds(), wallClock: director_realtime_nanoseconds())
        sendDatagrams()
        // Client packets of these buckets that arrived in the gap were dropped by both sides.
        for index in workers.indices { hand(.probeReplicas(buckets), to: index) }
        for worker in workers { worker.link?.wakeup.ring() }
        Log.info("sync: took buckets \(buckets.description) from the peer")
    }

    // MARK: - 3. To the peer

    private func sendDatagrams() {
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
        local.automaticHandover = session.automaticHandover
        let snapshot = local
        status.withLock { $0 = snapshot }
    }

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
