/// wrr: IPVS's weighted round robin. The current weight steps down by the weights' greatest
/// common divisor each pass; a server is chosen while its weight is at least the current weight,
/// so over one cycle each server gets exactly weight/gcd turns.
public struct WeightedRoundRobinScheduler: RealServerScheduler {
    public let maximumWeight: Int
    public let weightStep: Int

    public init(pool: [RealServer]) {
        let weights = pool.map { Int($0.weight) }.filter { $0 > 0 }
        maximumWeight = weights.max() ?? 0
        weightStep = weights.reduce(0, greatestCommonDivisor)
    }

    @inlinable
    public func select<Address>(_ flow: FlowKey<Address>, pool: [RealServer], cursor: inout SchedulerCursor, load: borrowing ConnectionLoad) -> Int? {
        guard maximumWeight > 0, !pool.isEmpty else { return nil }
        var index = cursor.position
        // At most one full cycle of weights over the pool: maxWeight/step passes of pool.count.
        for _ in 0..<(pool.count * (maximumWeight / weightStep + 1)) {
            index = index + 1 >= pool.count ? 0 : index + 1
            if index == 0 {
                cursor.currentWeight -= weightStep
                if cursor.currentWeight <= 0 { cursor.currentWeight = maximumWeight }
            }
            if Int(pool[index].weight) >= cursor.currentWeight {
                cursor.position = index
                return index
            }
        }
        return nil
    }
}

func greatestCommonDivisor(_ a: Int, _ b: Int) -> Int {
    var (a, b) = (a, b)
    while b != 0 { (a, b) = (b, a % b) }
    return a
}
