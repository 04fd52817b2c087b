/// The receiving half of the record stream: which data sequences arrived, which are missing,
/// when to NACK them, and when to give up on them and ask for a snapshot instead. Records are
/// delivered in data-sequence order, as the owner made the changes: a datagram that arrives
/// after a gap waits for the gap to fill (so a late retransmitted "created" can never undo a
/// later "removed").
///
/// A gap is NACKed as soon as it is seen, then again every `nackInterval` while it lasts; a
/// sequence still missing after `nacksBeforeResync` NACKs (the sender no longer has it, or the
/// link keeps losing it) or a gap wider than the sender's retention makes `needsResync` true.
public struct DeltaInbox: Sendable {
    public struct Policy: Sendable {
        public var nackInterval: UInt64
        public var nacksBeforeResync: Int
        /// The sender's retention: a wider gap cannot be retransmitted.
        public var widestRepairableGap: UInt64

        public init(nackInterval: UInt64, nacksBeforeResync: Int, widestRepairableGap: UInt64) {
            self.nackInterval = nackInterval
            self.nacksBeforeResync = nacksBeforeResync
            self.widestRepairableGap = widestRepairableGap
        }
    }

    private struct Gap {
        var lastNack: UInt64?
        var nacks = 0
    }

    public let policy: Policy
    /// The highest data sequence received (0: none).
    public private(set) var highestReceived: UInt64 = 0
    /// The highest the sender says it has sent (heartbeats), which may be ahead of what arrived.
    public private(set) var senderReached: UInt64 = 0
    private var missing: [UInt64: Gap] = [:]
    public private(set) var needsResync = false
    /// Every sequence up to here has been delivered (or given up for a snapshot).
    public private(set) var delivered: UInt64 = 0
    private var held: [UInt64: Batch] = [:]

    /// The records of one datagram and the wall-clock time of its oldest change.
    public struct Batch: Equatable, Sendable {
        public var records: [SyncRecord]
        public var changedAt: UInt64

        public init(records: [SyncRecord], changedAt: UInt64) {
            self.records = records
            self.changedAt = changedAt
        }
    }

    public init(policy: Policy) {
        self.policy = policy
    }

    public var missingCount: Int { missing.count }

    /// Datagrams that arrived after a gap and wait for it.
    public var heldCount: Int { held.count }

    /// Takes the datagram numbered `sequence`; returns what can now be delivered in order (nil
    /// for a datagram received before: a retransmission that crossed the original).
    public mutating func receive(_ sequence: UInt64, _ batch: Batch) -> [Batch]? {
        if sequence > highestReceived {
            noteMissing(from: highestReceived + 1, to: sequence - 1)
            highestReceived = sequence
            senderReached = max(senderReached, sequence)
        } else if missing.removeValue(forKey: sequence) == nil {
            return nil
        }
        guard sequence > delivered else { return [] }
        held[sequence] = batch
        return deliverable()
    }

    private mutating func deliverable() -> [Batch] {
        var out: [Batch] = []
        while let next = held.removeValue(forKey: delivered + 1) {
            out.append(next)
            delivered += 1
        }
        // Past a sequence given up on (forgiven), the next one held is next in order.
        if missing.isEmpty, !held.isEmpty {
            for sequence in held.keys.sorted() { out.append(held[sequence]!) }
            delivered = held.keys.max()!
            held.removeAll()
        } else if missing.isEmpty {
            delivered = max(delivered, highestReceived)
        }
        return out
    }

    /// The sender's heartbeat says it has sent up to `highest`: anything beyond what arrived was lost.
    public mutating func senderHasSent(upTo highest: UInt64) {
        guard highest > highestReceived else { return }
        noteMissing(from: highestReceived + 1, to: highest)
        highestReceived = highest
        senderReached = highest
    }

    /// The ranges to NACK now (monotonic `now`), counting each NACK.
    public mutating func rangesToNack(now: UInt64) -> [ClosedRange<UInt64>] {
        var due: [UInt64] = []
        for (sequence, gap) in missing where gap.lastNack.map({ now &- $0 >= policy.nackInterval }) ?? true {
            if gap.nacks >= policy.nacksBeforeResync {
                needsResync = true
                continue
            }
            missing[sequence] = Gap(lastNack: now, nacks: gap.nacks + 1)
            due.append(sequence)
        }
        return DeltaInbox.ranges(due.sorted())
    }

    /// Every sequence up to here has arrived or been given up on.
    public var contiguous: UInt64 { missing.keys.min().map { $0 - 1 } ?? highestReceived }

    /// A snapshot is on its way: what is missing so far no longer matters. Returns what was
    /// held behind the gaps, in order.
    public mutating func forgiveGaps() -> [Batch] {
        missing.removeAll()
        needsResync = false
        return deliverable()
    }

    /// The sender restarted: its data sequence starts over.
    public mutating func restart() {
        missing.removeAll()
        held.removeAll()
        highestReceived = 0
        senderReached = 0
        delivered = 0
        needsResync = false
    }

    private mutating func noteMissing(from first: UInt64, to last: UInt64) {
        guard first <= last else { return }
        if last - first + 1 > policy.widestRepairableGap {
            // Beyond repair: a snapshot will cover it; what follows is delivered without waiting.
            needsResync = true
            return
        }
        for sequence in first...last { missing[sequence] = Gap() }
    }

    /// Sorted sequences as closed ranges: [1, 2, 3, 7] → [1...3, 7...7].
    static func ranges(_ sorted: [UInt64]) -> [ClosedRange<UInt64>] {
        var out: [ClosedRange<UInt64>] = []
        for value in sorted {
            if let last = out.last, last.upperBound + 1 == value {
                out[out.count - 1] = last.lowerBound...value
            } else {
                out.append(value...value)
            }
        }
        return out
    }
}
