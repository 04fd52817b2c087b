import DirectorLab
import Foundation
import Testing

extension LabSuites {
    /// What an operator sees: per-server connections and traffic that match what the real
    /// servers served, and a connection listing that holds every live download.
    @Suite("Lab: per-server statistics and the connection listing")
    struct ObservationLabTests {
        static func json(_ arguments: [String], _ director: LabDirector) throws -> [String: Any] {
            let output = try Shell.run([LabDirector.binaryPath()] + arguments + ["--json", "--socket", director.controlSocket]).output
            return try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], "\(output)")
        }

        @Test("2,000 requests (wrr): each real server's new connections in services --stats --json equal the requests its nginx logged; packets add up per service and to the frames forwarded; --rate shows the traffic")
        func perServerCountsMatchTheServers() throws {
            let lab = Lab(prefix: "tob")
            defer { lab.tearDown() }
            try lab.setUp(largeFileMegabytes: 1)
            var settings = LabDirector.Settings()
            settings.scheduler = "wrr"
            let director = try LabDirector(lab: lab, index: 0, settings: settings)
            defer { director.stop() }
            try director.start()
            usleep(1_100_000)   // the rates' first samples before the traffic
            for client in Lab.clientAddresses.prefix(2) { _ = try lab.fetchMany(path: "/index.html", count: 1000, from: client) }
            usleep(1_200_000)   // the workers publish every 100 ms, the rates take a sample every second
            let rate = try ObservationLabTests.json(["services", "--rate"], director)
            let report = try ObservationLabTests.json(["services", "--stats"], director)
            let service = try #require((report["services"] as? [[String: Any]])?.first)
            let servers = try #require(service["real_servers"] as? [[String: Any]])
            func stats(_ object: [String: Any]) -> [String: UInt64] {
                ((object["stats"] as? [String: Any]) ?? [:]).compactMapValues { ($0 as? NSNumber)?.uint64Value }
            }
            let counted = servers.map { stats($0)["connections"] ?? 0 }
            let served = (0..<3).map { lab.requestsServed($0) }
            let packets = servers.map { stats($0)["packets"] ?? 0 }
            // With the fast path (DIRECTOR_LAB_FAST_PATH=xdp) the program forwards part of it.
            let counters = try director.stats()
            // A server's packets are counted before the transmit ring, so a frame the full ring
            // dropped is counted there too (and as drop_transmit_ring_full, which in direct routing,
            // where no reply passes the director, counts nothing else).
            let forwarded = (counters["frames_forwarded"] ?? 0) + (counters["fast_path_redirected"] ?? 0) + (counters["drop_transmit_ring_full"] ?? 0)
            let rates = ((rate["services"] as? [[String: Any]])?.first?["rates"] as? [String: Any]) ?? [:]
            let perSecond = (rates["connections_per_second"] as? NSNumber)?.doubleValue ?? 0
            print("per-server statistics: director counted \(counted) new connections, nginx logged \(served) requests; packets \(packets) "
                  + "(service \(stats(service)["packets"] ?? 0), frames forwarded \(forwarded), \(counters["fast_path_redirected"] ?? 0) of them by the XDP program); \(String(format: "%.0f", perSecond)) connections/s over the last seconds")
            #expect(served.reduce(0, +) == 2000, "every request was served")
            #expect(counted == served.map(UInt64.init), "the director's count per server is what each server served")
            #expect(packets.reduce(0, +) == stats(service)["packets"], "the service's packets are its servers'")
            #expect(packets.reduce(0, +) == forwarded, "every frame sent towards a server is counted at it")
            #expect(stats(service)["connections"] == 2000 && (stats(service)["bytes"] ?? 0) > 2000 * 100)
            #expect(perSecond > 0, "--rate saw the traffic")
            #expect(servers.allSatisfy { $0["health"] as? String == "unchecked" && $0["weight"] as? Int != nil && $0["mac"] as? String != nil })
            let text = try Shell.run([LabDirector.binaryPath(), "services", "--stats", "--socket", director.controlSocket]).output
            #expect(text.contains("Conns") && text.contains("InPkts") && text.contains("\(Lab.realServerAddress(2)):80"), "\(text)")
        }

        @Test("director connections --json during 200 rate-limited downloads lists each as this director's ESTABLISHED connection to a real server; filters and the limit narrow it")
        func connectionListingHoldsEveryDownload() throws {
            let lab = Lab(prefix: "toc")
            defer { lab.tearDown() }
            try lab.setUp(largeFileMegabytes: 1)
            let director = try LabDirector(lab: lab, index: 0, settings: LabDirector.Settings())
            defer { director.stop() }
            try director.start()
            let batch = try FailoverLabTests.Batch(lab)
            usleep(3_000_000)
            let live = try lab.inNamespace(lab.clientNamespace, ["ss", "-Htn", "state", "established", "dst", "\(Lab.virtualAddress):80"]).output
                .split(separator: "\n").compactMap { line in line.split(separator: " ").first { $0.hasPrefix("198.18.1.") }.map(String.init) }
            let listing = try ObservationLabTests.json(["connections"], director)
            let connections = try #require(listing["connections"] as? [[String: Any]])
            let established = Set(connections.filter { $0["state"] as? String == "ESTABLISHED" && $0["owner"] as? String == "own" }
                .compactMap { $0["client"] as? String })
            let toServers = Set(connections.compactMap { $0["real_server"] as? String })
            let oneClient = try ObservationLabTests.json(["connections", "--client", Lab.clientAddresses[1]], director)["connections"] as? [[String: Any]] ?? []
            let limited = try ObservationLabTests.json(["connections", "--limit", "7"], director)
            let server = "\(Lab.realServerAddress(0)):80"
            let oneServer = try ObservationLabTests.json(["connections", "--server", server], director)["connections"] as? [[String: Any]] ?? []
            let text = try Shell.run([LabDirector.binaryPath(), "connections", "--limit", "3", "--socket", director.controlSocket]).output
            let result = try batch.finish(lab, event: DownloadStalls.realtimeSeconds())
            print("connection listing: \(live.count) downloads established at the clients, \(connections.count) connections listed "
                  + "(\(established.count) own ESTABLISHED), to \(toServers.sorted()); \(oneClient.count) from one client; "
                  + "\(result.intact)/\(result.started) downloads intact; director connections --limit 3:\n\(text)")
            #expect(live.count == result.started, "every download was running when listed")
            #expect(Set(live).isSubset(of: established), "every live download is listed: missing \(Set(live).subtracting(established).sorted().prefix(5))")
            #expect(toServers == Set((0..<3).map { "\(Lab.realServerAddress($0)):80" }))
            #expect(oneClient.count == live.filter { $0.hasPrefix(Lab.clientAddresses[1] + ":") }.count && !oneClient.isEmpty)
            #expect((limited["connections"] as? [Any])?.count == 7 && limited["truncated"] as? Bool == true)
            #expect(!oneServer.isEmpty && oneServer.allSatisfy { $0["real_server"] as? String == server })
            #expect(connections.allSatisfy { (($0["expires_in_seconds"] as? NSNumber)?.doubleValue ?? 0) > 0 && $0["proven"] as? Bool != nil })
            #expect(text.contains("ESTABLISHED") && text.contains("more connections match"), "\(text)")
            #expect(result.intact == result.started, "listing stopped no download")
        }

        static let metricsListen = "127.0.0.1:9117"

        /// `/metrics` of `director`, fetched by user nobody from inside the director's namespace.
        static func scrape(_ lab: Lab, _ index: Int, path: String = "/metrics") throws -> Shell.Result {
            try lab.inNamespace(lab.directorNamespace(index), ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                                               "curl", "-sS", "--max-time", "5", "http://\(metricsListen)\(path)"], check: false)
        }

        @Test("the pair serves /metrics over HTTP to a user without privileges during 4,000 connections: summed over both directors, each real server's connections match its nginx log within 1 %; promtool check metrics finds nothing to say")
        func metricsOverHTTP() throws {
            let lab = Lab(prefix: "tom", directors: 2)
            defer { lab.tearDown() }
            try lab.setUp(largeFileMegabytes: 1)
            var settings = LabDirector.Settings()
            settings.metricsListen = ObservationLabTests.metricsListen
            let directors = try lab.startPair(settings: settings)
            defer { for director in directors { director.stop() } }
            let curls = try Lab.clientAddresses.enumerated().map { index, client in
                try Shell.spawn(["ip", "netns", "exec", lab.clientNamespace, "curl", "-s", "--parallel", "--parallel-immediate", "--parallel-max", "8",
                                 "--max-time", "20", "-H", "Connection: close", "--interface", client, "-o", "/dev/null",
                                 "http://\(Lab.virtualAddress)/index.html?n=[1-1000]"], output: "\(lab.stateDirectory)/requests-\(index).log")
            }
            var scrapesDuring = 0, failedScrapes: [String] = []
            // A curl is looked at until it has exited (and been reaped) once; the loop ends by
            // itself after the curls' own --max-time.
            var running = curls
            let deadline = Date().addingTimeInterval(30)
            while !running.isEmpty && Date() < deadline {
                running.removeAll { Shell.exitStatus($0) != nil }
                for index in 0..<2 {
                    let result = try ObservationLabTests.scrape(lab, index)
                    if result.status == 0, result.output.contains("director_real_server_connections_total{") { scrapesDuring += 1 } else {
                        failedScrapes.append("\(result.status) \(result.errorOutput)")
                    }
                }
                usleep(100_000)
            }
            for curl in running { Shell.wait(curl) }
            usleep(300_000)   // the workers publish every 100 ms
            let texts = try (0..<2).map { try ObservationLabTests.scrape(lab, $0).output }
            var counted: [String: Double] = [:]
            for text in texts {
                for sample in LabDirector.samples(text) where sample.name == "director_real_server_connections_total" {
                    counted[sample.labels["real_server"] ?? "?", default: 0] += sample.value
                }
            }
            let served = (0..<3).map { lab.requestsServed($0) }
            let counts = (0..<3).map { counted["\(Lab.realServerAddress($0)):80"] ?? 0 }
            let byNode = texts.map { LabDirector.summed($0)["real_server_connections"] ?? 0 }
            print("metrics over HTTP: \(scrapesDuring) scrapes by nobody during the requests; connections counted by the pair \(counts.map { Int($0) }) "
                  + "(node 1 \(byNode[0]), node 2 \(byNode[1])), nginx logged \(served)")
            #expect(failedScrapes.isEmpty, "\(failedScrapes.prefix(3))")
            #expect(scrapesDuring >= 2)
            #expect(served.reduce(0, +) == 4000, "every request was served")
            for (count, logged) in zip(counts, served) {
                #expect(abs(count - Double(logged)) <= Double(logged) * 0.01, "counted \(count), served \(logged)")
            }
            #expect(byNode.allSatisfy { $0 > 0 }, "both directors forwarded a share")
            for text in texts {
                #expect(text.contains("director_build_info{node=") && text.contains("# HELP director_real_server_active_connections "))
                #expect(!text.contains("# TYPE director_frames_received_total counter\n#"), "every family has samples")
            }
            if FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool") {
                for text in texts {
                    let lint = try Shell.run(["promtool", "check", "metrics"], input: text, check: false)
                    #expect(lint.status == 0 && lint.output.isEmpty && lint.errorOutput.isEmpty, "promtool: \(lint.output)\(lint.errorOutput)")
                }
            } else {
                print("metrics over HTTP: promtool is not installed here (Debian's prometheus package has it); the text was parsed, not linted")
                #expect(texts.allSatisfy { LabDirector.samples($0).count > 100 })
            }
            let notFound = try lab.inNamespace(lab.directorNamespace(0), ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                                                          "http://\(ObservationLabTests.metricsListen)/nothing"]).output
            let post = try lab.inNamespace(lab.directorNamespace(0), ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                                                                      "http://\(ObservationLabTests.metricsListen)/metrics"]).output
            #expect(notFound == "404" && post == "405")
        }

        /// The browser script (Tests/Browser/status_page.py).
        static let browserScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Browser/status_page.py").path

        @Test("the status page in headless Chromium (the pair, 200 requests/s): loads without a console error, shows the pair and the services, and shows rs2 down within one refresh of the director saying so",
              .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium")
                       && FileManager.default.fileExists(atPath: "/usr/lib/python3/dist-packages/websocket"),
                       "needs Debian's chromium and python3-websocket (scripts/install-dependencies.sh installs them)"))
        func statusPageInABrowser() throws {
            let lab = Lab(prefix: "tsp", directors: 2)
            defer { lab.tearDown() }
            try lab.setUp(largeFileMegabytes: 1)
            var settings = LabDirector.Settings()
            settings.metricsListen = ObservationLabTests.metricsListen
            settings.healthCheck = HealthCheckLabTests.check
            let directors = try lab.startPair(settings: settings)
            defer { for director in directors { director.stop() } }
            let requests = PacedRequests(lab, perSecond: 200, seconds: 12)
            usleep(2_000_000)
            let screenshot = lab.stateDirectory + "/status-page.png"
            let run = try lab.inNamespace(lab.directorNamespace(0), [
                "/usr/bin/python3", ObservationLabTests.browserScript, "http://\(ObservationLabTests.metricsListen)/", HealthCheckLabTests.rs2,
                "\(lab.stateDirectory)/\(Lab.realServerName(1))/unhealthy", screenshot,
            ], check: false)
            _ = requests.finish()
            // Kept for the README (`Documentation/status-page.png` is this file from a run).
            let kept = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent(".build/status-page.png").path
            try? FileManager.default.removeItem(atPath: kept)
            try? FileManager.default.copyItem(atPath: screenshot, toPath: kept)
            let result = try #require((try? JSONSerialization.jsonObject(with: Data(run.output.utf8))) as? [String: Any],
                                      "the browser script said: \(run.output)\(run.errorOutput)")
            let directorDown = try #require(result["director_down_after_s"] as? Double, "\(result)")
            let pageDown = try #require(result["page_down_after_s"] as? Double, "\(result)")
            let refresh = (result["refresh_ms"] as? Double ?? 0) / 1000
            let errors = result["errors"] as? [String] ?? ["?"]
            print(String(format: "status page: rs2 down in /status.json %.2f s after its /health failed, on the page %.2f s after (%.2f s later; refresh %.1f s); console errors: \(errors)",
                         directorDown, pageDown, pageDown - directorDown, refresh))
            #expect(result["title"] as? String == "director")
            #expect(errors.isEmpty, "the page raised no console error: \(errors)")
            #expect(pageDown - directorDown <= refresh + 0.5, "shown within one refresh of the director's verdict")
            #expect(FileManager.default.fileExists(atPath: screenshot))
        }
    }
}
