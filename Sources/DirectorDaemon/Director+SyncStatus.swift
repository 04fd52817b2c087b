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
