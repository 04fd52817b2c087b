import CDirectorShim
import DirectorCore
import DirectorWire
#if canImport(Glibc)
import Glibc
#endif

/// What a worker hands the sync thread through its outbound ring.
enum WorkerReport: Sendable {
    /// A change of one of the worker's own connections, at wall-clock time `changedAt` (ns).
    case change(ConnectionChange<IPv4Address>, changedAt: UInt64)
    case change6(ConnectionChange<IPv6Address>, changedAt: UInt64)
    /// One entry of the table walk answering the peer's snapshot request.
    case snapshotEntry(ConnectionEntry<IPv4Address>, requestID: UInt64)
    case snapshotEntry6(ConnectionEntry<IPv6Address>, requestID: UInt64)
    /// The worker's walk for `requestID` is complete.
    case snapshotEnd(requestID: UInt64)
}

/// What the sync thread hands a worker through its inbound ring, in the order it must happen.
enum WorkerInstruction: Sendable {
    /// A peer's record for this worker's shard; `changedAt` is when the peer made the change.
    case apply(ReplicaUpdate<IPv4Address>, changedAt: UInt64)
    case apply6(ReplicaUpdate<IPv6Address>, changedAt: UInt64)
    case beginResync
    case completeResync
    /// Walk the table and report every entry for the peer's snapshot `requestID`.
    case walkForSnapshot(requestID: UInt64)
    /// This worker now carries the peer's flows in these buckets (the peer died, or handed them
    /// over): send each established replica's client there an ACK probe (`AckProbe`), through
    /// `nextHop` (the peer's next hop towards the clients) until the worker has learned its own.
    case probeReplicas(BucketOwnership, nextHop: MACAddress)
}

/// The worker's change sink when the director has a peer: every change goes into the worker's
/// outbound ring, stamped with the time of the block it came from (one clock read per block,
/// not per change). A full ring is counted; the peer then repairs its replica by resync.
struct SyncFeed: ConnectionChangeSink {
    let ring: SingleProducerRing<WorkerReport>?
    var changedAt: UInt64 = 0
    var counts = ConnectionChangeCounter()
    private(set) var ringFull: UInt64 = 0

    init(ring: SingleProducerRing<WorkerReport>?) {
        self.ring = ring
    }

    mutating func record(_ change: ConnectionChange<IPv4Address>) {
        counts.record(change)
        guard let ring else { return }
        if !ring.push(.change(change, changedAt: changedAt)) { ringFull &+= 1 }
    }

    mutating func record(_ change: ConnectionChange<IPv6Address>) {
        counts.record(change)
        guard let ring else { return }
        if !ring.push(.change6(change, changedAt: changedAt)) { ringFull &+= 1 }
    }
}

/// An eventfd that wakes a worker out of its wait for frames: the sync thread rings it after
/// handing the worker instructions, so replicas are applied within microseconds even when no
/// traffic arrives.
final class WorkerWakeup: @unchecked Sendable {
    let descriptor: Int32

    init() throws(WorkerError) {
        descriptor = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard descriptor >= 0 else { throw WorkerError(worker: -1, message: "eventfd: \(String(cString: strerror(errno)))") }
    }

    deinit { close(descriptor) }

    func ring() {
        var one: UInt64 = 1
        _ = write(descriptor, &one, 8)
    }

    func clear() {
        var value: UInt64 = 0
        _ = read(descriptor, &value, 8)
    }
}
