import DirectorCore
import DirectorWire

extension SyncRecord {
    /// Describes a worker's table change for the peer, naming the real server by address and
    /// port. The lifetime it carries is the entry's remaining one plus the state's
    /// `replicaMargin` (see the wire format: the replica must outlive the owner's entry). Nil when the entry's real server is no
    /// longer in the service table.
    public init?(_ change: ConnectionChange<IPv4Address>, services: ServiceTable, now: UInt64, timeouts: ConnectionTimeouts) {
        let kind: Change = switch change {
        case .created: .created
        case .stateChanged: .stateChanged
        case .refreshed: .refreshed
        case .removed: .removed
        }
        self.init(change.entry, as: kind, services: services, now: now, timeouts: timeouts)
    }

    /// Describes one entry of a table snapshot: a refresh, flagged when the entry is a replica.
    public init?(snapshotOf entry: ConnectionEntry<IPv4Address>, services: ServiceTable, now: UInt64, timeouts: ConnectionTimeouts) {
        self.init(entry, as: .refreshed, services: services, now: now, timeouts: timeouts)
        if entry.isReplica { flags |= SyncWireFormat.replicaRecordFlag }
    }

    private init?(_ entry: ConnectionEntry<IPv4Address>, as kind: Change, services: ServiceTable, now: UInt64, timeouts: ConnectionTimeouts) {
        guard let server = services.realServer(id: entry.realServerID), case .v4(let serverAddress) = server.address else { return nil }
        let key = entry.key
        let remaining = entry.expiresAt > now ? entry.expiresAt - now : 0
        let margin = kind == .removed ? 0 : timeouts.replicaMargin(for: entry.state, proven: entry.isProven)
        self.init(change: kind, state: entry.state, transport: key.transport,
                  flags: entry.isProven ? SyncWireFormat.provenRecordFlag : 0,
                  clientAddress: key.clientAddress, clientPort: key.clientPort,
                  virtualAddress: key.virtualAddress, virtualPort: key.virtualPort,
                  realServerAddress: serverAddress, realServerPort: server.port,
                  remainingLifetime: UInt32(clamping: remaining + margin))
    }

    public var key: FlowKey<IPv4Address> {
        FlowKey(clientAddress: clientAddress, clientPort: clientPort, virtualAddress: virtualAddress,
                virtualPort: virtualPort, transport: transport)
    }

    /// What the record asks of the receiving worker, checked against this director's own
    /// configuration: the service it names must exist here and the real server must be one of
    /// that service's (two configs that disagree, or a peer with the key and a bug, must not
    /// plant entries for servers or services this director does not run), and the lifetime is
    /// at most what this director's own timeouts give the state, plus the replica margin (the
    /// wire allows 49 days; a replica that never expires is a table slot lost).
    public func replicaDecision(services: ServiceTable, timeouts: ConnectionTimeouts) -> ReplicaDecision {
        if change == .removed { return .apply(.remove(key: key), lifetimeClamped: false) }
        guard let service = services.find(address: virtualAddress, port: virtualPort, transport: transport) else { return .unknownService }
        // A server a reload removed keeps its open connections here, and so their replicas: the
        // peer may still carry some (or not have reloaded yet), and a takeover must find them.
        let address = IPAddress.v4(realServerAddress), port = realServerPort
        let matches = { (server: RealServer) in server.address == address && server.port == port }
        guard let server = services.services[service].pool.first(where: matches) ?? services.retired.first(where: matches) else {
            return .unknownRealServer
        }
        let longest = timeouts.timeout(for: state) + timeouts.replicaMargin(for: state)
        let lifetime = min(UInt64(remainingLifetime), longest)
        return .apply(.upsert(key: key, state: state, realServerID: server.id, lifetime: lifetime, claimsFlow: change == .created,
                              proven: flags & SyncWireFormat.provenRecordFlag != 0),
                      lifetimeClamped: lifetime < UInt64(remainingLifetime))
    }
}

/// A peer's record judged by this director (`SyncRecord.replicaDecision`).
public enum ReplicaDecision: Equatable, Sendable {
    /// Hand it to the flow's worker. `lifetimeClamped`: the peer asked for longer than this
    /// director's own timeouts allow (counted; the pair should share its timeouts).
    case apply(ReplicaUpdate<IPv4Address>, lifetimeClamped: Bool)
    /// No service here with the record's VIP, port and protocol.
    case unknownService
    /// The service exists, but the real server is not one of its own.
    case unknownRealServer
}
