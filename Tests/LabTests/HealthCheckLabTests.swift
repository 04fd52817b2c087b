import DirectorLab
import Foundation
import Testing

extension LabSuites {
    /// Health checks as keepalived's users rely on them: a real server that fails is taken out
    /// by itself, by both directors together, and put back when it recovers.
    @Suite("Lab: health checks")
    struct HealthCheckLabTests {
        enum Failure: String, CaseIterable, Sendable, CustomTestStringConvertible {
            case nginxStopped = "nginx stopped"
            case checkAnswers500 = "/health answers 500"
            var testDescription: String { rawValue }
            var prefix: String { self == .nginxStopped ? "thn" : "thh" }
        }

        static let rs2 = "\(Lab.realServerAddress(1)):80"
        /// interval 0.5 s, rise 2, fall 2: out within 1 s + 1 s, back within 1 s + 1 s.
        static let check = "{ type: http, path: /health, status: 200, body: ok, interval: 0.5, timeout: 0.4, rise: 2, fall: 2 }"

        /// What `director services` says of `server`'s health: "up" or "down" (the pair's verdict).
        static func health(of server: String, at director: LabDirector) -> String? {
            let listing = (try? Shell.run([LabDirector.binaryPath(), "services", "--socket", director.controlSocket], check: false).output) ?? ""
            guard let line = listing.split(separator: "\n").first(where: { $0.contains("-> \(server) ") }) else { return nil }
            if line.contains(" down (") { return "down" }
            if line.contains(" up (") { return "up" }
            return nil
        }

        /// Polls both directors every 20 ms until each says `state` of `server`; returns when
        /// each first did (monotonic seconds).
        static func whenBoth(_ directors: [LabDirector], say state: String, of server: String, within seconds: Double) -> [Double?] {
            var seen: [Double?] = directors.map { _ in nil }
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline, seen.contains(where: { $0 == nil }) {
                for (index, director) in directors.enumerated() where seen[index] == nil && health(of: server, at: director) == state {
                    seen[index] = Double(Lab.monotonicNanoseconds()) / 1e9
                }
                usleep(20_000)
            }
            return seen
        }

        /// When `director` logged that `server` went out of (`down`) or back into service, and why
        /// (its own checks or the peer's): the director's own clock, to the millisecond.
        static func logged(_ state: String, of server: String, at director: LabDirector) -> [(realtime: Double, line: String)] {
            let marker = state == "down" ? "health: \(server) in tcp:\(Lab.virtualAddress):80 is out of service"
                                         : "health: \(server) in tcp:\(Lab.virtualAddress):80 is back in service"
            return director.log().split(separator: "\n").filter { $0.contains(marker) }.compactMap { line in
                guard let stamp = Lab.parseLogStamp(line.prefix(24)) else { return nil }
                return (stamp, String(line))
            }
        }

        @Test("200 requests/s through the pair (mh): rs2 fails and is out of service on both directors within fall × interval + 1 s, no request fails after that; it recovers and has its share again within rise × interval + 1 s; notify runs for each change",
              arguments: Failure.allCases)
        func serverFailsAndRecovers(_ failure: Failure) throws {
            let lab = Lab(prefix: failure.prefix, directors: 2)
            defer { lab.tearDown() }
            try lab.setUp(largeFileMegabytes: 1)
            let notifyLog = lab.stateDirectory + "/notify.log"
            var settings = LabDirector.Settings()
            settings.scheduler = "mh"
            settings.healthCheck = HealthCheckLabTests.check
            settings.notifyCommand = ["/bin/sh", "-c", "echo \"$*\" >> \(notifyLog)", "notify"]
            let directors = try lab.startPair(settings: settings)
            defer { for director in directors { director.stop() } }
            for server in 0..<3 {
                let up = HealthCheckLabTests.whenBoth(directors, say: "up", of: "\(Lab.realServerAddress(server)):80", within: 5)
                #expect(!up.contains(nil), "both directors check rs\(server + 1) and find it up")
            }

            let requests = PacedRequests(lab, perSecond: 200, seconds: 14)
            usleep(3_000_000)
            let failedAt = Double(Lab.monotonicNanoseconds()) / 1e9, failedAtWall = Date().timeIntervalSince1970
            switch failure {
            case .nginxStopped: try lab.stopWebServer(1)
            case .checkAnswers500: try lab.setHealth(1, healthy: false)
            }
            let down = HealthCheckLabTests.whenBoth(directors, say: "down", of: HealthCheckLabTests.rs2, within: 5)
            // The listing gives the pair's verdict, which B's checks can reach a check interval
            // before A's own do: read A's gauges once its own view has it too, or at the limit.
            // (The expectations below say what was missing if it never did.)
            var statsWhileOut = ""
            try? waitUntil(seconds: max(0.1, failedAt + 2 * 0.5 + 1 - Double(Lab.monotonicNanoseconds()) / 1e9), "A's own checks see rs2 down") {
                statsWhileOut = try Shell.run([LabDirector.binaryPath(), "stats", "--socket", directors[0].controlSocket]).output
                return statsWhileOut.contains("director_real_servers_down{node=\"1\",view=\"here\"} 1\n")
            }
            let recoverAt = failedAt + 5
            usleep(UInt32(max(0, recoverAt - Double(Lab.monotonicNanoseconds()) / 1e9) * 1e6))
            let recoveredAt = Double(Lab.monotonicNanoseconds()) / 1e9, recoveredAtWall = Date().timeIntervalSince1970
            switch failure {
            case .nginxStopped: try lab.startWebServer(1)
            case .checkAnswers500: try lab.setHealth(1, healthy: true)
            }
            let up = HealthCheckLabTests.whenBoth(directors, say: "up", of: HealthCheckLabTests.rs2, within: 5)
            let answers = requests.finish()

            let outLimit = failedAt + 2 * 0.5 + 1, backLimit = recoveredAt + 2 * 0.5 + 1
            let before = answers.filter { $0.startedAt < failedAt }
            let detecting = answers.filter { $0.startedAt >= failedAt && $0.startedAt < outLimit }
            let out = answers.filter { $0.startedAt >= outLimit && $0.startedAt < recoveredAt }
            let back = answers.filter { $0.startedAt >= backLimit }
            func failures(_ list: [PacedRequests.Answer]) -> Int { list.filter { $0.failure != nil }.count }
            func share(_ list: [PacedRequests.Answer]) -> Double { Double(list.filter { $0.server == "rs2" }.count) / Double(max(1, list.count)) }
            // When each director changed its verdict, by its own log (its clock, to the ms): polling
            // the listing from here would measure the CLI's start-up on a busy machine as well.
            let loggedDown = directors.map { HealthCheckLabTests.logged("down", of: HealthCheckLabTests.rs2, at: $0) }
            let loggedUp = directors.map { HealthCheckLabTests.logged("up", of: HealthCheckLabTests.rs2, at: $0) }
            let outAt = loggedDown.map { $0.first?.realtime }, backAt = loggedUp.map { $0.first?.realtime }
            func after(_ time: Double?, _ reference: Double) -> String { time.map { String(format: "%.3f s", $0 - reference) } ?? "never" }
            print("health checks, \(failure.rawValue): \(answers.count) requests at 200/s; rs2 out of service on A after \(after(outAt[0], failedAtWall)), "
                  + "on B after \(after(outAt[1], failedAtWall)); \(failures(detecting)) of \(detecting.count) requests failed during detection, "
                  + "\(failures(out)) of \(out.count) after it; rs2 back on A after \(after(backAt[0], recoveredAtWall)), on B after \(after(backAt[1], recoveredAtWall)); "
                  + String(format: "rs2's share %.1f %% before, %.1f %% while out, %.1f %% once back; ", share(before) * 100, share(out) * 100, share(back) * 100)
                  + "failures: \(failures(answers)) in all (first: \(answers.first { $0.failure != nil }?.failure ?? "none")); "
                  + "failures after detection: \(answers.filter { $0.failure != nil && $0.startedAt >= outLimit }.map { "\(String(format: "%.2f", $0.startedAt - failedAt)) s \($0.failure ?? "")" })")

            print("health checks, \(failure.rawValue), as the directors logged it: \((loggedDown + loggedUp).flatMap { $0.map(\.line) })")

            #expect(answers.count >= 2700, "the requests kept their pace")
            #expect(failures(before) == 0)
            #expect(!down.contains(nil), "both directors' listings say rs2 is down")
            #expect(loggedDown.map(\.count) == [1, 1] && loggedUp.map(\.count) == [1, 1], "each director changed its verdict once each way")
            let outOnA = try #require(outAt[0]), outOnB = try #require(outAt[1])
            #expect(max(outOnA, outOnB) - failedAtWall <= 2 * 0.5 + 1, "out of service on both within fall × interval + 1 s")
            #expect(abs(outOnA - outOnB) <= 0.25, "the first to see it tells the other at once (a lost message would cost up to a check interval)")
            #expect(failures(out) == 0 && share(out) == 0, "no new connection reaches rs2 once it is out, and none fails")
            #expect(!up.contains(nil), "both directors' listings say rs2 is up again")
            let backOnA = try #require(backAt[0]), backOnB = try #require(backAt[1])
            #expect(max(backOnA, backOnB) - recoveredAtWall <= 2 * 0.5 + 1, "back in service on both within rise × interval + 1 s")
            #expect(abs(backOnA - backOnB) <= 0.25, "the pair puts it back together")
            #expect(failures(back) == 0 && back.count >= 600)
            #expect(share(back) >= 0.2, "rs2 has its share again (mh gives it a third)")
            if failure == .checkAnswers500 { #expect(failures(detecting) == 0, "rs2 still served while its check failed") }
            #expect(statsWhileOut.contains("director_real_servers_down{node=\"1\",view=\"here\"} 1\n") && statsWhileOut.contains("director_real_servers_down{node=\"1\",view=\"pair\"} 1\n"),
                    "the gauges say one server is out")
            #expect(!statsWhileOut.contains("director_health_checks_total{node=\"1\",result=\"failed\"} 0\n")
                    && !statsWhileOut.contains("director_health_checks_total{node=\"1\",result=\"passed\"} 0\n"))

            let notes = (try? String(contentsOfFile: notifyLog, encoding: .utf8)) ?? ""
            let lines = notes.split(separator: "\n")
            #expect(lines.filter { $0 == "server down tcp:\(Lab.virtualAddress):80 \(HealthCheckLabTests.rs2)" }.count == 2, "each director notified rs2's failure: \(notes)")
            #expect(lines.filter { $0 == "server up tcp:\(Lab.virtualAddress):80 \(HealthCheckLabTests.rs2)" }.count == 2, "and its recovery: \(notes)")
            #expect(lines.filter { $0.hasPrefix("buckets taken ") }.count >= 2, "and the buckets each took at start: \(notes)")
        }

        @Test("on_server_down: reset: rs2's check fails during 200 downloads; its clients get a reset at once (curl fails fast), every other download finishes intact")
        func resetPolicy() throws {
            let lab = Lab(prefix: "thr", directors: 1)
            defer { lab.tearDown() }
            try lab.setUp(largeFileMegabytes: 1)
            var settings = LabDirector.Settings()
            settings.scheduler = "mh"
            settings.healthCheck = HealthCheckLabTests.check
            settings.onServerDown = "reset"
            let director = try LabDirector(lab: lab, index: 0, settings: settings)
            defer { director.stop() }
            try director.start()
            try waitUntil(seconds: 5, "rs2 checked and up") { HealthCheckLabTests.health(of: HealthCheckLabTests.rs2, at: director) == "up" }
            let resetsBefore = try lab.snmpCounters(lab.clientNamespace)["TcpEstabResets"] ?? 0
            let batch = try FailoverLabTests.Batch(lab)
            usleep(3_000_000)
            try lab.setHealth(1, healthy: false)
            let result = try batch.finish(lab, event: DownloadStalls.realtimeSeconds())
            let stats = try director.stats()
            let resets = (try lab.snmpCounters(lab.clientNamespace)["TcpEstabResets"] ?? 0) - resetsBefore
            let broken = result.started - result.intact
            print("reset policy: rs2 failed its check during \(result.started) downloads: \(broken) broken by the director's reset "
                  + "(connections_reset \(stats["connections_reset"] ?? 0), the clients' TCP counted \(resets) resets of established connections), "
                  + "\(result.intact) intact")
            #expect(broken > 0 && broken < result.started / 2, "rs2's downloads (about a third) were reset, the others not")
            #expect(Int(stats["connections_reset"] ?? 0) >= broken, "each broken download was one the director reset")
            #expect(resets >= broken, "the clients' stacks took the director's resets as valid")
        }
        @Test("every real server of a service fails its check: new connections go to its fallback server; one back, they go to it again")
        func fallbackServer() throws {
            let lab = Lab(prefix: "thf", directors: 1)
            defer { lab.tearDown() }
            try lab.setUp(largeFileMegabytes: 1)
            var settings = LabDirector.Settings()
            settings.scheduler = "rr"
            settings.servedRealServers = [0, 1]
            settings.healthCheck = HealthCheckLabTests.check
            settings.fallbackRealServer = 2
            let firstLog = lab.stateDirectory + "/notify-1.log", secondLog = lab.stateDirectory + "/notify-2.log"
            settings.notifyCommand = ["/bin/sh", "-c", "echo \"$*\" >> \(firstLog)", "notify"]
            let director = try LabDirector(lab: lab, index: 0, settings: settings)
            defer { director.stop() }
            try director.start()
            func answers() throws -> [Substring] {
                try lab.fetchMany(path: "/whoami", count: 100, from: Lab.clientAddresses[0]).split(whereSeparator: \.isNewline).filter { $0.hasPrefix("rs") }
            }
            try waitUntil(seconds: 5, "both servers checked and up") {
                HealthCheckLabTests.health(of: "\(Lab.realServerAddress(0)):80", at: director) == "up"
                    && HealthCheckLabTests.health(of: HealthCheckLabTests.rs2, at: director) == "up"
            }
            let before = try answers()
            try lab.setHealth(0, healthy: false)
            try lab.setHealth(1, healthy: false)
            try waitUntil(seconds: 4, "both servers out of service") {
                HealthCheckLabTests.health(of: "\(Lab.realServerAddress(0)):80", at: director) == "down"
                    && HealthCheckLabTests.health(of: HealthCheckLabTests.rs2, at: director) == "down"
            }
            usleep(100_000)
            let allDown = try answers()
            let listing = try Shell.run([LabDirector.binaryPath(), "services", "--socket", director.controlSocket]).output
            try lab.setHealth(1, healthy: true)
            try waitUntil(seconds: 4, "rs2 back") { HealthCheckLabTests.health(of: HealthCheckLabTests.rs2, at: director) == "up" }
            usleep(100_000)
            let oneBack = try answers()
            print("fallback: 100 requests with both servers up: \(Set(before).sorted()); both down: \(Set(allDown).sorted()) (\(allDown.count) answered); rs2 back: \(Set(oneBack).sorted())")
            #expect(before.count == 100 && !before.contains("rs3"))
            #expect(allDown.count == 100 && allDown.allSatisfy { $0 == "rs3" }, "the fallback took every new connection")
            #expect(listing.contains("\(Lab.realServerAddress(2)):80") && listing.contains("fallback"), "\(listing)")
            #expect(oneBack.count == 100 && oneBack.allSatisfy { $0 == "rs2" }, "the fallback gives way to a server back in service")

            // A reload with another notify command: said so, and the next event goes to it.
            settings.notifyCommand = ["/bin/sh", "-c", "echo \"$*\" >> \(secondLog)", "notify"]
            try LabDirector.config(lab: lab, index: 0, settings: settings, controlSocket: director.controlSocket)
                .write(toFile: director.configPath, atomically: true, encoding: .utf8)
            let reloaded = try ReloadLabTests.reload(director)
            #expect(reloaded.output.contains("notify command changed"), "\(reloaded.output)")
            try lab.setHealth(0, healthy: true)
            let rs1Up = "server up tcp:\(Lab.virtualAddress):80 \(Lab.realServerAddress(0)):80"
            try waitUntil(seconds: 4, "rs1's return notified to the new command") {
                ((try? String(contentsOfFile: secondLog, encoding: .utf8)) ?? "").contains(rs1Up)
            }
            #expect(!((try? String(contentsOfFile: firstLog, encoding: .utf8)) ?? "").contains(rs1Up))
        }
    }
}
