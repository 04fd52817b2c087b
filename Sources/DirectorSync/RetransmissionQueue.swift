/// The data sequences a peer has NACKed and not yet been sent again: served a few per tick, so
/// one NACK, however wide, costs a bounded amount of work and bandwidth per turn of the sync
/// thread, and NACKs repeated for the same gap do not multiply the answer.
///
/// A bitmap over the sender's retention, indexed like the outbox (data sequence modulo
/// retention): marking a range costs a word per 64 sequences, and a sequence asked for many
/// times is queued once.
public struct RetransmissionQueue: Sendable {
    public let retention: Int
    private var words: [UInt64]
    public private(set) var count = 0

    public init(retention: Int) {
        self.retention = max(1, retention)
        words = Array(repeating: 0, count: (self.retention + 63) / 64)
    }

    public var isEmpty: Bool { count == 0 }

    /// Queues `range`, clamped to what the outbox still keeps when its highest data sequence is
    /// `highest`. Returns how many of the range's sequences cannot be served (not kept, or never
    /// sent), at most `retention` (a range of the whole number space counts as that).
    @discardableResult
    public mutating func add(_ range: ClosedRange<UInt64>, highest: UInt64) -> Int {
        let oldestKept = highest >= UInt64(retention) ? highest - UInt64(retention) + 1 : 1
        let first = max(range.lowerBound, oldestKept), last = min(range.upperBound, highest)
        let asked = range.upperBound - range.lowerBound
        guard first <= last else { return asked >= UInt64(retention) ? retention : Int(asked) + 1 }
        var sequence = first
        while sequence <= last {
            let slot = Int(sequence % UInt64(retention))
            // A whole word at once where the range covers it.
            if slot % 64 == 0, slot + 63 < retention, last - sequence >= 63 {
                count += 64 - words[slot / 64].nonzeroBitCount
                words[slot / 64] = .max
                sequence += 64
            } else {
                mark(sequence)
                sequence += 1
            }
        }
        let served = last - first
        return asked - served >= UInt64(retention) ? retention : Int(asked - served)
    }

    /// Takes up to `limit` queued sequences, oldest first, given the outbox's highest data
    /// sequence now (slots of sequences that have since left the retention are skipped).
    public mutating func take(limit: Int, highest: UInt64) -> [UInt64] {
        guard count > 0, limit > 0, highest > 0 else { return [] }
        var out: [UInt64] = []
        let oldestKept = highest >= UInt64(retention) ? highest - UInt64(retention) + 1 : 1
        var sequence = oldestKept
        // One pass over the window, a word at a time where it is empty.
        while sequence <= highest, out.count < limit, count > 0 {
            let slot = Int(sequence % UInt64(retention))
            if slot % 64 == 0, words[slot / 64] == 0, sequence + 63 <= highest, slot + 63 < retention {
                sequence += 64
                continue
            }
            if clear(slot) { out.append(sequence) }
            sequence += 1
        }
        return out
    }

    public mutating func removeAll() {
        for index in words.indices { words[index] = 0 }
        count = 0
    }

    private mutating func mark(_ sequence: UInt64) {
        let slot = Int(sequence % UInt64(retention))
        let bit: UInt64 = 1 << UInt64(slot % 64)
        if words[slot / 64] & bit == 0 {
            words[slot / 64] |= bit
            count += 1
        }
    }

    private mutating func clear(_ slot: Int) -> Bool {
        let bit: UInt64 = 1 << UInt64(slot % 64)
        guard words[slot / 64] & bit != 0 else { return false }
        words[slot / 64] &= ~bit
        count -= 1
        return true
    }
}
