import DirectorLab
import Foundation
import Testing

extension LabSuites {
    /// Forged datagrams at the crossover link, from the peer's own address and ports (what the
    /// admission rules must let through): the director turns them away before the HMAC, its
    /// peer's heartbeats still get through, and the record stream goes on.
    @Suite("Lab: a forged sync flood")
    struct SyncFloodLabTests {
        static let labBinary = Lab.packageRoot + "/.build/debug/director-lab"
        /// The issue's figure; `DIRECTOR_SYNC_FLOOD_SECONDS` shortens it for a quick local run.
        static let seconds = ProcessInfo.processInfo.environment["DIRECTOR_SYNC_FLOOD_SECONDS"].flatMap(Int.init) ?? 60
        static let rate = 200_000

        /// `director_sync_rejected_total{channel=…,reason=…}` by channel and reason.
        static func rejections(_ director: LabDirector) throws -> [String: UInt64] {
            let text = try Shell.run([LabDirector.binaryPath(), "stats", "--socket", director.controlSocket]).output
            var counts: [String: UInt64] = [:]
            for sample in LabDirector.samples(text) where sample.name == "director_sync_rejected_total" {
                counts["\(sample.labels["channel"] ?? "?")/\(sample.labels["reason"] ?? "?")"] = UInt64(sample.value)
            }
            return counts
        }

        /// `readsTheLink`: the forger knows the incarnation A believes (it read the link), so its
        /// datagrams pass the cheap checks and each costs an HMAC; otherwise it is blind. The
        /// informed case runs only with DIRECTOR_SYNC_FLOOD_INFORMED=1: at the rate the lab can
        /// send it, one run in three so far saw a false death (README, "A forged flood"), a limit
        /// of the liveness thread's throughput, not yet removed.
        static let forgers = ProcessInfo.processInfo.environment["DIRECTOR_SYNC_FLOOD_INFORMED"] == "1" ? [false, true] : [false]

        @Test("200 k forged datagrams/s at a director's crossover address for 60 s, from its peer's address and ports: no false death, the pair stays split and synced, downloads intact",
              arguments: SyncFloodLabTests.forgers)
        func forgedFlood(readsTheLink: Bool) throws {
            let (lab, a, b) = try startPair(prefix: "tsf", scheduler: "rr", binary: try releaseDirector())
            defer { a.stop(); b.stop(); lab.tearDown() }
            let mac = try lab.inNamespace(lab.directorNamespace(0), ["cat", "/sys/class/net/cross/address"]).output
                .trimmingCharacters(in: .whitespacesAndNewlines)
            // The incarnation A believes, from its log line "… node 2 incarnation <hex> answered …".
            let believed = a.log().split(separator: "\n").first { $0.contains("node 2 incarnation") }
                .flatMap { $0.components(separatedBy: "incarnation ").last?.split(separator: " ").first.map(String.init) }
            let claim = readsTheLink ? ["--incarnation", try #require(believed, "A logged the incarnation it believes")] : []
            let before = try SyncFloodLabTests.rejections(a)
            let livenessBefore = try #require(a.schedule(ofThread: "liveness"), "A's liveness thread, by its name")
            let measureStarted = Lab.monotonicNanoseconds()
            let outputPath = "/tmp/director-lab/tsf-flood.out"
            try? FileManager.default.removeItem(atPath: outputPath)
            defer { try? FileManager.default.removeItem(atPath: outputPath) }
            let flood = try Shell.spawn(["ip", "netns", "exec", lab.directorNamespace(1), SyncFloodLabTests.labBinary, "sync-flood",
                                         "--destination-mac", mac, "--rate", String(SyncFloodLabTests.rate),
                                         "--seconds", String(SyncFloodLabTests.seconds),
                                         "--count", String(SyncFloodLabTests.rate * SyncFloodLabTests.seconds)] + claim, output: outputPath)
            var floodDone = false
            defer { if !floodDone { kill(flood, SIGTERM); _ = Shell.wait(flood) } }
            // Traffic through the pair during the flood: its connections are synced (rr: only the
            // record stream lets the peer carry them) and must arrive whole.
            usleep(2_000_000)
            let downloads = try FailoverLabTests.Batch(lab)
            let requests = try lab.fetchMany(path: "/whoami", count: 400, from: Lab.clientAddresses[0])
            let result = try downloads.finish(lab, event: DownloadStalls.realtimeSeconds())
            _ = Shell.wait(flood)
            floodDone = true
            let livenessAfter = try #require(a.schedule(ofThread: "liveness"))
            let measured = Double(Lab.monotonicNanoseconds() - measureStarted) / 1e9
            let wakeUps = Int(Double(livenessAfter.timesScheduled - livenessBefore.timesScheduled) / measured)
            let busy = Int(Double(livenessAfter.running - livenessBefore.running) / 1e6 / measured)
            let sentLine = ((try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "").split(separator: "\n").last.map(String.init) ?? ""
            let sent = sentLine.split(separator: " ").dropFirst().first.flatMap { UInt64($0) } ?? 0
            let after = try SyncFloodLabTests.rejections(a)
            func delta(_ key: String) -> UInt64 { (after[key] ?? 0) - (before[key] ?? 0) }
            let unverified = delta("sync/unverified_incarnation") + delta("liveness/unverified_incarnation")
            let authenticated = delta("sync/bad_authenticator") + delta("liveness/bad_authenticator")
            let statsA = try a.stats(), statsB = try b.stats()
            let succeeded = requests.split(separator: "\n").filter { $0 == "code=200" }.count
            print("forged sync flood (\(readsTheLink ? "the believed incarnation" : "blind")): " + sentLine.trimmingCharacters(in: .whitespacesAndNewlines)
                  + "; A refused \(unverified) for their incarnation before the HMAC, \(authenticated) paid an HMAC; "
                  + "peer deaths A \(statsA["sync_peer_deaths"] ?? 0), B \(statsB["sync_peer_deaths"] ?? 0); "
                  + "longest heartbeat lateness A \((statsA["sync_heartbeat_longest_lateness_ns"] ?? 0) / 1_000_000) ms; "
                  + "A's liveness thread woken \(wakeUps) times a second, on its CPU \(busy) ms a second; "
                  + "\(succeeded)/400 requests, \(result.intact)/\(result.started) downloads intact; " + result.stalls.summary)
            // The sender shares the two CPUs with the pair, and each forgery it writes is received
            // in its own context (veth), so it sends what the machine leaves it. Blind ones cost
            // the receiver a read each: 69–80 % of the rate on one machine with nothing else
            // running, the full rate on another. Informed ones cost an HMAC each: 77–92 %. What
            // the cases show is that a flood at that order of rate makes no false death, so the
            // floor is half the rate for both; the line printed above says what was reached.
            let planned = UInt64(SyncFloodLabTests.rate * SyncFloodLabTests.seconds)
            #expect(sent >= planned / 2, "the flood ran at half its rate or more: \(sentLine)")
            #expect(statsA["sync_peer_deaths"] == 0 && statsB["sync_peer_deaths"] == 0, "no false death on either side")
            // Woken for each forgery, A's sync and liveness threads kept their CPU busy with
            // realtime work, and the kernel held them off it (25 ms at once on the run queue in
            // one run, a heartbeat 35 ms late in another; a death is 50 ms of silence here). Read
            // in batches, a turn at a time, the flood leaves them idle most of the time: the
            // liveness thread wakes for its 100 heartbeats a second, the peer's 100, and one
            // batch per heartbeat; 1,000 leaves room for the quiet spells.
            #expect(wakeUps < 1_000, "A's liveness thread read the flood in batches: woken \(wakeUps) times a second")
            if readsTheLink {
                #expect(authenticated >= sent * 9 / 10, "the forgeries were refused by their authenticator: \(after)")
            } else {
                #expect(unverified >= sent * 9 / 10, "the forgeries were refused for their incarnation: \(after)")
                #expect(authenticated <= 1_000 + UInt64(SyncFloodLabTests.seconds) * 100, "at most the unverified-check budget paid an HMAC")
            }
            #expect(statsA["sync_caught_up"] == 1 && statsB["sync_caught_up"] == 1, "both replicas caught up")
            #expect(try a.buckets("show").contains("owns 512 of 1024 buckets: 0-511") && b.buckets("show").contains("owns 512 of 1024 buckets: 512-1023"))
            #expect(succeeded == 400)
            #expect(result.intact == result.started)
        }
    }
}
