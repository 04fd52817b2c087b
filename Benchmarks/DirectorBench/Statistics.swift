/// Median, minimum and maximum of a few repeats: what every table of the benchmark prints.
struct Spread: Codable {
    var median: Double
    var minimum: Double
    var maximum: Double

    init(_ values: [Double]) {
        let sorted = values.sorted()
        precondition(!sorted.isEmpty)
        // The middle value, or the mean of the two middle ones.
        median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        minimum = sorted.first!
        maximum = sorted.last!
    }

    /// "1.23 (1.10–1.40)" with `scale` applied and `digits` decimals.
    func formatted(scale: Double = 1, digits: Int = 2) -> String {
        func number(_ value: Double) -> String { String(format: "%.\(digits)f", value * scale) }
        return "\(number(median)) (\(number(minimum))–\(number(maximum)))"
    }
}
