import DirectorCore
import DirectorSync

extension Director {
    /// Checks what the live services say to check (at start, and after every reload or live
    /// change); verdicts on servers no longer checked are forgotten.
    func refreshHealthChecks() {
        let (targets, served) = live.withLock { ($0.healthTargets, $0.servedKeys) }
        checker.check(targets)
        let (before, after) = health.withLock { board in
            let before = board.down
            board.keep(own: Set(targets.map(\.key)), peer: served)
            return (before, board.down)
        }
        applyHealth(before: before, after: after, reason: "no longer checked")
    }

    /// The checker's news: a server this director checks went down or came back.
    func ownHealthChanged(_ key: HealthKey, isUp: Bool, why: String) {
        let (before, after) = health.withLock { board in
            let before = board.down
            board.setOwn(key, isUp: isUp)
            return (before, board.down)
        }
        if isUp { Log.info("health: \(key) passes its checks here: \(why)") } else { Log.warning("health: \(key) fails its checks here: \(why)") }
        sync?.healthChanged()
        applyHealth(before: before, after: after, reason: "this director's checks")
    }

    /// The peer's view (from the sync thread).
    func peerReportedHealth(version: UInt64, reports: [ServerHealthReport]) {
        // Only servers this director has count (and are kept): a peer's other servers say
        // nothing about this side's table, and must not grow it without bound.
        let served = live.withLock { $0.servedKeys }
        let (before, after) = health.withLock { board in
            let before = board.down
            board.takePeer(version: version, reports: reports.filter { served.contains($0.server) })
            return (before, board.down)
        }
        applyHealth(before: before, after: after, reason: "node \(configuration.peer?.nodeID ?? 0)'s checks")
    }

    /// The peer died or restarted: its view no longer counts.
    func forgetPeerHealth() {
        let (before, after) = health.withLock { board in
            let before = board.down
            board.forgetPeer()
            return (before, board.down)
        }
        applyHealth(before: before, after: after, reason: "the peer's view forgotten")
    }

    /// This director's own view, for the peer.
    func ownHealthReports() -> [ServerHealthReport] {
        checker.statuses.withLock { $0 }.sorted { $0.key < $1.key }.map { ServerHealthReport($0.key, isUp: $0.value.isUp) }
    }

    /// Asks for a new snapshot when the pair's verdict changed, and says what changed. The
    /// maintenance thread builds it (within 20 ms): the sync thread, which hears the peer's view
    /// and its death, must not spend a snapshot's milliseconds in a turn.
    private func applyHealth(before: Set<HealthKey>, after: Set<HealthKey>, reason: String) {
        guard before != after else { return }
        for key in after.subtracting(before).sorted() {
            Log.warning("health: \(key) is out of service (\(reason)): no new connections go to it")
            notifier.notify(["server", "down", key.serviceName, key.serverName])
        }
        for key in before.subtracting(after).sorted() {
            Log.info("health: \(key) is back in service (\(reason))")
            notifier.notify(["server", "up", key.serviceName, key.serverName])
        }
        publishServicesSoon()
    }

    /// The health checks' metrics.
    func healthMetricFamilies() -> [MetricFamily] {
        var checks = MetricFamily("director_health_checks_total", .counter, "Health checks run by this director, by result.")
        checks.add(checker.passedTotal.load(ordering: .relaxed), [("result", "passed")])
        checks.add(checker.failedTotal.load(ordering: .relaxed), [("result", "failed")])
        let (ownDown, pairDown) = health.withLock { ($0.ownDown.count, $0.down.count) }
        var down = MetricFamily("director_real_servers_down", .gauge,
                                "Real servers out of service: by this director's own checks (here), or by the pair's verdict (pair).")
        down.add(UInt64(ownDown), [("view", "here")])
        down.add(UInt64(pairDown), [("view", "pair")])
        var notifications = MetricFamily("director_notifications_total", .counter, "Runs of the notify command, by outcome.")
        notifications.add(notifier.ran.load(ordering: .relaxed), [("result", "run")])
        notifications.add(notifier.failed.load(ordering: .relaxed), [("result", "failed")])
        return [checks, down, notifications]
    }
}
