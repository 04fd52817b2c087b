/// rr: each new flow goes to the next real server with a non-zero weight.
public struct RoundRobinScheduler: RealServerScheduler {
    public init() {}

    @inlinable
    public func select<Address>(_ flow: FlowKey<Address>, pool: [RealServer], cursor: inout SchedulerCursor, load: borrowing ConnectionLoad) -> Int? {
        guard !pool.isEmpty else { return nil }
        var index = cursor.position
        for _ in 0..<pool.count {
            index = index + 1 >= pool.count ? 0 : index + 1
            if pool[index].weight > 0 {
                cursor.position = index
                return index
            }
        }
        return nil
    }
}
