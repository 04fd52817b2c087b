import Foundation

/// The director's metrics in the Prometheus text format (version 0.0.4), as `director stats`
/// prints them and `/metrics` serves them: every family with HELP and TYPE lines, counters
/// ending in `_total`, durations in seconds, every sample labelled with the `node` it comes from
/// (two directors scraped into one Prometheus stay apart).
struct MetricFamily: Sendable {
    enum Kind: String, Sendable { case counter, gauge, histogram }

    struct Sample: Sendable {
        /// Appended to the family's name: "" or, for a histogram, `_bucket`, `_sum`, `_count`.
        var suffix = ""
        var labels: [(name: String, value: String)]
        var value: MetricValue
    }

    let name: String
    let help: String
    let kind: Kind
    var samples: [Sample] = []

    init(_ name: String, _ kind: Kind, _ help: String) {
        self.name = name
        self.kind = kind
        self.help = help
    }

    mutating func add(_ value: MetricValue, _ labels: [(name: String, value: String)] = [], suffix: String = "") {
        samples.append(Sample(suffix: suffix, labels: labels, value: value))
    }

    mutating func add(_ value: UInt64, _ labels: [(name: String, value: String)] = []) { add(.integer(value), labels) }

    /// A histogram: the count at or below each bound (cumulative, bounds rising), the count and
    /// the sum of every observation.
    mutating func addHistogram(_ buckets: [(bound: Double, count: UInt64)], count: UInt64, sum: Double, _ labels: [(name: String, value: String)] = []) {
        for bucket in buckets { add(.integer(bucket.count), labels + [("le", MetricValue.real(bucket.bound).text)], suffix: "_bucket") }
        add(.integer(count), labels + [("le", "+Inf")], suffix: "_bucket")
        add(.real(sum), labels, suffix: "_sum")
        add(.integer(count), labels, suffix: "_count")
    }
}

enum MetricValue: Sendable, Equatable {
    case integer(UInt64)
    case real(Double)

    var text: String {
        switch self {
        case .integer(let value): String(value)
        case .real(let value):
            if value.isNaN { "NaN" } else if value.isInfinite { value > 0 ? "+Inf" : "-Inf" } else { "\(value)" }
        }
    }

    /// Nanoseconds as seconds (exact to the nanosecond for values below 104 days).
    static func seconds(nanoseconds: UInt64) -> MetricValue { .real(Double(nanoseconds) / 1e9) }
}

enum MetricsExposition {
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    static func render(_ families: [MetricFamily], node: UInt8) -> String {
        var text = ""
        text.reserveCapacity(families.count * 256)
        for family in families where !family.samples.isEmpty {
            text += "# HELP \(family.name) \(escapeHelp(family.help))\n# TYPE \(family.name) \(family.kind.rawValue)\n"
            for sample in family.samples {
                let labels = [("node", String(node))] + sample.labels
                text += family.name + sample.suffix + "{" + labels.map { "\($0.0)=\"\(escapeLabel($0.1))\"" }.joined(separator: ",") + "} "
                    + sample.value.text + "\n"
            }
        }
        return text
    }

    /// Backslash and newline, as the format wants them in HELP text.
    static func escapeHelp(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }

    /// Backslash, double quote and newline, as the format wants them in label values.
    static func escapeLabel(_ text: String) -> String {
        escapeHelp(text).replacingOccurrences(of: "\"", with: "\\\"")
    }
}
