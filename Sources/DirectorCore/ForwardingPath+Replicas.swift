import DirectorWire

// Beside the pipeline: expiry, and the peer's replicas.
extension ForwardingPath {
    /// Incremental expiry of one table: examines at most `budget` slots.
    @inlinable mutating func expire<Address>(in table: inout ConnectionTable<Address>, now: UInt64, budget: Int) {
        table.expire(now: now, budget: budget) { entry in
            // A replica's end is the peer's to report; it never counted in this worker's load.
            if entry.isReplica {
                counters[.replicasExpired] &+= 1
                return
            }
            load.connectionClosed(entry.realServerID, state: entry.state)
            counters[.connectionsExpired] &+= 1
            report(.removed(entry, .expired))
        }
    }

    /// Applies a peer's change to this worker's shard. A replica never overrides this worker's
    /// own entry for the same flow (here, this worker is the authority) unless the peer claims
    /// the flow: it created it or took it over, so it sees the flow's packets and this worker no
    /// longer does. A replica never counts in the load the least-connection schedulers see until
    /// it turns live.
    @inlinable mutating func apply<Address>(_ update: ReplicaUpdate<Address>, in table: inout ConnectionTable<Address>, now: UInt64) {
        switch update {
        case let .upsert(key, state, realServerID, lifetime, claimsFlow, proven):
            let hash = key.tableHash
            if let slot = table.find(key, hash: hash) {
                if !table[slot].isReplica {
                    guard claimsFlow else { return }
                    load.connectionClosed(table[slot].realServerID, state: table[slot].state)
                    table[slot].isReplica = true
                    counters[.replicasYielded] &+= 1
                }
                table[slot].state = state
                table[slot].realServerID = realServerID
                table[slot].expiresAt = now &+ lifetime
                table[slot].replicaEpoch = replicaEpoch
                table[slot].isProven = proven
                counters[.replicasApplied] &+= 1
                return
            }
            var entry = ConnectionEntry(key: key, keyHash: hash, state: state, realServerID: realServerID,
                                        expiresAt: now &+ lifetime, isReplica: true)
            entry.replicaEpoch = replicaEpoch
            entry.isProven = proven
            // Own connections first: a replica may take the place of another unproven replica,
            // never of one of this worker's own flows.
            switch table.insert(entry, reclaimingOwnEntries: false) {
            case .inserted, .insertedByReclaiming:
                counters[.replicasApplied] &+= 1
            case .full:
                counters[drop: .replicaTableFull] &+= 1
            }
        case let .remove(key):
            if let slot = table.find(key, hash: key.tableHash), table[slot].isReplica {
                table.remove(at: slot)
                counters[.replicasRemoved] &+= 1
            }
        }
    }

    /// One bounded step of removing stale replicas from one table, while its purge is due.
    @inlinable mutating func purgeStaleReplicas<Address>(in table: inout ConnectionTable<Address>, walk purge: inout TableWalk?, budget: Int) {
        guard var walk = purge else { return }
        let epoch = replicaEpoch
        var removed: UInt64 = 0
        table.continueWalk(&walk, budget: budget) { entry in
            guard entry.isReplica, entry.replicaEpoch != epoch else { return .keep }
            removed += 1
            return .remove
        }
        counters[.replicasRemoved] &+= removed
        purge = walk.isFinished(in: table) ? nil : walk
    }
}
