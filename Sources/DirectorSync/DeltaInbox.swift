/// The receiving half of the record stream: which data sequences arrived, which are missing,
/// when to NACK them, and when to give up on them and ask for a snapshot instead. Records are
/// delivered in data-sequence order, as the owner made the changes: a datagram that arrives
/// after a gap waits for the gap to fill (so a late retransmitted "created" can never undo a
/// later "removed").
///
/// A gap is NACKed as soon as it is seen, then again every `nackInterval` while it lasts; a
/// sequence still missing after `nacksBeforeResync` NACKs (the sender no longer has it, or the
/// link keeps losing it) or a gap wider than the sender's retention makes `needsResync` true.
///
/// A fresh inbox (or one whose sender restarted) is not anchored: it starts at the first data
/// sequence it learns of, announced or received. What the sender sent before that is history a
/// snapshot covers; asking for it again would have the sender retransmit its whole retention.
///
/// Gaps are kept as sorted ranges, so the work of a tick is proportional to the number of gaps,
/// not to the number of missing datagrams.
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

    /// Missing data sequences `first...last`, NACKed together.
    private struct Gap {
        var first: UInt64
        var last: UInt64
        var lastNack: UInt64?
        var nacks = 0
    }

    public let policy: Policy
    /// The highest data sequence received (0: none).
    public private(set) var highestReceived: UInt64 = 0
    /// The highest the sender says it has sent (heartbeats), which may be ahead of what arrived.
    public private(set) var senderReached: UInt64 = 0
    /// Sorted, disjoint, none empty.
    private var gaps: [Gap] = []
    public private(set) var missingCount = 0
    public private(set) var needsResync = false
    /// Every sequence up to here has been delivered (or given up for a snapshot).
    public private(set) var delivered: UInt64 = 0
    private var held: [UInt64: Batch] = [:]
    /// Whether the stream's starting point is known (see the type's comment).
    public private(set) var isAnchored = false

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

    /// Datagrams that arrived after a gap and wait for it.
    public var heldCount: Int { held.count }

    /// Takes the datagram numbered `sequence`; returns what can now be delivered in order (nil
    /// for a datagram received before: a retransmission that crossed the original).
    public mutating func receive(_ sequence: UInt64, _ batch: Batch) -> [Batch]? {
        // 0 is never sent, and the largest value would leave no room to count past it.
        guard sequence > 0, sequence < .max else { return nil }
        if !isAnchored { anchor(at: sequence - 1) }
        if sequence > highestReceived {
            noteMissing(from: highestReceived + 1, to: sequence - 1)
            highestReceived = sequence
            senderReached = max(senderReached, sequence)
        } else if !fill(sequence) {
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
        if gaps.isEmpty, !held.isEmpty {
            for sequence in held.keys.sorted() { out.append(held[sequence]!) }
            delivered = held.keys.max()!
            held.removeAll()
        } else if gaps.isEmpty {
            delivered = max(delivered, highestReceived)
        }
        return out
    }

    /// The sender says it has sent up to `highest`: anything beyond what arrived was lost.
    public mutating func senderHasSent(upTo highest: UInt64) {
        guard highest < .max else { return }
        if !isAnchored { anchor(at: highest) }
        guard highest > highestReceived else { return }
        noteMissing(from: highestReceived + 1, to: highest)
        highestReceived = highest
        senderReached = highest
    }

    /// Up to `limit` ranges to NACK now (monotonic `now`), oldest first, counting each NACK.
    public mutating func rangesToNack(now: UInt64, limit: Int = .max) -> [ClosedRange<UInt64>] {
        var due: [ClosedRange<UInt64>] = []
        for index in gaps.indices {
            if due.count >= limit { break }
            guard gaps[index].lastNack.map({ now &- $0 >= policy.nackInterval }) ?? true else { continue }
            if gaps[index].nacks >= policy.nacksBeforeResync {
                needsResync = true
                continue
            }
            gaps[index].lastNack = now
            gaps[index].nacks += 1
            due.append(gaps[index].first...gaps[index].last)
        }
        return due
    }

    /// Every sequence up to here has arrived or been given up on.
    public var contiguous: UInt64 { gaps.first.map { $0.first - 1 } ?? highestReceived }

    /// A snapshot is on its way: what is missing so far no longer matters. Returns what was
    /// held behind the gaps, in order.
    public mutating func forgiveGaps() -> [Batch] {
        gaps.removeAll()
        missingCount = 0
        needsResync = false
        return deliverable()
    }

    /// The sender restarted (or appeared): its data sequence starts over, from wherever the
    /// sender says it is.
    public mutating func restart() {
        gaps.removeAll()
        missingCount = 0
        held.removeAll()
        highestReceived = 0
        senderReached = 0
        delivered = 0
        needsResync = false
        isAnchored = false
    }

    /// Everything up to `sequence` counts as delivered: the stream starts after it.
    private mutating func anchor(at sequence: UInt64) {
        isAnchored = true
        highestReceived = sequence
        senderReached = sequence
        delivered = sequence
    }

    private mutating func noteMissing(from first: UInt64, to last: UInt64) {
        guard first <= last else { return }
        if last - first + 1 > policy.widestRepairableGap {
            // Beyond repair: a snapshot will cover it; what follows is delivered without waiting.
            needsResync = true
            return
        }
        // Always above every gap known: the new gap goes at the end.
        gaps.append(Gap(first: first, last: last))
        missingCount += Int(last - first + 1)
    }

    /// Removes `sequence` from the gap holding it; false if it was not missing.
    private mutating func fill(_ sequence: UInt64) -> Bool {
        // The last gap whose first sequence is at most `sequence`.
        var low = 0, high = gaps.count
        while low < high {
            let middle = (low + high) / 2
            if gaps[middle].first <= sequence { low = middle + 1 } else { high = middle }
        }
        let index = low - 1
        guard index >= 0, gaps[index].last >= sequence else { return false }
        missingCount -= 1
        let gap = gaps[index]
        switch (gap.first == sequence, gap.last == sequence) {
        case (true, true): gaps.remove(at: index)
        case (true, false): gaps[index].first = sequence + 1
        case (false, true): gaps[index].last = sequence - 1
        case (false, false):
            gaps[index].last = sequence - 1
            var upper = gap
            upper.first = sequence + 1
            gaps.insert(upper, at: index + 1)
        }
        return true
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
