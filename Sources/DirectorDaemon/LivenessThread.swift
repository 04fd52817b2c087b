import CDirectorShim
import DirectorSync
import PacketIO
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What the liveness thread tells the sync thread: the peer's latest heartbeat and whether this
/// dispatcher is fit to serve.
struct LivenessReport: Sendable {
    var latest: PeerHeartbeat?
    /// Why this dispatcher cannot serve now (its heartbeats are silent meanwhile), if it cannot.
    var fault: String?
    var heartbeatsSent: UInt64 = 0
    var heartbeatsReceived: UInt64 = 0
    var heartbeatsWithheld: UInt64 = 0
    /// Peer incarnations believed (each answered this side's challenge): the first, then one per restart.
    var incarnationsVerified: UInt64 = 0
    var sendErrors: UInt64 = 0
    /// Datagrams on the liveness socket from anywhere but the peer's.
    var foreignDatagrams: UInt64 = 0
    var rejected = [UInt64](repeating: 0, count: SyncRejection.allCases.count)
    /// The longest the thread was late for a heartbeat (ns): what delays the peer's view of us.
    var longestLateness: UInt64 = 0
}

/// The pair's liveness path, apart from the record stream: a thread of its own (SCHED_FIFO, one
/// priority above the sync thread), a socket of its own on the crossover link, heartbeats at their interval
/// whatever a snapshot or a flood is doing to the sync thread, and the peer's heartbeats read as
/// they arrive. It sends a heartbeat only while this dispatcher can serve: every worker has come
/// round its loop within the stall limit (`WorkerProgressWatch`), and the front interface is up.
/// Otherwise it says why and stays silent, so the peer declares this side dead and takes its
/// buckets (a living but silent data path is the worst failure: nobody would serve those buckets).
final class LivenessThread: @unchecked Sendable {
    private let socket: SyncSocket
    private var channel: LivenessChannel
    /// A datagram socket kept for asking the front interface's state every heartbeat.
    private let linkProbe: Int32
    private let workers: [Worker]
    /// The XDP program whose lease each heartbeat renews (nil: fast path off).
    private let fastPath: XDPFastPath?
    private let peerNodeID: UInt8
    private let front: NetworkInterface
    private let interval: UInt64
    private let deadAfterMissed: Int
    private let realtimePriority: Int
    private let cpu: Int?
    private let stopping = Atomic<Bool>(false)
    private var thread = DaemonThread(name: "liveness")
    /// Written by the sync thread after each turn: what the heartbeats say.
    private let announcement: Mutex<HeartbeatAnnouncement>
    let report = Mutex(LivenessReport())
    private var local = LivenessReport()
    private var workerWatch: WorkerProgressWatch

    init(peer: Configuration.Peer, crossover: String, nodeID: UInt8, incarnation: UInt64, codec: SyncCodec, workers: [Worker], front: NetworkInterface,
         initial: HeartbeatAnnouncement, fastPath: XDPFastPath?) throws {
        self.fastPath = fastPath
        socket = try SyncSocket(local: peer.localAddress, peer: peer.address, port: peer.heartbeatPort, device: crossover)
        channel = LivenessChannel(nodeID: nodeID, peerNodeID: peer.nodeID, incarnation: incarnation, codec: codec)
        self.workers = workers
        peerNodeID = peer.nodeID
        self.front = front
        interval = UInt64(peer.heartbeatIntervalMilliseconds) * 1_000_000
        deadAfterMissed = peer.deadAfterMissed
        // Above the sync thread's: equal SCHED_FIFO threads do not preempt each other, and a
        // heartbeat must not wait for a turn of the record stream.
        realtimePriority = peer.syncRealtimePriority > 0 ? min(99, peer.syncRealtimePriority + 1) : 0
        cpu = peer.syncCPU
        announcement = Mutex(initial)
        linkProbe = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let now = director_monotonic_nanoseconds()
        workerWatch = WorkerProgressWatch(iterations: workers.map { $0.iterations.load(ordering: .acquiring) }, now: now,
                                          stallLimit: UInt64(peer.workerStallMilliseconds) * 1_000_000)
    }

    /// The sync thread's latest word on what the heartbeats should say.
    func announce(_ value: HeartbeatAnnouncement) {
        announcement.withLock { $0 = value }
    }

    func start() {
        thread.start { self.run() }
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        thread.join()
    }

    deinit { if linkProbe >= 0 { close(linkProbe) } }

    private func run() {
        DaemonThread.placeCurrent("liveness thread", cpu: cpu, realtimePriority: realtimePriority,
                                  riskIfRefused: "heartbeats may be late under load")
        var buffer = [UInt8](repeating: 0, count: 2048)
        var due = director_monotonic_nanoseconds()
        var pacing = ReceivePacing()
        while !stopping.load(ordering: .relaxed) {
            let now = director_monotonic_nanoseconds()
            if now < due { pacing.wait(for: socket, nanoseconds: due - now) }
            let woke = director_monotonic_nanoseconds()
            if woke >= due {
                local.longestLateness = max(local.longestLateness, woke - due)
                noteLateness(woke - due, now: woke)
                // Late, this thread could not see the workers move either: a process stopped
                // whole finds its workers stalled by its own stop otherwise, and withholds a
                // heartbeat for it.
                workerWatch.watcherWasPaused(for: woke - due)
                // Keep the beat: the next one is due an interval after this one was, unless the
                // thread fell a whole interval behind.
                due = woke - due >= interval ? woke + interval : due + interval
                beat(now: woke)
            }
            // At most half an interval of reading a turn: under a flood beyond what the thread
            // reads, it still leaves its CPU half the time (see `ReceivePacing`).
            let (read, drained) = receiveHeartbeats(&buffer, until: min(due, director_monotonic_nanoseconds() + interval / 2))
            pacing.noteRead(read, drained: drained)
        }
    }

    /// A heartbeat later than a third of the silence that makes a death is logged (at most once
    /// a second): the thread was kept from its CPU (host steal time, interrupt work), and a few
    /// more such would make the peer take over a living dispatcher.
    private func noteLateness(_ lateness: UInt64, now: UInt64) {
        guard lateness * 3 >= interval * UInt64(deadAfterMissed), now - lastLatenessLog >= 1_000_000_000 else { return }
        lastLatenessLog = now
        Log.warning("liveness: a heartbeat left \(lateness / 1_000_000) ms late (the peer declares a death after \(interval * UInt64(deadAfterMissed) / 1_000_000) ms of silence)")
    }

    private var lastLatenessLog: UInt64 = 0

    /// Reads what waits on the socket, until it is empty or `deadline` (CLOCK_MONOTONIC ns);
    /// returns how many datagrams it read and whether it emptied the socket.
    private func receiveHeartbeats(_ buffer: inout [UInt8], until deadline: UInt64) -> (read: Int, drained: Bool) {
        // Heartbeats are few (one per interval); a flood of anything else is read for as long as
        // the beat allows, and the rest waits in the socket's buffer for the next turn.
        var count = 0
        while true {
            if count % 32 == 31, director_monotonic_nanoseconds() >= deadline {
                publish()
                return (count, false)
            }
            count += 1
            switch socket.receive(into: &buffer) {
            case .datagram(let bytes):
                guard let heartbeat = channel.receive(bytes, now: director_monotonic_nanoseconds()) else {
                    warnAboutForeignVersion()
                    continue
                }
                if heartbeat.incarnation != local.latest?.incarnation {
                    Log.info("liveness: node \(peerNodeID) incarnation \(String(heartbeat.incarnation, radix: 16)) answered this side's challenge; "
                        + (local.latest == nil ? "its heartbeats are heard" : "it restarted"))
                }
                local.latest = heartbeat
            case .foreign:
                local.foreignDatagrams += 1
            case .none:
                publish()
                return (count - 1, true)
            }
        }
    }

    /// A peer of another release speaks another sync wire version: nothing it sends is read, so
    /// each side takes the other for absent. Said at once, then at most every minute while such
    /// datagrams keep coming.
    private func warnAboutForeignVersion() {
        guard let version = channel.takeForeignVersion() else { return }
        let now = director_monotonic_nanoseconds()
        guard lastVersionWarning == nil || now - lastVersionWarning! >= 60_000_000_000 else { return }
        lastVersionWarning = now
        Log.error("liveness: heartbeats on the crossover speak sync wire version \(version); this director speaks version \(SyncWireFormat.version) "
            + "and reads none of them: the peer runs another release, and each side serves as if the other were absent until both run the same one")
    }

    private var lastVersionWarning: UInt64?

    private func beat(now: UInt64) {
        let fault = checkFitness(now: now)
        if fault != local.fault {
            if let fault {
                Log.warning("liveness: heartbeats withheld: \(fault); the peer takes over this dispatcher's buckets")
            } else if let old = local.fault {
                Log.info("liveness: heartbeats resume (\(old): no longer)")
            }
            local.fault = fault
        }
        if fault == nil {
            let bytes = channel.heartbeat(announcement.withLock { $0 }, wallClock: director_realtime_nanoseconds())
            if socket.send(bytes) {
                // The XDP program's lease ends a heartbeat before the peer would declare this
                // side dead: a dispatcher the peer has written off never forwards in the kernel.
                // Only a heartbeat that left renews it.
                fastPath?.renewLease(until: now + interval * UInt64(max(deadAfterMissed - 1, 1)))
            } else {
                local.sendErrors += 1
            }
        } else {
            local.heartbeatsWithheld += 1
        }
        publish()
    }

    /// Why this dispatcher cannot serve, or nil.
    private func checkFitness(now: UInt64) -> String? {
        if !front.isRunning(probe: linkProbe) { return "front interface \(front.name) is down" }
        guard let stalled = workerWatch.stalledWorker(now: now, iterations: { workers[$0].iterations.load(ordering: .acquiring) }) else { return nil }
        return "worker \(stalled.index) has made no progress for \(stalled.milliseconds) ms"
    }

    private func publish() {
        local.heartbeatsSent = channel.heartbeatsSent
        local.heartbeatsReceived = channel.heartbeatsReceived
        local.incarnationsVerified = channel.incarnationsVerified
        local.rejected = channel.rejected
        let snapshot = local
        report.withLock { $0 = snapshot }
    }
}
