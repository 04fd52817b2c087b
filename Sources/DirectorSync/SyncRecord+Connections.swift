import DirectorCore
import DirectorWire

extension SyncRecord {
    /// Describes a worker's table change for the peer, naming the real server by address and
    /// port. The lifetime it carries is the entry's remaining one plus the state's
    /// `replicaMargin` (see the wire format: the replica must outlive the owner's entry). Nil when the entry's real server is no
    /// longer in the service table.
    public init?(_ change: ConnectionChange, services: ServiceTable, now: UInt64, timeouts: ConnectionTimeouts) {
        let kind: Change = switch change {
        case .created: .created
        case .stateChanged: .stateChanged
        case .refreshed: .refreshed
        case .removed: .removed
        }
        self.init(change.entry, as: kind, services: services, now: now, timeouts: timeouts)
    }

    /// Describes one entry of a table snapshot: a refresh, flagged when the entry is a replica.
    public init?(snapshotOf entry: ConnectionEntry, services: ServiceTable, now: UInt64, timeouts: ConnectionTimeouts) {
        self.init(entry, as: .refreshed, services: services, now: now, timeouts: timeouts)
        if entry.isReplica { flags |= SyncWireFormat.replicaRecordFlag }
    }

    private init?(_ entry: ConnectionEntry, as kind: Change, services: ServiceTable, now: UInt64, timeouts: ConnectionTimeouts) {
        guard let server = services.realServer(id: entry.realServerID) else { return nil }
        let key = entry.key
        let remaining = entry.expiresAt > now ? entry.expiresAt - now : 0
        self.init(change: kind, state: entry.state, transport: key.transport,
                  clientAddress: key.clientAddress, clientPort: key.clientPort,
                  virtualAddress: key.virtualAddress, virtualPort: key.virtualPort,
                  realServerAddress: server.address, realServerPort: server.port,
                  remainingLifetime: UInt32(clamping: remaining + (kind == .removed ? 0 : timeouts.replicaMargin(for: entry.state))))
    }

    public var key: FlowKey {
        FlowKey(clientAddress: clientAddress, clientPort: clientPort, virtualAddress: virtualAddress,
                virtualPort: virtualPort, transport: transport)
    }

    /// What the record asks of the receiving worker. Nil when it names a real server this
    /// director does not have (the two configs disagree): the caller counts it.
    public func replicaUpdate(services: ServiceTable) -> ReplicaUpdate? {
        if change == .removed { return .remove(key: key) }
        guard let id = services.realServerID(address: realServerAddress, port: realServerPort) else { return nil }
        return .upsert(key: key, state: state, realServerID: id, lifetime: UInt64(remainingLifetime),
                       claimsFlow: change == .created)
    }
}
