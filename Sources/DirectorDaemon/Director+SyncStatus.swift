import DirectorCore
import DirectorSync

/// How the pair's state reads to an operator (`director sync`) and to a scraper (`director stats`).
extension Director {
    func syncMetrics(_ sync: SyncThread) -> String {
        let status = sync.status.withLock { $0 }
        var lines: [String] = ["# TYPE director_sync_peer_state gauge"]
        for state in [SyncSession.PeerState.unknown, .alive, .dead] {
            lines.append("director_sync_peer_state{state=\"\(state.rawValue)\"} \(status.peer == state ? 1 : 0)")
        }
        for (name, value) in status.counters.named {
            lines.append("# TYPE director_sync_\(name) counter")
            lines.append("director_sync_\(name) \(value)")
        }
        lines.append("# TYPE director_sync_rejected counter")
        for reason in SyncRejection.allCases {
            lines.append("director_sync_rejected{channel=\"sync\",reason=\"\(reason.name)\"} \(status.counters[rejected: reason])")
            lines.append("director_sync_rejected{channel=\"liveness\",reason=\"\(reason.name)\"} \(status.liveness.rejected[reason.rawValue])")
        }
        lines.append("# TYPE director_sync_longest_step_ns gauge")
        for step in SyncThread.Step.allCases {
            lines.append("director_sync_longest_step_ns{step=\"\(step.name)\"} \(status.longestStep[step.rawValue])")
        }
        let gauges: [(String, String, UInt64?)] = [
            ("heartbeats_sent", "counter", status.liveness.heartbeatsSent),
            ("heartbeats_received", "counter", status.liveness.heartbeatsReceived),
            ("heartbeats_withheld", "counter", status.liveness.heartbeatsWithheld),
            ("peer_incarnations_verified", "counter", status.liveness.incarnationsVerified),
            ("heartbeat_send_errors", "counter", status.liveness.sendErrors),
            ("heartbeat_longest_lateness_ns", "gauge", status.liveness.longestLateness),
            ("fault", "gauge", status.fault == nil ? 0 : 1),
            ("retransmissions_queued", "gauge", UInt64(status.retransmissionsQueued)),
            ("foreign_datagrams", "counter", status.foreignDatagrams + status.liveness.foreignDatagrams),
            ("send_errors", "counter", status.sendErrors),
            ("records_unknown_real_server", "counter", status.recordsForUnknownServers),
            ("records_unknown_service", "counter", status.recordsForUnknownServices),
            ("replica_lifetimes_clamped", "counter", status.replicaLifetimesClamped),
            ("inbound_ring_full", "counter", status.inboundRingFull),
            ("caught_up", "gauge", status.caughtUp ? 1 : 0),
            ("automatic_handover", "gauge", status.automaticHandover ? 1 : 0),
            ("data_sequence_sent", "gauge", status.highestDataSequenceSent),
            ("data_sequence_acknowledged", "gauge", status.peerAcknowledged),
            ("missing_datagrams", "gauge", UInt64(status.missingDatagrams)),
            ("peer_last_heard_ns_ago", "gauge", status.lastHeardAgo),
            ("peer_declared_dead_at_monotonic_ns", "gauge", status.peerDeclaredDeadAt),
            ("peer_death_silence_ns", "gauge", status.deathSilence),
            ("took_all_buckets_at_monotonic_ns", "gauge", status.tookAllAt),
            ("took_buckets_at_monotonic_ns", "gauge", status.tookBucketsAt),
            ("last_handover_gap_ns", "gauge", status.lastHandoverGap),
            ("longest_turn_ns", "gauge", status.longestTurn),
            ("longest_turn_cpu_ns", "gauge", status.longestTurnCPU),
            ("longest_wait_between_turns_ns", "gauge", status.longestWait),
        ]
        for (name, type, value) in gauges {
            guard let value else { continue }
            lines.append("# TYPE director_sync_\(name) \(type)")
            lines.append("director_sync_\(name) \(value)")
        }
        let lag = board.lagCounts()
        lines.append("# TYPE director_sync_replica_lag_microseconds summary")
        for quantile in [0.5, 0.99, 0.999] {
            if let value = LatencyHistogram.percentile(quantile, of: lag) {
                lines.append("director_sync_replica_lag_microseconds{quantile=\"\(quantile)\"} \(value)")
            }
        }
        lines.append("director_sync_replica_lag_microseconds_count \(lag.reduce(0, +))")
        return lines.joined(separator: "\n") + "\n"
    }

    func syncReport(_ sync: SyncThread) -> String {
        let status = sync.status.withLock { $0 }
        guard let peer = configuration.peer else { return "no peer configured\n" }
        let owned = currentOwnership
        func milliseconds(_ nanoseconds: UInt64) -> String { String(Double(nanoseconds / 1_000) / 1_000) + " ms" }
        var lines = [
            "peer node \(peer.nodeID) at \(peer.address):\(peer.syncPort): \(status.peer.rawValue)"
                + (status.lastHeardAgo.map { ", heard \(milliseconds($0)) ago" } ?? "")
                + (status.caughtUp ? "; replica caught up" : "; replica not caught up yet"),
            "buckets: node \(configuration.nodeID) accepts \(owned.ownedCount) of \(owned.bucketCount)"
                + " (\(owned.description.isEmpty ? "none" : owned.description)); configured share \(configuration.initialOwnership.description); "
                + "automatic handovers \(status.automaticHandover ? "on" : "paused (buckets auto resumes)")",
            "stream: sent data sequence \(status.highestDataSequenceSent), peer acknowledged \(status.peerAcknowledged); "
                + "\(status.missingDatagrams) missing here",
        ]
        let lag = board.lagCounts()
        if let p50 = LatencyHistogram.percentile(0.5, of: lag), let p99 = LatencyHistogram.percentile(0.99, of: lag) {
            lines.append("replica lag: p50 ≤ \(p50) µs, p99 ≤ \(p99) µs over \(lag.reduce(0, +)) records applied")
        }
        let liveness = status.liveness
        lines.append("heartbeats: \(liveness.heartbeatsSent) sent, \(liveness.heartbeatsReceived) received, \(liveness.heartbeatsWithheld) withheld"
            + "; at most \(milliseconds(liveness.longestLateness)) late"
            + "; \(liveness.incarnationsVerified) peer incarnation(s) verified by challenge"
            + (status.fault.map { "; NOT SENT NOW: \($0)" } ?? ""))
        let steps = SyncThread.Step.allCases.map { "\($0.name) \(milliseconds(status.longestStep[$0.rawValue]))" }.joined(separator: ", ")
        lines.append("sync thread: longest turn \(milliseconds(status.longestTurn)) (\(steps)), \(milliseconds(status.longestTurnCPU)) of CPU at most; "
            + "longest wait between turns \(milliseconds(status.longestWait))")
        if let silence = status.deathSilence {
            lines.append("last peer death: declared after \(milliseconds(silence)) of silence")
        }
        if let gap = status.lastHandoverGap {
            lines.append("last handover: buckets without an owner for at most \(milliseconds(gap))")
        }
        let counters = status.counters
        lines.append("datagrams: \(counters.datagramsSent) sent, \(counters.datagramsReceived) received, "
            + "\(counters.datagramsRetransmitted) retransmitted, \(counters.nacksSent) NACKs sent, \(status.sendErrors) send errors")
        lines.append("records: \(counters.recordsSent) sent, \(counters.recordsReceived) received; snapshots: \(counters.snapshotsRequested) asked, "
            + "\(counters.snapshotsCompleted) received whole, \(counters.snapshotsServed) served")
        let rejected = SyncRejection.allCases.filter { counters[rejected: $0] + liveness.rejected[$0.rawValue] > 0 }
            .map { "\($0.name) \(counters[rejected: $0] + liveness.rejected[$0.rawValue])" }
        lines.append("rejected: \(rejected.isEmpty ? "none" : rejected.joined(separator: ", "))"
            + (status.foreignDatagrams + liveness.foreignDatagrams > 0 ? "; from foreign sources \(status.foreignDatagrams + liveness.foreignDatagrams)" : ""))
        return lines.joined(separator: "\n") + "\n"
    }
}

/// `director sync --json`: the pair as this director sees it, in a stable shape (fields are
/// added, never renamed or removed). Durations in milliseconds; absent when not known.
struct SyncJSONReport: Codable, Sendable {
    var node: UInt8
    var peerNode: UInt8
    var peerAddress: String
    var peerState: String
    var peerHeardMillisecondsAgo: Double?
    var caughtUp: Bool
    var ownedBuckets: String
    var ownedBucketCount: UInt32
    var bucketCount: UInt32
    var configuredShare: String
    var automaticHandover: Bool
    var dataSequenceSent: UInt64
    var dataSequenceAcknowledged: UInt64
    var missingDatagrams: Int
    var replicaLagP50Microseconds: UInt64?
    var replicaLagP99Microseconds: UInt64?
    var recordsApplied: UInt64
    var heartbeatsSent: UInt64
    var heartbeatsReceived: UInt64
    var heartbeatLongestLatenessMilliseconds: Double
    var datagramsSent: UInt64
    var datagramsReceived: UInt64
    var datagramsRetransmitted: UInt64
    var recordsSent: UInt64
    var recordsReceived: UInt64
    var rejected: [String: UInt64]
    var lastPeerDeathSilenceMilliseconds: Double? = nil
    var lastHandoverGapMilliseconds: Double? = nil
    var fault: String? = nil

    enum CodingKeys: String, CodingKey {
        case node, peerNode = "peer_node", peerAddress = "peer_address", peerState = "peer_state"
        case peerHeardMillisecondsAgo = "peer_heard_ms_ago", caughtUp = "caught_up", ownedBuckets = "owned_buckets"
        case ownedBucketCount = "owned_bucket_count", bucketCount = "bucket_count", configuredShare = "configured_share"
        case automaticHandover = "automatic_handover", dataSequenceSent = "data_sequence_sent"
        case dataSequenceAcknowledged = "data_sequence_acknowledged", missingDatagrams = "missing_datagrams"
        case replicaLagP50Microseconds = "replica_lag_p50_us", replicaLagP99Microseconds = "replica_lag_p99_us"
        case recordsApplied = "records_applied", heartbeatsSent = "heartbeats_sent", heartbeatsReceived = "heartbeats_received"
        case heartbeatLongestLatenessMilliseconds = "heartbeat_longest_lateness_ms", datagramsSent = "datagrams_sent"
        case datagramsReceived = "datagrams_received", datagramsRetransmitted = "datagrams_retransmitted"
        case recordsSent = "records_sent", recordsReceived = "records_received", rejected
        case lastPeerDeathSilenceMilliseconds = "last_peer_death_silence_ms", lastHandoverGapMilliseconds = "last_handover_gap_ms", fault
    }
}

/// `director buckets show --json`.
struct BucketsJSONReport: Codable, Sendable {
    var node: UInt8
    var bucketCount: UInt32
    var ownedCount: UInt32
    /// Inclusive ranges, low to high.
    var owned: [[UInt32]]

    enum CodingKeys: String, CodingKey { case node, bucketCount = "bucket_count", ownedCount = "owned_count", owned }
}

extension Director {
    func syncJSON(_ sync: SyncThread) -> String {
        let status = sync.status.withLock { $0 }
        guard let peer = configuration.peer else { return "{}\n" }
        let owned = currentOwnership
        let lag = board.lagCounts()
        func milliseconds(_ nanoseconds: UInt64?) -> Double? { nanoseconds.map { Double($0) / 1e6 } }
        let counters = status.counters, liveness = status.liveness
        var rejected: [String: UInt64] = [:]
        for reason in SyncRejection.allCases { rejected[reason.name] = counters[rejected: reason] + liveness.rejected[reason.rawValue] }
        let lagP50 = LatencyHistogram.percentile(0.5, of: lag), lagP99 = LatencyHistogram.percentile(0.99, of: lag)
        var report = SyncJSONReport(
            node: configuration.nodeID, peerNode: peer.nodeID, peerAddress: "\(peer.address):\(peer.syncPort)", peerState: status.peer.rawValue,
            peerHeardMillisecondsAgo: milliseconds(status.lastHeardAgo), caughtUp: status.caughtUp, ownedBuckets: owned.description,
            ownedBucketCount: UInt32(owned.ownedCount), bucketCount: owned.bucketCount, configuredShare: configuration.initialOwnership.description,
            automaticHandover: status.automaticHandover, dataSequenceSent: status.highestDataSequenceSent,
            dataSequenceAcknowledged: status.peerAcknowledged, missingDatagrams: status.missingDatagrams,
            replicaLagP50Microseconds: lagP50, replicaLagP99Microseconds: lagP99, recordsApplied: lag.reduce(0, +),
            heartbeatsSent: liveness.heartbeatsSent, heartbeatsReceived: liveness.heartbeatsReceived,
            heartbeatLongestLatenessMilliseconds: Double(liveness.longestLateness) / 1e6, datagramsSent: counters.datagramsSent,
            datagramsReceived: counters.datagramsReceived, datagramsRetransmitted: counters.datagramsRetransmitted,
            recordsSent: counters.recordsSent, recordsReceived: counters.recordsReceived, rejected: rejected)
        report.lastPeerDeathSilenceMilliseconds = milliseconds(status.deathSilence)
        report.lastHandoverGapMilliseconds = milliseconds(status.lastHandoverGap)
        report.fault = status.fault
        return ServicesReport.encode(report)
    }

    func bucketsJSON() -> String {
        let owned = currentOwnership
        return ServicesReport.encode(BucketsJSONReport(node: configuration.nodeID, bucketCount: owned.bucketCount, ownedCount: UInt32(owned.ownedCount),
                                                       owned: owned.ownedRanges.map { [$0.lowerBound, $0.upperBound] }))
    }
}
