import DirectorCore
import DirectorWire

extension SyncRecord {
    /// Describes a worker's table change for the peer, naming the real server by address and
    /// port. The lifetime it carries is the entry's remaining one plus the state's
    /// `replicaMargin` (see the wire format: the replica must outlive the owner's entry). Nil when
    /// the entry's real server is no longer in the service table.
    public init?<Address: FlowAddress>(_ change: ConnectionChange<Address>, services: ServiceTable, now: UInt64, timeouts: ConnectionTimeouts) {
        let kind: Change = switch change {
        case .created: .created
        case .stateChanged: .stateChanged
        case .refreshed: .refreshed
        case .removed: .removed
        }
        self.init(change.entry, as: kind, services: services, now: now, timeouts: timeouts)
    }

    /// Describes one entry of a table snapshot: a refresh, flagged when the entry is a replica.
    public init?<Address: FlowAddress>(snapshotOf entry: ConnectionEntry<Address>, services: ServiceTable, now: UInt64, timeouts: ConnectionTimeouts) {
        self.init(entry, as: .refreshed, services: services, now: now, timeouts: timeouts)
        if entry.isReplica { flags |= SyncWireFormat.replicaRecordFlag }
    }

    private init?<Address: FlowAddress>(_ entry: ConnectionEntry<Address>, as kind: Change, services: ServiceTable, now: UInt64,
                                        timeouts: ConnectionTimeouts) {
        // A service's servers share its family, so an entry's server is of the entry's family.
        guard let server = services.realServer(id: entry.realServerID), Address.of(server.address) != nil else { return nil }
        let key = entry.key
        let remaining = entry.expiresAt > now ? entry.expiresAt - now : 0
        let margin = kind == .removed ? 0 : timeouts.replicaMargin(for: entry.state, proven: entry.isProven)
        self.init(change: kind, state: entry.state, transport: key.transport,
                  flags: entry.isProven ? SyncWireFormat.provenRecordFlag : 0,
                  clientAddress: key.clientAddress.ipAddress, clientPort: key.clientPort,
                  virtualAddress: key.virtualAddress.ipAddress, virtualPort: key.virtualPort,
                  realServerAddress: server.address, realServerPort: server.port,
                  remainingLifetime: UInt32(clamping: remaining + margin))
    }

    /// The flow the record names, if its addresses are of `Address`'s family.
    public func key<Address: FlowAddress>(as family: Address.Type) -> FlowKey<Address>? {
        guard let client = Address.of(clientAddress), let virtual = Address.of(virtualAddress) else { return nil }
        return FlowKey(clientAddress: client, clientPort: clientPort, virtualAddress: virtual, virtualPort: virtualPort, transport: transport)
    }

    /// The flow's bucket (`ClientBucket`), which picks the worker whose shard holds it.
    public func bucket(bucketCount: UInt32) -> UInt32 {
        switch clientAddress {
        case .v4(let address): ClientBucket.bucket(address: address, port: clientPort, bucketCount: bucketCount)
        case .v6(let address): ClientBucket.bucket(address: address, port: clientPort, bucketCount: bucketCount)
        }
    }

    /// What the record asks of the receiving worker, checked against this director's own
    /// configuration: the service it names must exist here and the real server must be one of
    /// that service's (two configs that disagree, or a peer with the key and a bug, must not
    /// plant entries for servers or services this director does not run), and the lifetime is
    /// at most what this director's own timeouts give the state, plus the replica margin (the
    /// wire allows 49 days; a replica that never expires is a table slot lost).
    public func replicaDecision(services: ServiceTable, timeouts: ConnectionTimeouts) -> ReplicaDecision {
        switch clientAddress {
        case .v4:
            guard let (update, clamped) = replicaUpdate(IPv4Address.self, services: services, timeouts: timeouts) else { return failure(services) }
            return .apply(update, lifetimeClamped: clamped)
        case .v6:
            guard let (update, clamped) = replicaUpdate(IPv6Address.self, services: services, timeouts: timeouts) else { return failure(services) }
            return .apply6(update, lifetimeClamped: clamped)
        }
    }

    private func replicaUpdate<Address: FlowAddress>(_ family: Address.Type, services: ServiceTable,
                                                     timeouts: ConnectionTimeouts) -> (ReplicaUpdate<Address>, Bool)? {
        guard let key = key(as: family) else { return nil }
        if change == .removed { return (.remove(key: key), false) }
        guard let server = server(in: services) else { return nil }
        let longest = timeouts.timeout(for: state) + timeouts.replicaMargin(for: state)
        let lifetime = min(UInt64(remainingLifetime), longest)
        return (.upsert(key: key, state: state, realServerID: server.id, lifetime: lifetime, claimsFlow: change == .created,
                        proven: flags & SyncWireFormat.provenRecordFlag != 0),
                lifetime < UInt64(remainingLifetime))
    }

    /// The record's real server among its service's, or nil. A server a reload removed keeps
    /// its open connections here, and so their replicas: the peer may still carry some (or not
    /// have reloaded yet), and a takeover must find them.
    private func server(in services: ServiceTable) -> RealServer? {
        guard let service = serviceIndex(in: services) else { return nil }
        let address = realServerAddress, port = realServerPort
        let matches = { (server: RealServer) in server.address == address && server.port == port }
        return services.services[service].pool.first(where: matches) ?? services.retired.first(where: matches)
    }

    private func serviceIndex(in services: ServiceTable) -> Int? {
        switch virtualAddress {
        case .v4(let address): services.find(address: address, port: virtualPort, transport: transport)
        case .v6(let address): services.find(address: address, port: virtualPort, transport: transport)
        }
    }

    /// Why no update came of the record: its service, or its real server, is not this director's.
    private func failure(_ services: ServiceTable) -> ReplicaDecision {
        serviceIndex(in: services) == nil ? .unknownService : .unknownRealServer
    }
}

/// A peer's record judged by this director (`SyncRecord.replicaDecision`).
public enum ReplicaDecision: Equatable, Sendable {
    /// Hand it to the flow's worker. `lifetimeClamped`: the peer asked for longer than this
    /// director's own timeouts allow (counted; the pair should share its timeouts).
    case apply(ReplicaUpdate<IPv4Address>, lifetimeClamped: Bool)
    /// The same for an IPv6 flow.
    case apply6(ReplicaUpdate<IPv6Address>, lifetimeClamped: Bool)
    /// No service here with the record's VIP, port and protocol.
    case unknownService
    /// The service exists, but the real server is not one of its own.
    case unknownRealServer
}
