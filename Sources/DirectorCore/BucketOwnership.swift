/// Which of the B client buckets (`ClientBucket`) this dispatcher owns. Plain value; the kernel
/// filter is generated from it, and a change takes effect by attaching the new filter.
public struct BucketOwnership: Equatable, Sendable, CustomStringConvertible {
    public let bucketCount: UInt32
    private var owned: [Bool]

    public init(bucketCount: UInt32, owning: (UInt32) -> Bool) {
        precondition(bucketCount > 0 && bucketCount & (bucketCount - 1) == 0, "bucket count must be a power of two")
        self.bucketCount = bucketCount
        owned = (0..<bucketCount).map(owning)
    }

    public static func all(_ bucketCount: UInt32) -> BucketOwnership { BucketOwnership(bucketCount: bucketCount) { _ in true } }
    public static func none(_ bucketCount: UInt32) -> BucketOwnership { BucketOwnership(bucketCount: bucketCount) { _ in false } }

    /// Node `index` of `nodes` gets an even, contiguous share (the default split of a pair).
    public static func evenShare(_ bucketCount: UInt32, node index: Int, of nodes: Int) -> BucketOwnership {
        BucketOwnership(bucketCount: bucketCount) { Int(UInt64($0) * UInt64(nodes) / UInt64(bucketCount)) == index }
    }

    public func owns(_ bucket: UInt32) -> Bool { owned[Int(bucket & (bucketCount - 1))] }

    public mutating func set(_ bucket: UInt32, owned value: Bool) { owned[Int(bucket)] = value }

    public var ownedCount: Int { owned.count { $0 } }

    /// The owned buckets as ascending, disjoint, maximal ranges (what the filter tests).
    public var ownedRanges: [ClosedRange<UInt32>] {
        var ranges: [ClosedRange<UInt32>] = []
        var start: UInt32?
        for bucket in 0..<bucketCount {
            if owned[Int(bucket)] {
                if start == nil { start = bucket }
            } else if let first = start {
                ranges.append(first...(bucket - 1))
                start = nil
            }
        }
        if let first = start { ranges.append(first...(bucketCount - 1)) }
        return ranges
    }

    public var description: String {
        ownedRanges.map { $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ",")
    }

    // MARK: - Set operations (for handovers between the pair)

    public init(bucketCount: UInt32, ranges: [ClosedRange<UInt32>]) {
        self = .none(bucketCount)
        for range in ranges where range.lowerBound < bucketCount {
            for bucket in range.lowerBound...min(range.upperBound, bucketCount - 1) { owned[Int(bucket)] = true }
        }
    }

    public var isEmpty: Bool { !owned.contains(true) }

    public func union(_ other: BucketOwnership) -> BucketOwnership {
        BucketOwnership(bucketCount: bucketCount) { owns($0) || other.owns($0) }
    }

    public func intersection(_ other: BucketOwnership) -> BucketOwnership {
        BucketOwnership(bucketCount: bucketCount) { owns($0) && other.owns($0) }
    }

    public func subtracting(_ other: BucketOwnership) -> BucketOwnership {
        BucketOwnership(bucketCount: bucketCount) { owns($0) && !other.owns($0) }
    }

    public var complement: BucketOwnership {
        BucketOwnership(bucketCount: bucketCount) { !owns($0) }
    }
}
