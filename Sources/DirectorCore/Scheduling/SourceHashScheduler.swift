import DirectorWire

/// sh: the client address picks one of 256 buckets, each assigned to a real server in proportion
/// to weight (as IPVS's `ip_vs_sh` does). The same client always meets the same real server
/// while the pool is unchanged, on every director that has the same pool.
public struct SourceHashScheduler: RealServerScheduler {
    public static let bucketCount = 256
    /// Pool index per bucket; -1 when no server has weight.
    public let buckets: [Int]

    public init(pool: [RealServer]) {
        var buckets = [Int](repeating: -1, count: SourceHashScheduler.bucketCount)
        let members = pool.indices.filter { pool[$0].weight > 0 }
        if !members.isEmpty {
            let weights = members.map { Int(pool[$0].weight) }
            let step = weights.reduce(0, greatestCommonDivisor)
            var member = 0
            var turnsLeft = weights[0] / step
            for bucket in 0..<SourceHashScheduler.bucketCount {
                buckets[bucket] = members[member]
                turnsLeft -= 1
                if turnsLeft == 0 {
                    member = (member + 1) % members.count
                    turnsLeft = weights[member] / step
                }
            }
        }
        self.buckets = buckets
    }

    @inlinable
    public func select<Address>(_ flow: FlowKey<Address>, pool: [RealServer], cursor: inout SchedulerCursor, load: borrowing ConnectionLoad) -> Int? {
        // Knuth's multiplicative hash of the address, top 8 bits (IPVS uses the same constant).
        let bucket = Int((flow.clientAddress.sourceHashWord &* 2_654_435_761) >> 24)
        let index = buckets[bucket]
        return index >= 0 ? index : nil
    }
}
