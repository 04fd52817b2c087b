import DirectorCore
import Synchronization

/// Connections, packets and bytes per second over the last seconds, per real server and per
/// service (`ipvsadm -L --rate`): the maintenance thread takes a sample of the totals every
/// second and keeps `window` of them; a rate is the change across the kept samples.
final class TrafficRates: Sendable {
    static let window = 5

    struct Sample: Sendable {
        var at: UInt64
        var servers: [UInt16: Traffic]
        var services: [UInt16: Traffic]
    }

    private let samples = Mutex<[Sample]>([])

    func record(_ sample: Sample) {
        samples.withLock { kept in
            kept.append(sample)
            if kept.count > TrafficRates.window + 1 { kept.removeFirst(kept.count - TrafficRates.window - 1) }
        }
    }

    func server(_ id: UInt16) -> Rate { rate { $0.servers[id] } }
    func service(_ id: UInt16) -> Rate { rate { $0.services[id] } }

    private func rate(_ totals: (Sample) -> Traffic?) -> Rate {
        samples.withLock { kept in
            guard let last = kept.last, let lastTotals = totals(last),
                  let first = kept.first(where: { totals($0) != nil && $0.at < last.at }), let firstTotals = totals(first) else { return Rate() }
            return Rate(from: firstTotals, to: lastTotals, seconds: Double(last.at - first.at) / 1e9)
        }
    }
}

/// Per second, over the last seconds.
struct Rate: Sendable, Equatable, Codable {
    var connectionsPerSecond: Double = 0
    var packetsPerSecond: Double = 0
    var bytesPerSecond: Double = 0

    init() {}

    /// A counter that went down (a restart cannot happen within one director; a wrap can) counts as 0.
    init(from old: Traffic, to new: Traffic, seconds: Double) {
        guard seconds > 0 else { return }
        func perSecond(_ before: UInt64, _ after: UInt64) -> Double { after >= before ? Double(after - before) / seconds : 0 }
        connectionsPerSecond = perSecond(old.connections, new.connections)
        packetsPerSecond = perSecond(old.packets, new.packets)
        bytesPerSecond = perSecond(old.bytes, new.bytes)
    }

    enum CodingKeys: String, CodingKey {
        case connectionsPerSecond = "connections_per_second"
        case packetsPerSecond = "packets_per_second"
        case bytesPerSecond = "bytes_per_second"
    }
}
