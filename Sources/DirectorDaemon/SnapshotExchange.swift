import DirectorCore
import Synchronization

/// Hands new service snapshots from the control plane to the workers. A worker checks the
/// generation with one relaxed load per loop iteration and takes the lock only when it changed,
/// which happens on a reload or a newly resolved MAC: never per packet.
public final class SnapshotExchange: Sendable {
    private let current: Mutex<ServiceTable>
    private let published = Atomic<UInt64>(0)

    public init(_ initial: ServiceTable) {
        current = Mutex(initial)
        published.store(initial.generation, ordering: .releasing)
    }

    public func publish(_ table: ServiceTable) {
        current.withLock { $0 = table }
        published.store(table.generation, ordering: .releasing)
    }

    public var generation: UInt64 { published.load(ordering: .acquiring) }

    public var snapshot: ServiceTable { current.withLock { $0 } }
}
