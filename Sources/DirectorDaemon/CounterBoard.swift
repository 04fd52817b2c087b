import CDirectorShim
import DirectorCore
import DirectorWire

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
        /// Offers of established flows the XDP program's map refused (they stay on the ring).
        case fastPathOffersRefused

        /// The metric family (and its label, when several values share one), kind and help.
        var metric: (name: String, label: (name: String, value: String)?, kind: MetricFamily.Kind, help: String) {
            switch self {
            case .tableEntries: ("director_connections", nil, .gauge, "Entries in the worker's connection table, own and replicas.")
            case .tableCapacity: ("director_connection_capacity", nil, .gauge, "Entries the worker's connection table holds at most.")
            case .ringDrops: ("director_receive_ring_drops_total", nil, .counter, "Frames the kernel dropped because the receive ring was full.")
            case .numaNode: ("director_numa_node", nil, .gauge, "The NUMA node of the worker's CPU and memory.")
            case .changesCreated: ("director_connection_changes_total", ("kind", "created"), .counter, Gauge.changesHelp)
            case .changesStateChanged: ("director_connection_changes_total", ("kind", "state"), .counter, Gauge.changesHelp)
            case .changesRemoved: ("director_connection_changes_total", ("kind", "removed"), .counter, Gauge.changesHelp)
            case .changesRefreshed: ("director_connection_changes_total", ("kind", "refreshed"), .counter, Gauge.changesHelp)
            case .syncRingFull: ("director_sync_ring_full_total", nil, .counter, "Table changes lost because the worker's ring to the sync thread was full (the peer resyncs).")
            case .receiveRingBytes: ("director_receive_ring_bytes", nil, .gauge, "Memory of the worker's receive rings (the front's, and with NAT the back's).")
            case .frontLinkDownEvents: ("director_front_link_down_events_total", nil, .counter, "Times the front interface went down under the worker.")
            case .receiveErrors: ("director_receive_errors_total", nil, .counter, "Other errors of the receive socket.")
            case .transmitErrorsNetworkDown: ("director_transmit_errors_total", ("kind", "network_down"), .counter, Gauge.transmitHelp)
            case .transmitErrorsNoBuffers: ("director_transmit_errors_total", ("kind", "no_buffers"), .counter, Gauge.transmitHelp)
            case .transmitErrorsOther: ("director_transmit_errors_total", ("kind", "other"), .counter, Gauge.transmitHelp)
            case .fastPathOffersRefused: ("director_fast_path_offers_refused_total", nil, .counter, "Established flows the XDP fast path's map refused (they stay on the ring).")
            }
        }

        private static let changesHelp = "Table changes by kind: the delta stream connection sync carries to the peer."
        private static let transmitHelp = "Transmit ring sends the kernel refused, by kind (the frames are retried)."
    }

    public static let rowWidth = WorkerCounters.count + 32
    public let workerCount: Int
    private let slots: UnsafeMutablePointer<UInt64>
    /// Per worker, `LatencyHistogram.bucketCount` counts of replica lag (peer's change → applied
    /// here), then their sum in microseconds.
    private let lag: UnsafeMutablePointer<UInt64>
    private static let lagRowWidth = LatencyHistogram.bucketCount + 1

    public init(workerCount: Int) {
        precondition(Gauge.allCases.count <= CounterBoard.rowWidth - WorkerCounters.count)
        self.workerCount = workerCount
        slots = .allocate(capacity: workerCount * CounterBoard.rowWidth)
        slots.initialize(repeating: 0, count: workerCount * CounterBoard.rowWidth)
        lag = .allocate(capacity: workerCount * CounterBoard.lagRowWidth)
        lag.initialize(repeating: 0, count: workerCount * CounterBoard.lagRowWidth)
    }

    deinit {
        slots.deallocate()
        lag.deallocate()
    }

    /// Called by worker `worker` only: one replica applied `microseconds` after the peer's change.
    func recordLag(worker: Int, microseconds: UInt64) {
        let row = lag + worker * CounterBoard.lagRowWidth
        let slot = row + LatencyHistogram.bucket(microseconds: microseconds)
        director_store_relaxed_u64(slot, director_load_relaxed_u64(slot) &+ 1)
        let sum = row + LatencyHistogram.bucketCount
        director_store_relaxed_u64(sum, director_load_relaxed_u64(sum) &+ microseconds)
    }

    /// Replica lag counts summed over the workers.
    func lagCounts() -> [UInt64] {
        (0..<LatencyHistogram.bucketCount).map { bucket in
            (0..<workerCount).reduce(0) { $0 &+ director_load_relaxed_u64(lag + $1 * CounterBoard.lagRowWidth + bucket) }
        }
    }

    /// The sum of every replica lag counted, in microseconds.
    func lagSumMicroseconds() -> UInt64 {
        (0..<workerCount).reduce(0) { $0 &+ director_load_relaxed_u64(lag + $1 * CounterBoard.lagRowWidth + LatencyHistogram.bucketCount) }
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

    /// Every counter and gauge, one sample per worker (and reason, for the frames not forwarded).
    func metricFamilies() -> [MetricFamily] {
        var families: [MetricFamily] = []
        func perWorker(_ family: inout MetricFamily, index: Int, _ labels: [(name: String, value: String)] = []) {
            for worker in 0..<workerCount { family.add(counter(worker: worker, index: index), [("worker", String(worker))] + labels) }
        }
        for counter in WorkerCounter.allCases {
            var family = MetricFamily("director_\(counter.name)_total", .counter, counter.help)
            perWorker(&family, index: counter.rawValue)
            families.append(family)
        }
        var dropped = MetricFamily("director_frames_dropped_total", .counter, "Frames not forwarded, by reason.")
        for reason in DropReason.allCases { perWorker(&dropped, index: WorkerCounters.dropBase + reason.rawValue, [("reason", reason.name)]) }
        var malformed = MetricFamily("director_frames_malformed_total", .counter, "Frames that could not be parsed, by what was wrong.")
        for reason in MalformedReason.allCases { perWorker(&malformed, index: WorkerCounters.malformedBase + reason.rawValue, [("reason", reason.name)]) }
        var passedOver = MetricFamily("director_frames_passed_over_total", .counter, "Frames that are not the director's business (not IPv4 TCP/UDP or ARP), by kind.")
        for reason in PassOverReason.allCases { perWorker(&passedOver, index: WorkerCounters.passOverBase + reason.rawValue, [("reason", reason.name)]) }
        families += [dropped, malformed, passedOver]
        for gauge in Gauge.allCases {
            let metric = gauge.metric
            if families.last?.name != metric.name { families.append(MetricFamily(metric.name, metric.kind, metric.help)) }
            perWorker(&families[families.count - 1], index: WorkerCounters.count + gauge.rawValue, metric.label.map { [$0] } ?? [])
        }
        return families
    }
}
