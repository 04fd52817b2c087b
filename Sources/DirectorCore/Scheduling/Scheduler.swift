#if canImport(Glibc)
import Glibc
#endif
import DirectorWire

/// What every scheduler does: pick a pool member for a new flow. Schedulers are immutable and
/// shared by all workers; anything a scheduler changes per decision lives in the worker's own
/// `SchedulerCursor`, so workers never write shared memory.
public protocol RealServerScheduler: Sendable {
    /// The index in the pool of the real server for a new flow, or nil if no member can take it
    /// (every weight is zero).
    func select<Address>(_ flow: FlowKey<Address>, pool: [RealServer], cursor: inout SchedulerCursor, load: borrowing ConnectionLoad) -> Int?
}

/// Per-worker, per-service scheduler state (round-robin position and current weight).
public struct SchedulerCursor: Sendable {
    public var position: Int = -1
    public var currentWeight: Int = 0
    public init() {}
}

/// Scheduler names as they appear in the config and in `ipvsadm`.
public enum SchedulerKind: String, Sendable, CaseIterable {
    case roundRobin = "rr"
    case weightedRoundRobin = "wrr"
    case leastConnection = "lc"
    case weightedLeastConnection = "wlc"
    case sourceHash = "sh"
    case maglev = "mh"

    /// Whether two directors choose the same real server for the same flow without talking to
    /// each other; such services may pick up a mid-stream flow nobody recorded.
    @inlinable
    public var isConsistent: Bool { self == .sourceHash || self == .maglev }
}

/// The closed set of schedulers, dispatched by `switch`: no existential on the data path.
public enum Scheduler: Sendable {
    case roundRobin(RoundRobinScheduler)
    case weightedRoundRobin(WeightedRoundRobinScheduler)
    case leastConnection(LeastConnectionScheduler)
    case weightedLeastConnection(WeightedLeastConnectionScheduler)
    case sourceHash(SourceHashScheduler)
    case maglev(MaglevScheduler)

    public init(kind: SchedulerKind, pool: [RealServer], maglevTableSize: Int = MaglevScheduler.defaultTableSize) {
        switch kind {
        case .roundRobin: self = .roundRobin(RoundRobinScheduler())
        case .weightedRoundRobin: self = .weightedRoundRobin(WeightedRoundRobinScheduler(pool: pool))
        case .leastConnection: self = .leastConnection(LeastConnectionScheduler())
        case .weightedLeastConnection: self = .weightedLeastConnection(WeightedLeastConnectionScheduler())
        case .sourceHash: self = .sourceHash(SourceHashScheduler(pool: pool))
        case .maglev: self = .maglev(MaglevScheduler(pool: pool, tableSize: maglevTableSize))
        }
    }

    public var kind: SchedulerKind {
        switch self {
        case .roundRobin: .roundRobin
        case .weightedRoundRobin: .weightedRoundRobin
        case .leastConnection: .leastConnection
        case .weightedLeastConnection: .weightedLeastConnection
        case .sourceHash: .sourceHash
        case .maglev: .maglev
        }
    }

    @inlinable
    public func select<Address>(_ flow: FlowKey<Address>, pool: [RealServer], cursor: inout SchedulerCursor, load: borrowing ConnectionLoad) -> Int? {
        switch self {
        case .roundRobin(let s): s.select(flow, pool: pool, cursor: &cursor, load: load)
        case .weightedRoundRobin(let s): s.select(flow, pool: pool, cursor: &cursor, load: load)
        case .leastConnection(let s): s.select(flow, pool: pool, cursor: &cursor, load: load)
        case .weightedLeastConnection(let s): s.select(flow, pool: pool, cursor: &cursor, load: load)
        case .sourceHash(let s): s.select(flow, pool: pool, cursor: &cursor, load: load)
        case .maglev(let s): s.select(flow, pool: pool, cursor: &cursor, load: load)
        }
    }
}

/// Connections per real server as one worker counts them (its own shard only), split as IPVS
/// splits them: active (ESTABLISHED) and inactive (every other state).
public struct ConnectionLoad: ~Copyable {
    public static let maximumRealServers = Int(UInt16.max) + 1
    @usableFromInline let active: UnsafeMutablePointer<UInt32>
    @usableFromInline let inactive: UnsafeMutablePointer<UInt32>

    /// Zeroed by calloc: 256 KiB each, in pages the kernel hands over already zero, touched only
    /// for the real-server ids in use (a forwarder is cheap to make, in tests and fuzzers too).
    public init() {
        let count = ConnectionLoad.maximumRealServers, stride = MemoryLayout<UInt32>.stride
        active = calloc(count, stride)!.bindMemory(to: UInt32.self, capacity: count)
        inactive = calloc(count, stride)!.bindMemory(to: UInt32.self, capacity: count)
    }

    deinit {
        free(active)
        free(inactive)
    }

    @inlinable public func activeConnections(_ id: UInt16) -> UInt32 { active[Int(id)] }
    @inlinable public func inactiveConnections(_ id: UInt16) -> UInt32 { inactive[Int(id)] }

    /// IPVS's "overhead" of a real server: active connections cost 256 inactive ones.
    @inlinable public func overhead(_ id: UInt16) -> UInt64 {
        UInt64(active[Int(id)]) << 8 + UInt64(inactive[Int(id)])
    }

    @inlinable public func connectionOpened(_ id: UInt16, state: ConnectionState) {
        if state.isActive { active[Int(id)] &+= 1 } else { inactive[Int(id)] &+= 1 }
    }

    /// Never below zero: a count that wrapped around would make lc/wlc shun the server forever.
    @inlinable public func connectionClosed(_ id: UInt16, state: ConnectionState) {
        let counts = state.isActive ? active : inactive
        if counts[Int(id)] > 0 { counts[Int(id)] -= 1 }
    }

    @inlinable public func stateChanged(_ id: UInt16, from old: ConnectionState, to new: ConnectionState) {
        guard old.isActive != new.isActive else { return }
        connectionClosed(id, state: old)
        connectionOpened(id, state: new)
    }
}
