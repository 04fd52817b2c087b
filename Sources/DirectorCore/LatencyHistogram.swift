/// Buckets for latencies in microseconds (the sync link's replica lag, a benchmark sink's one-way
/// delay): exact below 4 µs, then four buckets per power of two (each at most 25 % wide), up to
/// about 2^26 µs (67 s); larger values share the last. Small and fixed, so a worker can count
/// into it with plain stores.
public enum LatencyHistogram {
    public static let bucketCount = 4 + 4 * 25

    public static func bucket(microseconds value: UInt64) -> Int {
        guard value >= 4 else { return Int(value) }
        let exponent = 63 - value.leadingZeroBitCount
        let sub = Int((value >> UInt64(exponent - 2)) & 3)
        return min(bucketCount - 1, 4 * (exponent - 1) + sub)
    }

    /// The largest value that falls in `bucket` (what a percentile reports: an upper bound).
    public static func upperBound(of bucket: Int) -> UInt64 {
        guard bucket >= 4 else { return UInt64(bucket) }
        let exponent = bucket / 4 + 1
        let sub = UInt64(bucket % 4)
        return ((4 + sub + 1) << UInt64(exponent - 2)) - 1
    }

    /// The value below which `fraction` of the counted values fall (upper bound of its bucket).
    public static func percentile(_ fraction: Double, of counts: [UInt64]) -> UInt64? {
        let total = counts.reduce(0, +)
        guard total > 0 else { return nil }
        let rank = UInt64((Double(total) * fraction).rounded(.up))
        var seen: UInt64 = 0
        for (bucket, count) in counts.enumerated() {
            seen += count
            if seen >= max(1, rank) { return upperBound(of: bucket) }
        }
        return upperBound(of: counts.count - 1)
    }
}
