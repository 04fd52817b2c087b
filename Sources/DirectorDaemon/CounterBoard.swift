import CDirectorShim
import DirectorCore

/// Where workers publish their counters for the control thread to read. Each worker owns one
/// row and is its only writer; stores and loads are relaxed atomics (a reader needs each number
/// to be one that existed, not a consistent set across counters).
public final class CounterBoard: @unchecked Sendable {
    /// Values that follow the pipeline's counters in each row: gauges, and counters kept outside
    /// the pipeline.
    public enum Gauge: Int, CaseIterable {
        case tableEntries = 0
        case tableCapacity
        case ringDrops
        case numaNode
        /// Table changes by kind: the delta stream connection sync carries to the peer.
        case changesCreated
        case changesStateChanged
        case changesRemoved
        case changesRefreshed
        /// Changes lost because the worker's outbound sync ring was full (the peer resyncs).
        case syncRingFull
        /// The receive ring's memory (bytes).
        case receiveRingBytes
        /// Times the front interface went down under the worker, and other receive-socket errors.
        case frontLinkDownEvents
        case receiveErrors
        /// Transmit ring sends the kernel refused, by kind (the frames are retried).
        case transmitErrorsNetworkDown
        case transmitErrorsNoBuffers
        case transmitErrorsOther

        var name: String {
            switch self {
            case .tableEntries: "connections"
            case .tableCapacity: "connection_capacity"
            case .ringDrops: "receive_ring_drops"
            case .numaNode: "numa_node"
            case .changesCreated: "connection_changes_created"
            case .changesStateChanged: "connection_changes_state"
            case .changesRemoved: "connection_changes_removed"
            case .changesRefreshed: "connection_changes_refreshed"
            case .syncRingFull: "sync_ring_full"
            case .receiveRingBytes: "receive_ring_bytes"
            case .frontLinkDownEvents: "front_link_down_events"
            case .receiveErrors: "receive_errors"
            case .transmitErrorsNetworkDown: "transmit_errors_network_down"
            case .transmitErrorsNoBuffers: "transmit_errors_no_buffers"
            case .transmitErrorsOther: "transmit_errors_other"
            }
        }

        var prometheusType: String {
            switch self {
            case .tableEntries, .tableCapacity, .numaNode, .receiveRingBytes: "gauge"
            case .ringDrops, .changesCreated, .changesStateChanged, .changesRemoved, .changesRefreshed, .syncRingFull,
                 .frontLinkDownEvents, .receiveErrors, .transmitErrorsNetworkDown, .transmitErrorsNoBuffers, .transmitErrorsOther: "counter"
            }
        }
    }

    public static let rowWidth = WorkerCounters.count + 32
    public let workerCount: Int
    private let slots: UnsafeMutablePointer<UInt64>
    /// Per worker, `LatencyHistogram.bucketCount` counts of replica lag (peer's change → applied here).
    private let lag: UnsafeMutablePointer<UInt64>

    public init(workerCount: Int) {
        precondition(Gauge.allCases.count <= CounterBoard.rowWidth - WorkerCounters.count)
        self.workerCount = workerCount
        slots = .allocate(capacity: workerCount * CounterBoard.rowWidth)
        slots.initialize(repeating: 0, count: workerCount * CounterBoard.rowWidth)
        lag = .allocate(capacity: workerCount * LatencyHistogram.bucketCount)
        lag.initialize(repeating: 0, count: workerCount * LatencyHistogram.bucketCount)
    }

    deinit {
        slots.deallocate()
        lag.deallocate()
    }

    /// Called by worker `worker` only: one replica applied `microseconds` after the peer's change.
    func recordLag(worker: Int, microseconds: UInt64) {
        let slot = lag + worker * LatencyHistogram.bucketCount + LatencyHistogram.bucket(microseconds: microseconds)
        director_store_relaxed_u64(slot, director_load_relaxed_u64(slot) &+ 1)
    }

    /// Replica lag counts summed over the workers.
    func lagCounts() -> [UInt64] {
        (0..<LatencyHistogram.bucketCount).map { bucket in
            (0..<workerCount).reduce(0) { $0 &+ director_load_relaxed_u64(lag + $1 * LatencyHistogram.bucketCount + bucket) }
        }
    }

    /// Called by worker `worker` only.
    public func publish(worker: Int, counters: borrowing WorkerCounters) {
        let row = slots + worker * CounterBoard.rowWidth
        for index in 0..<WorkerCounters.count { director_store_relaxed_u64(row + index, counters.values[index]) }
    }

    /// Called by worker `worker` only.
    public func publish(worker: Int, gauge: Gauge, _ value: UInt64) {
        director_store_relaxed_u64(slots + worker * CounterBoard.rowWidth + WorkerCounters.count + gauge.rawValue, value)
    }

    public func counter(worker: Int, index: Int) -> UInt64 {
        director_load_relaxed_u64(slots + worker * CounterBoard.rowWidth + index)
    }

    public func gauge(worker: Int, _ gauge: Gauge) -> UInt64 {
        counter(worker: worker, index: WorkerCounters.count + gauge.rawValue)
    }

    /// Every counter and gauge in the Prometheus text format, one line per worker and name.
    public func prometheusText() -> String {
        var lines: [String] = []
        for (name, index) in WorkerCounters.layout {
            lines.append("# TYPE director_\(name) counter")
            for worker in 0..<workerCount { lines.append("director_\(name){worker=\"\(worker)\"} \(counter(worker: worker, index: index))") }
        }
        for gauge in Gauge.allCases {
            lines.append("# TYPE director_\(gauge.name) \(gauge.prometheusType)")
            for worker in 0..<workerCount { lines.append("director_\(gauge.name){worker=\"\(worker)\"} \(self.gauge(worker: worker, gauge))") }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
