import DirectorCore
import DirectorWire

extension SyncRecord {
    /// Describes a worker's table change for the peer, naming the real server by address and
    /// port. Nil when the entry's real server is no longer in the service table.
    public init?(_ change: ConnectionChange, services: ServiceTable, now: UInt64) {
        let entry: ConnectionEntry
        let kind: Change
        switch change {
        case .created(let created): entry = created; kind = .created
        case .stateChanged(let changed): entry = changed; kind = .stateChanged
        case .removed(let removed, _): entry = removed; kind = .removed
        }
        guard let server = services.realServer(id: entry.realServerID) else { return nil }
        let key = entry.key
        self.init(change: kind, state: entry.state, transport: key.transport,
                  clientAddress: key.clientAddress, clientPort: key.clientPort,
                  virtualAddress: key.virtualAddress, virtualPort: key.virtualPort,
                  realServerAddress: server.address, realServerPort: server.port,
                  remainingLifetime: UInt32(clamping: entry.expiresAt > now ? entry.expiresAt - now : 0))
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
        return .upsert(key: key, state: state, realServerID: id, lifetime: UInt64(remainingLifetime))
    }
}
