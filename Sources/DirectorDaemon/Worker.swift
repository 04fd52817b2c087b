import CDirectorShim
import DirectorCore
import DirectorWire
import PacketIO
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What a worker needs to start: its place, its interfaces and its share of the work.
struct WorkerPlan: Sendable {
    let index: Int
    let placement: NUMAPlacement
    let front: NetworkInterface
    let back: NetworkInterface
    let tableCapacity: Int
    let settings: ForwarderSettings
    let fanoutGroup: UInt16
    let bucketCount: UInt32
    let ownership: BucketOwnership
}

/// One worker: a pinned thread running DPDK-style run-to-completion — wait for a block, process
/// every frame in it, flush the transmit ring once, then do the housekeeping that is due
/// (expiry, counters, a new snapshot). Everything it touches per packet is its own.
final class Worker: @unchecked Sendable {
    let plan: WorkerPlan
    private let snapshots: SnapshotExchange
    private let board: CounterBoard
    private let stopping: Atomic<Bool>
    /// nil until the worker has set itself up; then "" for success or the error text.
    private let startup = Mutex<String?>(nil)
    private var thread: pthread_t?
    /// The receive socket, once the worker has opened it; the director swaps its filter.
    private let receiveSocket = Atomic<Int32>(-1)

    /// How long a worker waits for a block before doing housekeeping anyway.
    static let pollTimeoutMilliseconds: Int32 = 10

    init(plan: WorkerPlan, snapshots: SnapshotExchange, board: CounterBoard) {
        self.plan = plan
        self.snapshots = snapshots
        self.board = board
        stopping = Atomic(false)
    }

    func requestStop() { stopping.store(true, ordering: .relaxed) }

    /// Replaces this worker's ownership filter (atomic in the kernel; the ring stays open).
    func attach(_ ownership: BucketOwnership) throws(SystemCallError) {
        let socket = receiveSocket.load(ordering: .acquiring)
        guard socket >= 0 else { return }
        try OwnershipFilter.attach(ownership, to: socket)
    }

    /// Starts the thread and waits until its rings and table exist (or failed).
    func start() throws(WorkerError) {
        let box = Unmanaged.passRetained(self)
        var handle = pthread_t()
        let result = pthread_create(&handle, nil, { argument in
            let worker = Unmanaged<Worker>.fromOpaque(argument!).takeRetainedValue()
            worker.run()
            return nil
        }, box.toOpaque())
        guard result == 0 else {
            box.release()
            throw WorkerError(worker: plan.index, message: "pthread_create failed (errno \(result))")
        }
        thread = handle
        while true {
            if let outcome = startup.withLock({ $0 }) {
                if outcome.isEmpty { return }
                throw WorkerError(worker: plan.index, message: outcome)
            }
            usleep(1_000)
        }
    }

    func join() {
        if let thread { pthread_join(thread, nil) }
        thread = nil
    }

    private func run() {
        do {
            try plan.placement.pinCurrentThread()
            // Rings after pinning: the kernel allocates them on the node of the calling thread.
            var receive = try PacketReceiveRing(
                interface: plan.front, fanoutGroup: plan.fanoutGroup,
                fanoutProgram: FanoutProgram.instructions(bucketCount: plan.bucketCount), ownership: plan.ownership)
            receiveSocket.store(receive.socket, ordering: .releasing)
            var transmit = try PacketTransmitRing(interface: plan.back)
            guard let table = ConnectionTable(capacity: plan.tableCapacity, memory: plan.placement.tableMemory) else {
                startup.withLock { $0 = "could not allocate a connection table of \(plan.tableCapacity) entries" }
                return
            }
            var forwarder = Forwarder(table: table, services: snapshots.snapshot, settings: plan.settings, changes: ConnectionChangeCounter())
            board.publish(worker: plan.index, gauge: .tableCapacity, UInt64(plan.tableCapacity))
            board.publish(worker: plan.index, gauge: .numaNode, UInt64(plan.placement.node ?? 0))
            startup.withLock { $0 = "" }
            loop(&receive, &transmit, &forwarder)
        } catch {
            startup.withLock { $0 = "\(error)" }
        }
    }

    private func loop(_ receive: inout PacketReceiveRing, _ transmit: inout PacketTransmitRing, _ forwarder: inout Forwarder<ConnectionChangeCounter>) {
        let frontSocket = receive.socket
        var generation = forwarder.services.generation
        var ringDrops: UInt64 = 0
        // Enough slots per call that an idle worker sweeps its whole shard in about ten seconds.
        let idleSweepBudget = max(1024, forwarder.table.slotCount / 1000)
        while !stopping.load(ordering: .relaxed) {
            let haveBlock = receive.waitForBlock(timeoutMilliseconds: Worker.pollTimeoutMilliseconds)
            let now = director_monotonic_nanoseconds() / 1_000_000
            if haveBlock {
                _ = receive.drainBlock { frame, checksumPending in
                    switch forwarder.process(&frame, now: now) {
                    case .transmitOnBack(let length, let checksum):
                        let queued = transmit.enqueue(frame.bytes.extracting(0..<length), pendingChecksum: checksumPending ? checksum : nil)
                        forwarder.countTransmission(length: length, queued: queued)
                    case .transmitOnFront(let length):
                        _ = PacketReceiveRing.send(frame.bytes.extracting(0..<length), on: frontSocket)
                    case .drop:
                        break
                    }
                }
                transmit.flush()
            }
            forwarder.expire(now: now, budget: haveBlock ? 256 : idleSweepBudget)
            board.publish(worker: plan.index, counters: forwarder.counters)
            board.publish(worker: plan.index, gauge: .tableEntries, UInt64(forwarder.table.count))
            board.publish(worker: plan.index, gauge: .changesCreated, UInt64(forwarder.changes.created))
            board.publish(worker: plan.index, gauge: .changesStateChanged, UInt64(forwarder.changes.stateChanges))
            board.publish(worker: plan.index, gauge: .changesRemoved, UInt64(forwarder.changes.removals))
            if !haveBlock {
                ringDrops &+= receive.takeDropCount()
                board.publish(worker: plan.index, gauge: .ringDrops, ringDrops)
            }
            if snapshots.generation != generation {
                let snapshot = snapshots.snapshot
                forwarder.install(snapshot)
                generation = snapshot.generation
            }
        }
    }
}

struct WorkerError: Error, CustomStringConvertible {
    let worker: Int
    let message: String
    var description: String { "worker \(worker): \(message)" }
}
