import DirectorWire

/// A change to a connection table: what a worker reports so that the peer dispatcher can keep a
/// replica (connection sync streams these as deltas).
public enum ConnectionChange<Address: FlowAddress>: Sendable, Equatable {
    case created(ConnectionEntry<Address>)
    case stateChanged(ConnectionEntry<Address>)
    /// Unchanged but still in use: the peer pushes its replica's expiry out (long-lived flows).
    case refreshed(ConnectionEntry<Address>)
    case removed(ConnectionEntry<Address>, RemovalReason)

    public var entry: ConnectionEntry<Address> {
        switch self {
        case .created(let entry), .stateChanged(let entry), .refreshed(let entry), .removed(let entry, _): entry
        }
    }

    public typealias RemovalReason = ConnectionRemovalReason
}

public enum ConnectionRemovalReason: UInt8, Sendable {
    case expired
    case reclaimed
    /// Its real server failed its health check and the service resets such connections.
    case serverFailed
}

/// What the peer dispatcher reported about one of its connections, for a worker to apply to
/// its shard as a replica (`Forwarder.apply`).
public enum ReplicaUpdate<Address: FlowAddress>: Sendable, Equatable {
    /// Created, changed state or still alive: keep (or refresh) a replica expiring `lifetime` ms
    /// from now. `claimsFlow` is set when the peer has just started carrying the flow (it created
    /// it or took it over): an entry of this worker's own for it is stale and becomes a replica.
    /// `proven`: the peer's client proved the connection real (`ConnectionEntry.isProven`).
    case upsert(key: FlowKey<Address>, state: ConnectionState, realServerID: UInt16, lifetime: UInt64, claimsFlow: Bool, proven: Bool = false)
    case remove(key: FlowKey<Address>)
}

/// Receives a worker's table changes, in order, on the worker's thread. Generic, not an
/// existential: the forwarder is specialised for its sink.
public protocol ConnectionChangeSink: ~Copyable {
    mutating func record(_ change: ConnectionChange<IPv4Address>)
    mutating func record(_ change: ConnectionChange<IPv6Address>)
}

/// Counts changes by kind. The daemon publishes the counts (`connection_changes_*` in
/// `director stats`): the rate of deltas a peer dispatcher's replica needs.
public struct ConnectionChangeCounter: ConnectionChangeSink {
    public private(set) var created = 0
    public private(set) var stateChanges = 0
    public private(set) var removals = 0
    public private(set) var refreshes = 0

    public init() {}

    public mutating func record(_ change: ConnectionChange<IPv4Address>) { count(change) }
    public mutating func record(_ change: ConnectionChange<IPv6Address>) { count(change) }

    private mutating func count<Address>(_ change: ConnectionChange<Address>) {
        switch change {
        case .created: created += 1
        case .stateChanged: stateChanges += 1
        case .refreshed: refreshes += 1
        case .removed: removals += 1
        }
    }
}
