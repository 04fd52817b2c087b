/// wlc: the real server with the least overhead per unit of weight. Compared by cross
/// multiplication (overhead_a × weight_b < overhead_b × weight_a), as IPVS does, so no division.
public struct WeightedLeastConnectionScheduler: RealServerScheduler {
    public init() {}

    @inlinable
    public func select<Address>(_ flow: FlowKey<Address>, pool: [RealServer], cursor: inout SchedulerCursor, load: borrowing ConnectionLoad) -> Int? {
        var best: Int?
        var bestOverhead: UInt64 = 0
        var bestWeight: UInt64 = 0
        for index in pool.indices where pool[index].weight > 0 {
            let overhead = load.overhead(pool[index].id)
            let weight = UInt64(pool[index].weight)
            if best == nil || overhead &* bestWeight < bestOverhead &* weight {
                best = index
                bestOverhead = overhead
                bestWeight = weight
            }
        }
        return best
    }
}
