/// lc: the real server with the least overhead (active × 256 + inactive), weight 0 excluded;
/// counted over this worker's shard.
public struct LeastConnectionScheduler: RealServerScheduler {
    public init() {}

    @inlinable
    public func select<Address>(_ flow: FlowKey<Address>, pool: [RealServer], cursor: inout SchedulerCursor, load: borrowing ConnectionLoad) -> Int? {
        var best: Int?
        var bestOverhead = UInt64.max
        for index in pool.indices where pool[index].weight > 0 {
            let overhead = load.overhead(pool[index].id)
            if overhead < bestOverhead {
                best = index
                bestOverhead = overhead
            }
        }
        return best
    }
}
