import CPrefetch
import DirectorWire
#if canImport(Glibc)
import Glibc
#endif

/// One worker's shard of the connection table of one address family: open addressing with
/// linear probing over a preallocated array of entries (32 bytes for IPv4, 56 for IPv6), one
/// writer (its worker), no locks, no allocation after `init`.
///
/// - Capacity is fixed: there are `capacity × 3/2` slots, so the load factor never passes 2/3
///   and an unsuccessful probe stays short (Knuth: ½(1 + 1/(1−α)²) ≈ 5 slots at α = 2/3).
///   That is 48 bytes of table per IPv4 connection at full capacity (84 per IPv6 one).
/// - Deletion shifts later entries of the probe run back (Knuth's Algorithm R), so there are no
///   tombstones and lookups never slow down with churn.
/// - Callers in other modules (the worker's walks, listings) get copies specialised for each
///   family (`@_specialize(exported:)`), not the generic code.
/// - Expiry is incremental: `expire(now:budget:)` examines a bounded number of slots from a
///   cursor that walks the table round and round; there is never a stop-the-world sweep.
public struct ConnectionTable<Address: FlowAddress>: ~Copyable {
    public let capacity: Int
    public let slotCount: Int
    /// Entries in the shard.
    public var count: Int { occupiedCount }
    @usableFromInline var occupiedCount = 0
    @usableFromInline let slots: UnsafeMutablePointer<ConnectionEntry<Address>>
    private let memory: TableMemory
    private var sweepCursor = 0

    /// How far from a new flow's home slot `insert` looks for an unproven entry to reclaim when
    /// the shard is full (a bounded search, like the approximate LRU of Katran's per-CPU tables).
    public static var reclaimWindow: Int { 64 }

    public static var bytesPerSlot: Int { MemoryLayout<ConnectionEntry<Address>>.stride }

    public init?(capacity: Int, memory: TableMemory = .heap) {
        precondition(capacity > 0)
        self.capacity = capacity
        slotCount = capacity + capacity / 2 + 1
        let byteCount = slotCount * ConnectionTable.bytesPerSlot
        guard let raw = memory.allocate(byteCount) else { return nil }
        // A large shard is read at random: ask for transparent huge pages so that a lookup costs
        // one cache miss, not a cache miss plus a page walk (advice only; harmless if refused).
        if byteCount >= TableMemory.hugePageThreshold { _ = madvise(raw, byteCount, MADV_HUGEPAGE) }
        if !memory.comesZeroed { raw.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount) }
        slots = raw.bindMemory(to: ConnectionEntry<Address>.self, capacity: slotCount)
        self.memory = memory
    }

    deinit {
        memory.release(UnsafeMutableRawPointer(slots), slotCount * ConnectionTable.bytesPerSlot)
    }

    /// Bytes of slot memory this shard holds.
    public var memoryFootprint: Int { slotCount * ConnectionTable.bytesPerSlot }

    /// Maps a 32-bit hash onto `0..<slotCount` without a division (Lemire's fast range).
    @inlinable @inline(__always)
    func homeSlot(_ hash: UInt32) -> Int { Int((UInt64(hash) &* UInt64(slotCount)) >> 32) }

    @inlinable @inline(__always)
    func nextSlot(_ slot: Int) -> Int { slot &+ 1 == slotCount ? 0 : slot &+ 1 }

    /// Starts loading the home slot of `hash` into the cache, for a lookup that comes soon.
    @inlinable @inline(__always)
    public func prefetch(hash: UInt32) { director_prefetch(slots + homeSlot(hash)) }

    /// The slot holding `key`, if any.
    @inlinable
    public func find(_ key: FlowKey<Address>, hash: UInt32) -> Int? {
        var slot = homeSlot(hash)
        while true {
            let entry = slots[slot]
            if !entry.isOccupied { return nil }
            if entry.keyHash == hash && entry.matches(key) { return slot }
            slot = nextSlot(slot)
        }
    }

    @inlinable
    public subscript(slot: Int) -> ConnectionEntry<Address> {
        get { slots[slot] }
        nonmutating _modify { yield &slots[slot] }
    }

    public enum InsertOutcome: Equatable {
        case inserted(slot: Int)
        /// The shard was full; an unproven entry (half-open, or never shown real: see
        /// `ConnectionEntry.isProven`) was given up for the new flow.
        case insertedByReclaiming(slot: Int, reclaimed: ConnectionEntry<Address>)
        /// The shard was full and nothing could be reclaimed: the flow is not recorded.
        case full
    }

    /// Adds an entry whose key is not in the table (the caller has just looked). A full shard
    /// gives up the unproven entry nearest its expiry near the new one's home slot;
    /// `reclaimingOwnEntries: false` limits that to replicas, so the peer's records never push
    /// out this worker's own flows.
    @_specialize(exported: true, where Address == IPv4Address)
    @_specialize(exported: true, where Address == IPv6Address)
    @inlinable
    public mutating func insert(_ entry: ConnectionEntry<Address>, reclaimingOwnEntries: Bool = true) -> InsertOutcome {
        if occupiedCount < capacity {
            return .inserted(slot: place(entry))
        }
        guard let victim = unprovenSlotNearestExpiry(near: homeSlot(entry.keyHash), includingOwn: reclaimingOwnEntries) else { return .full }
        let reclaimed = slots[victim]
        remove(at: victim)
        return .insertedByReclaiming(slot: place(entry), reclaimed: reclaimed)
    }

    @inlinable
    mutating func place(_ entry: ConnectionEntry<Address>) -> Int {
        var slot = homeSlot(entry.keyHash)
        while slots[slot].isOccupied { slot = nextSlot(slot) }
        slots[slot] = entry
        occupiedCount += 1
        return slot
    }

    /// Forged handshakes make entries that are never proven; real clients prove theirs within a
    /// round trip, so under a flood the new flows take the forged ones' places, never the other way.
    @inlinable
    func unprovenSlotNearestExpiry(near home: Int, includingOwn: Bool) -> Int? {
        var best: Int?
        var bestExpiry = UInt64.max
        var slot = home
        for _ in 0..<min(ConnectionTable.reclaimWindow, slotCount) {
            let entry = slots[slot]
            if entry.isOccupied && !entry.isProven && (includingOwn || entry.isReplica) && entry.expiresAt < bestExpiry {
                best = slot
                bestExpiry = entry.expiresAt
            }
            slot = nextSlot(slot)
        }
        return best
    }

    /// Empties `slot` and moves later members of its probe run back so every entry stays
    /// reachable from its home slot.
    @_specialize(exported: true, where Address == IPv4Address)
    @_specialize(exported: true, where Address == IPv6Address)
    @inlinable
    public mutating func remove(at slot: Int) {
        var hole = slot
        var probe = slot
        while true {
            probe = nextSlot(probe)
            let candidate = slots[probe]
            if !candidate.isOccupied { break }
            let home = homeSlot(candidate.keyHash)
            // The candidate may fill the hole only if its home is not cyclically in (hole, probe].
            let homeIsBetween = hole <= probe ? (hole < home && home <= probe) : (hole < home || home <= probe)
            if !homeIsBetween {
                slots[hole] = candidate
                hole = probe
            }
        }
        slots[hole] = ConnectionEntry.empty
        occupiedCount -= 1
    }

    /// Examines up to `budget` slots from where the last call stopped; removes every entry that
    /// expired at or before `now`, handing each to `expired` first. Returns how many it removed.
    @_specialize(exported: true, where Address == IPv4Address)
    @_specialize(exported: true, where Address == IPv6Address)
    @discardableResult
    public mutating func expire(now: UInt64, budget: Int, _ expired: (ConnectionEntry<Address>) -> Void) -> Int {
        expire(now: now, budget: budget, review: { _ in false }, expired)
    }

    /// The same, asking `review` first about each entry due: it may push the entry's expiry out
    /// (a flow whose frames went by another path than the table's owner, the XDP fast path) and
    /// return true to keep it.
    @_specialize(exported: true, where Address == IPv4Address)
    @_specialize(exported: true, where Address == IPv6Address)
    @discardableResult
    public mutating func expire(now: UInt64, budget: Int, review: (inout ConnectionEntry<Address>) -> Bool,
                                _ expired: (ConnectionEntry<Address>) -> Void) -> Int {
        var removed = 0
        var examined = 0
        while examined < budget && count > 0 {
            examined += 1
            let entry = slots[sweepCursor]
            if entry.isOccupied && entry.expiresAt <= now {
                if review(&slots[sweepCursor]) {
                    sweepCursor = nextSlot(sweepCursor)
                    continue
                }
                expired(entry)
                remove(at: sweepCursor)
                removed += 1
                // The shift may have moved a later entry into this slot: look at it again.
                continue
            }
            sweepCursor = nextSlot(sweepCursor)
        }
        return removed
    }

    /// Continues `walk` over up to `budget` slots, asking `body` what to do with each entry: a
    /// whole-table pass in bounded steps (a snapshot for the peer, purging stale replicas), never
    /// a stop-the-world loop.
    @_specialize(exported: true, where Address == IPv4Address)
    @_specialize(exported: true, where Address == IPv6Address)
    public mutating func continueWalk(_ walk: inout TableWalk, budget: Int, _ body: (ConnectionEntry<Address>) -> TableWalk.Step) {
        var examined = 0
        while examined < budget && walk.nextSlot < slotCount {
            examined += 1
            let entry = slots[walk.nextSlot]
            guard entry.isOccupied else {
                walk.nextSlot += 1
                continue
            }
            switch body(entry) {
            case .keep:
                walk.nextSlot += 1
            case .remove:
                // The shift may move a later entry into this slot: look at it again.
                remove(at: walk.nextSlot)
            case .pause:
                return
            }
        }
    }

    /// Calls `body` with every live entry (for status listings; not for the data path).
    @_specialize(exported: true, where Address == IPv4Address)
    @_specialize(exported: true, where Address == IPv6Address)
    public func forEach(_ body: (ConnectionEntry<Address>) -> Void) {
        for slot in 0..<slotCount where slots[slot].isOccupied { body(slots[slot]) }
    }
}

extension ConnectionEntry {
    /// An unoccupied slot (all zero, as a new table's).
    @inlinable
    static var empty: ConnectionEntry<Address> {
        var entry = ConnectionEntry(key: FlowKey(clientAddress: .zero, clientPort: 0, virtualAddress: .zero, virtualPort: 0, transport: .tcp),
                                    keyHash: 0, state: .none, realServerID: 0, expiresAt: 0)
        entry.flags = 0
        return entry
    }
}

/// A pass over every slot of a table, made in steps (`ConnectionTable.continueWalk`).
public struct TableWalk: Sendable {
    public enum Step {
        case keep
        case remove
        /// Stop here; the next step starts with this entry again.
        case pause
    }

    public fileprivate(set) var nextSlot = 0

    public init() {}

    public func isFinished<Address>(in table: borrowing ConnectionTable<Address>) -> Bool { nextSlot >= table.slotCount }
}
