import DirectorCore
import DirectorSync

/// How the pair's state reads to an operator (`director sync`) and to a scraper (`director stats`).
extension Director {
    func syncMetricFamilies(_ sync: SyncThread) -> [MetricFamily] {
        let status = sync.status.withLock { $0 }
        var families: [MetricFamily] = []
        var peerState = MetricFamily("director_sync_peer_state", .gauge, "1 for the peer's state as this director sees it.")
        for state in [SyncSession.PeerState.unknown, .alive, .dead] { peerState.add(status.peer == state ? 1 : 0, [("state", state.rawValue)]) }
        families.append(peerState)
        for (name, value) in status.counters.named {
            var family = MetricFamily("director_sync_\(name)_total", .counter, "Connection sync: \(name.replacingOccurrences(of: "_", with: " ")).")
            family.add(value)
            families.append(family)
        }
        var rejected = MetricFamily("director_sync_rejected_total", .counter, "Datagrams refused on the sync and liveness channels, by reason.")
        for reason in SyncRejection.allCases {
            rejected.add(status.counters[rejected: reason], [("channel", "sync"), ("reason", reason.name)])
            rejected.add(status.liveness.rejected[reason.rawValue], [("channel", "liveness"), ("reason", reason.name)])
        }
        families.append(rejected)
        var steps = MetricFamily("director_sync_longest_step_seconds", .gauge, "The longest time one step of a sync thread turn took.")
        for step in SyncThread.Step.allCases { steps.add(.seconds(nanoseconds: status.longestStep[step.rawValue]), [("step", step.name)]) }
        families.append(steps)
        let counters: [(String, UInt64, String)] = [
            ("heartbeats_sent", status.liveness.heartbeatsSent, "Heartbeats sent to the peer."),
            ("heartbeats_received", status.liveness.heartbeatsReceived, "Heartbeats received from the peer."),
            ("heartbeats_withheld", status.liveness.heartbeatsWithheld, "Heartbeats not sent because a worker stopped making progress."),
            ("peer_incarnations_verified", status.liveness.incarnationsVerified, "Peer incarnations verified by challenge."),
            ("heartbeat_send_errors", status.liveness.sendErrors, "Heartbeats the kernel refused to send."),
            ("foreign_datagrams", status.foreignDatagrams + status.liveness.foreignDatagrams, "Datagrams from sources other than the peer."),
            ("send_errors", status.sendErrors, "Sync datagrams the kernel refused to send."),
            ("records_unknown_real_server", status.recordsForUnknownServers, "Sync records naming a real server this director does not have."),
            ("records_unknown_service", status.recordsForUnknownServices, "Sync records naming a service this director does not have."),
            ("replica_lifetimes_clamped", status.replicaLifetimesClamped, "Replica lifetimes cut to this director's timeouts."),
            ("inbound_ring_full", status.inboundRingFull, "Records not handed to a worker because its ring was full."),
        ]
        for (name, value, help) in counters {
            var family = MetricFamily("director_sync_\(name)_total", .counter, help)
            family.add(value)
            families.append(family)
        }
        let gauges: [(String, MetricValue?, String)] = [
            ("heartbeat_longest_lateness_seconds", .seconds(nanoseconds: status.liveness.longestLateness), "The latest a heartbeat left after it was due."),
            ("fault", .integer(status.fault == nil ? 0 : 1), "1 while the liveness thread withholds heartbeats (a worker stopped making progress)."),
            ("retransmissions_queued", .integer(UInt64(status.retransmissionsQueued)), "Datagrams the peer asked for, waiting to be sent again."),
            ("caught_up", .integer(status.caughtUp ? 1 : 0), "1 once this director holds the peer's whole table."),
            ("automatic_handover", .integer(status.automaticHandover ? 1 : 0), "1 while the pair moves buckets by itself (0: paused by an operator)."),
            ("data_sequence_sent", .integer(status.highestDataSequenceSent), "The highest sequence number of the record stream sent."),
            ("data_sequence_acknowledged", .integer(status.peerAcknowledged), "The highest sequence number the peer acknowledged."),
            ("missing_datagrams", .integer(UInt64(status.missingDatagrams)), "Datagrams of the peer's stream missing here."),
            ("peer_last_heard_seconds", status.lastHeardAgo.map { .seconds(nanoseconds: $0) }, "Time since the peer was last heard."),
            ("peer_declared_dead_at_seconds", status.peerDeclaredDeadAt.map { .seconds(nanoseconds: $0) }, "When the peer was last declared dead (CLOCK_MONOTONIC)."),
            ("peer_death_silence_seconds", status.deathSilence.map { .seconds(nanoseconds: $0) }, "The silence after which the peer was last declared dead."),
            ("took_all_buckets_at_seconds", status.tookAllAt.map { .seconds(nanoseconds: $0) }, "When this director last took every bucket (CLOCK_MONOTONIC)."),
            ("took_buckets_at_seconds", status.tookBucketsAt.map { .seconds(nanoseconds: $0) }, "When this director last took buckets over (CLOCK_MONOTONIC)."),
            ("last_handover_gap_seconds", status.lastHandoverGap.map { .seconds(nanoseconds: $0) }, "The longest time buckets had no owner in the last handover."),
            ("longest_turn_seconds", .seconds(nanoseconds: status.longestTurn), "The longest sync thread turn."),
            ("longest_turn_cpu_seconds", .seconds(nanoseconds: status.longestTurnCPU), "The most CPU time one sync thread turn used."),
            ("longest_wait_between_turns_seconds", .seconds(nanoseconds: status.longestWait), "The longest wait between two sync thread turns."),
        ]
        for (name, value, help) in gauges {
            guard let value else { continue }
            var family = MetricFamily("director_sync_\(name)", .gauge, help)
            family.add(value)
            families.append(family)
        }
        let lag = board.lagCounts()
        var cumulative: UInt64 = 0
        var buckets: [(bound: Double, count: UInt64)] = []
        for (bucket, count) in lag.enumerated() {
            cumulative += count
            // One bound per power of two: a fixed set, small enough to read.
            if bucket % 4 == 3, bucket < lag.count - 1 { buckets.append((Double(LatencyHistogram.upperBound(of: bucket)) / 1e6, cumulative)) }
        }
        var lagFamily = MetricFamily("director_sync_replica_lag_seconds", .histogram, "From the peer's change to its replica applied here.")
        lagFamily.addHistogram(buckets, count: cumulative, sum: Double(board.lagSumMicroseconds()) / 1e6)
        families.append(lagFamily)
        return families
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
        syncJSONReport(sync).map { JSONReport.encode($0) } ?? "{}\n"
    }

    func syncJSONReport(_ sync: SyncThread) -> SyncJSONReport? {
        let status = sync.status.withLock { $0 }
        guard let peer = configuration.peer else { return nil }
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
        return report
    }

    func bucketsJSON() -> String { JSONReport.encode(bucketsJSONReport()) }

    func bucketsJSONReport() -> BucketsJSONReport {
        let owned = currentOwnership
        return BucketsJSONReport(node: configuration.nodeID, bucketCount: owned.bucketCount, ownedCount: UInt32(owned.ownedCount),
                                 owned: owned.ownedRanges.map { [$0.lowerBound, $0.upperBound] })
    }
}
