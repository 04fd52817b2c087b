import DirectorWire

// Beside the pipeline: expiry, and the peer's replicas.
extension ForwardingPath {
    /// Incremental expiry of one table: examines at most `budget` slots.
    @inlinable mutating func expire<Address>(in table: inout ConnectionTable<Address>, now: UInt64, budget: Int,
                                             lastSeen: (FastPathFlow) -> UInt64?) {
        table.expire(now: now, budget: budget, review: { entry in
            reviewOffloaded(&entry, now: now, lastSeen: lastSeen)
        }) { entry in
            withdrawFromFastPath(entry)
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

    /// An offloaded entry is due: alive if the fast path forwarded one of its frames within a
    /// timeout. Then it is asked again within half a timeout, and the peer hears the flow is
    /// still busy once half a timeout has passed since it last heard (as `refresh` does for
    /// frames on the ring).
    ///
    /// A flow the program no longer has (its map pushed it out) is the ring's again: its entry
    /// gets the rest of its timeout from its last frame on the ring (half a timeout before the
    /// review), and its next frame there offers it again.
    @inlinable mutating func reviewOffloaded<Address>(_ entry: inout ConnectionEntry<Address>, now: UInt64,
                                                     lastSeen: (FastPathFlow) -> UInt64?) -> Bool {
        guard entry.isOffloaded, !entry.isReplica, let flow = fastPathFlow(of: entry, serverMAC: .zero) else { return false }
        let timeout = settings.timeouts.timeout(for: entry.state, proven: entry.isProven)
        guard let seen = lastSeen(flow) else {
            entry.isOffloaded = false
            entry.expiresAt &+= max(timeout / 2, 1)
            counters[.fastPathReviewsMissing] &+= 1
            return true
        }
        guard seen &+ timeout > now else { return false }
        entry.expiresAt = min(seen &+ timeout, now &+ max(timeout / 2, 1))
        counters[.fastPathReviewsAlive] &+= 1
        let seconds = UInt16(truncatingIfNeeded: now / 1000)
        if UInt64(seconds &- entry.syncedAtSeconds) * 2000 >= timeout {
            entry.syncedAtSeconds = seconds
            report(.refreshed(entry))
        }
        return true
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
                    // The peer carries the flow now: this program must stop forwarding it.
                    withdrawFromFastPath(table[slot])
                    table[slot].isOffloaded = false
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
