import ArgumentParser
import DirectorLab
import Foundation

/// The pair under sustained load for minutes: SYNs of many distinct flows at a set rate (every
/// one a new connection, so a record for the peer) plus batches of rate-limited downloads, while
/// the directors' sync counters are sampled, and, with `--restart-every`, one director or the
/// other killed (SIGKILL) and started again at that period. Reports false takeovers (peer deaths
/// declared while the peer lived: every death beyond one per restart of the other side), the
/// longest sync-thread turn and the latest heartbeat of any director's life, replica lag, the
/// records per second each sync thread carried, and, at the end, the detection time of a real
/// SIGKILL under the same load.
struct SyncSoak: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sync-soak",
        abstract: "Run the dispatcher pair under load for minutes; count false takeovers, measure replica lag and detection.")
    @OptionGroup var options: LabOptions
    @Option(help: "Minutes of load (1–30).") var minutes = 10.0
    @Option(help: "SYNs per second of new flows (0 = as fast as the generator can).") var rate = 30_000
    @Option(help: "SCHED_FIFO priority of the sync threads (0 = ordinary scheduling).") var realtimePriority = 10
    @Option(help: "Heartbeat interval (ms).") var heartbeat = 10
    @Option(help: "Missed heartbeats that make a death (0 = the director's default).") var misses = 0
    @Option(help: "net.core.netdev_max_backlog for the run, as tuning/director-tuning sets it on a director host (0 = leave it; restored afterwards).")
    var backlog = 16_384
    @Option(help: "Kill (SIGKILL) and restart a director every this many seconds, node 1 and node 2 in turn (0 = never).")
    var restartEvery = 0.0

    /// Per director: its life's figures, kept across its restarts.
    struct Lives {
        var deathsSeen: [UInt64] = [0, 0]
        var falseDeaths = 0
        var trueDeaths = 0
        var restarts = 0
        var longestTurn: UInt64 = 0
        var longestTurnCPU: UInt64 = 0
        var latestHeartbeat: UInt64 = 0
        var longestStep: [String: UInt64] = [:]
    }

    func run() throws {
        guard minutes > 0, minutes <= 30 else { throw ValidationError("--minutes must be above 0 and at most 30") }
        // The lab's crossover link is a veth: its datagrams share the per-CPU input backlog with
        // the flood, as on a director host whose backlog is left at the kernel's 1,000.
        let backlogPath = "/proc/sys/net/core/netdev_max_backlog"
        let savedBacklog = try String(contentsOfFile: backlogPath, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        if backlog > 0 { try String(backlog).write(toFile: backlogPath, atomically: false, encoding: .utf8) }
        defer { try? savedBacklog.write(toFile: backlogPath, atomically: false, encoding: .utf8) }
        let lab = Lab(prefix: options.prefix, directors: 2)
        defer { lab.tearDown() }
        try lab.setUp(largeFileMegabytes: 1)
        var settings = LabDirector.Settings()
        settings.syncRealtimePriority = realtimePriority
        settings.heartbeatIntervalMilliseconds = heartbeat
        settings.deadAfterMissed = misses > 0 ? misses : nil
        settings.connectionCapacity = 262_144
        // Half-open entries expire within seconds, so every round of SYNs creates (and every
        // expiry removes) connections again: a steady stream of records for the sync threads.
        settings.timeouts = ["tcp_syn_recv": 2]
        let directors = try (0..<2).map { try LabDirector(lab: lab, index: $0, settings: settings) }
        defer { for director in directors { director.stop() } }
        for director in directors { try director.start() }
        usleep(1_000_000)
        let seconds = Int(minutes * 60)
        let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let flood = try Shell.spawn(["ip", "netns", "exec", lab.routerNamespace, binary, "flood", "--destination-mac", Lab.virtualMAC,
                                     "--port", "80", "--flows", "258048", "--rate", String(rate), "--seconds", String(seconds),
                                     "--count", String(rate == 0 ? 1_000_000_000 : min(1_000_000_000, rate * seconds))],
                                    output: "\(lab.stateDirectory)/flood.log")
        print("sync-soak: \(seconds) s of load: SYNs of 258,048 distinct flows at \(rate == 0 ? "full speed" : "\(rate)/s") plus batches of 40 downloads; "
            + "sync threads at \(realtimePriority == 0 ? "ordinary priority" : "SCHED_FIFO \(realtimePriority)"), heartbeat \(heartbeat) ms × \(misses > 0 ? String(misses) : "the default"); "
            + "netdev_max_backlog \(backlog > 0 ? String(backlog) : savedBacklog)")
        let started = Date()
        var previous = try directors.map { try $0.stats()["sync_records_sent"] ?? 0 }
        var peakRecords = [Double](repeating: 0, count: 2)
        var downloads: [pid_t] = []
        var intact = 0, startedDownloads = 0
        let expected = try lab.sha256(of: Lab.mediumFileName)
        var lives = Lives()
        var nextRestart = restartEvery > 0 ? restartEvery : .infinity
        var restartedSinceSample = [0, 0]
        var logLinesSeen = [0, 0]
        while Date().timeIntervalSince(started) < Double(seconds) {
            if downloads.isEmpty {
                downloads = try lab.startDownloads(Lab.mediumFileName, perClient: 10, clients: Array(Lab.clientAddresses.prefix(4)), limitRate: "200k", maxTime: 60)
                startedDownloads += 40
            }
            let pause = min(10, max(0.5, nextRestart - Date().timeIntervalSince(started)))
            usleep(UInt32(pause * 1e6))
            if Date().timeIntervalSince(started) >= nextRestart {
                // Node 1, node 2, node 1…: its life's figures first, then the restart.
                let victim = lives.restarts % 2
                try account(directors, &lives, restartedSinceSample: &restartedSinceSample)
                // What this life logged about its punctuality and its peer (the log file spans lives).
                let log = directors[victim].log().split(separator: "\n")
                for line in log[min(logLinesSeen[victim], log.count)...]
                where line.contains("a turn took") || line.contains("dead") || line.contains("withheld") || line.contains("late") {
                    print("  node \(victim + 1): \(line)")
                }
                logLinesSeen[victim] = log.count
                directors[victim].kill9()
                lives.restarts += 1
                restartedSinceSample[victim] += 1
                lives.deathsSeen[victim] = 0
                usleep(200_000)
                try directors[victim].start()
                previous[victim] = 0
                nextRestart += restartEvery
                print(String(format: "  %4.0f s: node %d killed and started again", Date().timeIntervalSince(started), victim + 1))
                continue
            }
            // Each curl is reaped once, when it is seen to have exited.
            downloads.removeAll { curl in
                guard let status = Shell.exitStatus(curl) else { return false }
                if status != 0 { print("  curl \(curl) exited with \(status) at \(Int(Date().timeIntervalSince(started))) s") }
                return true
            }
            if downloads.isEmpty {
                let batch = try lab.collectDownloads().filter { $0 == expected }.count
                if batch < 40 {
                    print("  a batch of downloads: \(batch) of 40 intact")
                    diagnose(lab, directors)
                }
                intact += batch
                downloads = []
            }
            try account(directors, &lives, restartedSinceSample: &restartedSinceSample)
            let stats = try directors.map { try $0.stats() }
            let records = stats.map { $0["sync_records_sent"] ?? 0 }
            for index in 0..<2 { peakRecords[index] = max(peakRecords[index], Double(records[index] &- previous[index]) / pause) }
            previous = records
            let lag = try directors.map { try SyncSoak.lagQuantiles($0) }
            print(String(format: "  %4.0f s: false takeovers %d; longest sync turn %.2f ms, latest heartbeat %.2f ms late; records/s %.0f/%.0f; "
                         + "replica lag p50 %@/%@ µs, p99 %@/%@ µs; frames received %d/%d",
                         Date().timeIntervalSince(started), lives.falseDeaths, Double(lives.longestTurn) / 1e6, Double(lives.latestHeartbeat) / 1e6,
                         peakRecords[0], peakRecords[1], lag[0].p50, lag[1].p50, lag[0].p99, lag[1].p99,
                         stats[0]["frames_received"] ?? 0, stats[1]["frames_received"] ?? 0))
            fflush(nil)
        }
        for curl in downloads { Shell.wait(curl) }
        intact += try lab.collectDownloads().filter { $0 == expected }.count
        try account(directors, &lives, restartedSinceSample: &restartedSinceSample)
        let lag = try directors.map { try SyncSoak.lagQuantiles($0) }
        // Finally a real death under the same load.
        let killedAt = directors[1].kill9()
        usleep(500_000)
        let declared = try directors[0].stats()["sync_peer_declared_dead_at_ns"] ?? 0
        kill(flood, SIGTERM)
        Shell.wait(flood)
        let steps = lives.longestStep.sorted { $0.key < $1.key }.map { String(format: "%@ %.2f", $0.key, Double($0.value) / 1e6) }.joined(separator: ", ")
        print("sync-soak result: false takeovers \(lives.falseDeaths) in \(seconds) s with \(lives.restarts) restarts (\(lives.trueDeaths) deaths declared for them); "
            + String(format: "longest sync-thread turn of any life %.2f ms (longest step, ms: %@), its CPU time %.2f ms at most; latest heartbeat %.2f ms late; ",
                     Double(lives.longestTurn) / 1e6, steps, Double(lives.longestTurnCPU) / 1e6, Double(lives.latestHeartbeat) / 1e6)
            + "downloads \(intact)/\(startedDownloads) intact; replica lag p50 \(lag[0].p50)/\(lag[1].p50) µs, p99 \(lag[0].p99)/\(lag[1].p99) µs; "
            + "records/s at the busiest sample \(Int(peakRecords[0]))/\(Int(peakRecords[1])); "
            + String(format: "SIGKILL of node 2 under load detected by node 1 after %.1f ms", declared > killedAt ? Double(declared - killedAt) / 1e6 : Double.nan))
    }

    /// What the lab looks like when downloads broke: the router's neighbour entry for the VIP,
    /// the clients' connections still opening, and each director's buckets and drops.
    private func diagnose(_ lab: Lab, _ directors: [LabDirector]) {
        let neighbours = (try? lab.inNamespace(lab.routerNamespace, ["ip", "neigh", "show", Lab.virtualAddress], check: false).output) ?? ""
        let opening = (try? lab.inNamespace(lab.clientNamespace, ["ss", "-tn", "state", "syn-sent"], check: false).output) ?? ""
        print("    router's entry for the VIP: \(neighbours.trimmingCharacters(in: .whitespacesAndNewlines)); "
              + "client connections in SYN-SENT: \(max(0, opening.split(separator: "\n").count - 1))")
        for (index, director) in directors.enumerated() {
            let buckets = ((try? director.buckets("show")) ?? "?").trimmingCharacters(in: .whitespacesAndNewlines)
            let drops = ((try? director.stats()) ?? [:]).filter { ($0.key.hasPrefix("drop_") || $0.key.hasPrefix("receive_ring_drops")) && $0.value > 0 }
                .sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            print("    node \(index + 1): \(buckets); \(drops.isEmpty ? "no drops" : drops)")
        }
    }

    /// Takes each director's death count and its life's longest turn and heartbeat lateness. A
    /// death is true when the other side was restarted since the last look (one per restart),
    /// false otherwise.
    private func account(_ directors: [LabDirector], _ lives: inout Lives, restartedSinceSample: inout [Int]) throws {
        for index in 0..<2 {
            let text = try Shell.run([LabDirector.binaryPath(), "stats", "--socket", directors[index].controlSocket]).output
            var deaths: UInt64 = 0
            for sample in LabDirector.samples(text) {
                let nanoseconds = UInt64(max(0, sample.value * 1e9))
                switch sample.name {
                case "director_sync_peer_deaths_total": deaths = UInt64(sample.value)
                case "director_sync_longest_turn_seconds": lives.longestTurn = max(lives.longestTurn, nanoseconds)
                case "director_sync_longest_turn_cpu_seconds": lives.longestTurnCPU = max(lives.longestTurnCPU, nanoseconds)
                case "director_sync_heartbeat_longest_lateness_seconds": lives.latestHeartbeat = max(lives.latestHeartbeat, nanoseconds)
                case "director_sync_longest_step_seconds":
                    let step = sample.labels["step"] ?? "?"
                    lives.longestStep[step] = max(lives.longestStep[step] ?? 0, nanoseconds)
                default: break
                }
            }
            let new = Int(deaths &- lives.deathsSeen[index])
            let expected = restartedSinceSample[1 - index]
            lives.trueDeaths += min(new, expected)
            lives.falseDeaths += max(0, new - expected)
            lives.deathsSeen[index] = deaths
        }
        restartedSinceSample = [0, 0]
    }

    /// The director's replica-lag quantiles (µs) as `director sync --json` gives them.
    static func lagQuantiles(_ director: LabDirector) throws -> (p50: String, p99: String) {
        let text = try Shell.run([LabDirector.binaryPath(), "sync", "--json", "--socket", director.controlSocket]).output
        let report = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
        func value(_ key: String) -> String { (report[key] as? NSNumber).map { "\($0)" } ?? "-" }
        return (value("replica_lag_p50_us"), value("replica_lag_p99_us"))
    }
}
