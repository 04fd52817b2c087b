import DirectorLab
import Foundation
import Testing

extension LabSuites {
    /// Reloading the config while traffic flows, as keepalived's users do with `systemctl reload`.
    @Suite("Lab: reload")
    struct ReloadLabTests {
        /// Writes each director's config file as `settings` describe it.
        static func rewrite(_ lab: Lab, _ directors: [LabDirector], _ settings: LabDirector.Settings) throws {
            for (index, director) in directors.enumerated() {
                try LabDirector.config(lab: lab, index: index, settings: settings, controlSocket: director.controlSocket)
                    .write(toFile: director.configPath, atomically: true, encoding: .utf8)
            }
        }

        static func reload(_ director: LabDirector) throws -> Shell.Result {
            try Shell.run([LabDirector.binaryPath(), "reload", "--socket", director.controlSocket], check: false)
        }

        @Test("during 200 downloads through the pair a reload adds rs4 and reweights rs1, another removes rs3: no download breaks, new connections follow the new weights; a broken file (SIGHUP) and a changed director: setting are refused, the daemon runs on")
        func reloadDuringDownloads() throws {
            let lab = Lab(prefix: "trl", realServers: 4, directors: 2)
            defer { lab.tearDown() }
            try lab.setUp(largeFileMegabytes: 1)
            var settings = LabDirector.Settings()
            settings.scheduler = "mh"
            settings.servedRealServers = [0, 1, 2]
            settings.weights = [1, 1, 1, 1]
            let directors = try lab.startPair(settings: settings)
            defer { for director in directors { director.stop() } }
            let batch = try FailoverLabTests.Batch(lab)
            usleep(2_000_000)

            settings.servedRealServers = [0, 1, 2, 3]
            settings.weights = [3, 1, 1, 1]
            try ReloadLabTests.rewrite(lab, directors, settings)
            for director in directors {
                let reply = try ReloadLabTests.reload(director)
                #expect(reply.status == 0 && reply.output.contains("real servers added: 198.18.2.14:80 to tcp 198.18.0.100:80"), "\(reply.output)")
                #expect(reply.output.contains("weights: 198.18.2.11:80 in tcp 198.18.0.100:80 1 → 3"), "\(reply.output)")
            }
            usleep(2_000_000)
            settings.servedRealServers = [0, 1, 3]
            try ReloadLabTests.rewrite(lab, directors, settings)
            for director in directors {
                let reply = try ReloadLabTests.reload(director)
                #expect(reply.output.contains("real servers removed (their connections go on until they end): 198.18.2.13:80"), "\(reply.output)")
            }
            let result = try batch.finish(lab, event: DownloadStalls.realtimeSeconds())
            #expect(result.intact == result.started, "\(result.intact) of \(result.started) downloads intact across two reloads")

            // New connections follow the new weights, 3:1:1 over rs1, rs2 and rs4; none to rs3.
            let bodies = try lab.fetchMany(path: "/whoami", count: 2000, from: Lab.clientAddresses[0])
                + lab.fetchMany(path: "/whoami", count: 2000, from: Lab.clientAddresses[1])
            let lines = bodies.split(separator: "\n")
            let counts = (1...4).map { server in lines.filter { $0 == "rs\(server)" }.count }
            let total = counts.reduce(0, +)
            let shares = counts.map { Double($0) / Double(max(total, 1)) }
            print("reload: \(result.intact)/\(result.started) downloads intact across two reloads; 4,000 new connections after them: "
                  + "rs1 \(counts[0]), rs2 \(counts[1]), rs3 \(counts[2]), rs4 \(counts[3]) (weights 3:1:-:1); " + result.stalls.summary)
            #expect(total == 4000 && counts[2] == 0)
            for (server, expected) in [(0, 0.6), (1, 0.2), (3, 0.2)] {
                #expect(abs(shares[server] - expected) <= 0.05, "rs\(server + 1) took \(shares[server]) of new connections, its weight says \(expected)")
            }
            let listing = try Shell.run([LabDirector.binaryPath(), "services", "--socket", directors[0].controlSocket]).output
            #expect(listing.contains("198.18.2.14:80") && listing.contains("Removed by a reload"), "\(listing)")

            // A broken file on SIGHUP: refused with check-config's message; the daemon runs on, unchanged.
            let a = directors[0]
            let dumped = try Shell.run([LabDirector.binaryPath(), "config", "dump", "--socket", a.controlSocket]).output
            let good = try String(contentsOfFile: a.configPath, encoding: .utf8)
            try good.replacingOccurrences(of: "weight: 3", with: "weight: heavy").write(toFile: a.configPath, atomically: true, encoding: .utf8)
            let pid = try #require(a.processID)
            kill(pid, SIGHUP)
            try waitUntil(seconds: 5, "A logs the refused reload") { a.log().contains("refused: reload") }
            #expect(a.log().contains("services[0].real_servers[0].weight: expected a whole number"), "the refusal names the field")
            #expect(Shell.exitStatus(pid) == nil, "SIGHUP did not end the daemon")
            #expect(try Shell.run([LabDirector.binaryPath(), "config", "dump", "--socket", a.controlSocket]).output == dumped, "nothing changed")

            // A director: setting: refused, naming it.
            try good.replacingOccurrences(of: "connection_capacity: 65536", with: "connection_capacity: 131072")
                .write(toFile: a.configPath, atomically: true, encoding: .utf8)
            let refused = try ReloadLabTests.reload(a)
            #expect(refused.status != 0 && refused.output.contains("director.connection_capacity"), "\(refused.output)")
            try good.write(toFile: a.configPath, atomically: true, encoding: .utf8)
            #expect(try ReloadLabTests.reload(a).output.contains("no change"))
        }

        @Test("live changes during 200 downloads (wrr): drain rs2 (its downloads finish, no new connection reaches it), add rs4 with weight 2, remove rs1; config dump shows what runs")
        func liveChanges() throws {
            let lab = Lab(prefix: "tlc", realServers: 4, directors: 1)
            defer { lab.tearDown() }
            try lab.setUp(largeFileMegabytes: 1)
            var settings = LabDirector.Settings()
            settings.scheduler = "wrr"
            settings.servedRealServers = [0, 1, 2]
            let director = try LabDirector(lab: lab, index: 0, settings: settings)
            defer { director.stop() }
            try director.start()
            func command(_ words: [String]) throws -> Shell.Result {
                try Shell.run([LabDirector.binaryPath()] + words + ["--socket", director.controlSocket], check: false)
            }
            let batch = try FailoverLabTests.Batch(lab)
            usleep(2_000_000)
            let drained = try command(["server", "drain", "198.18.0.100:80", "198.18.2.12"])
            #expect(drained.status == 0 && drained.output.contains("weights: 198.18.2.12:80 in tcp 198.18.0.100:80 1 → 0"), "\(drained.output)")
            let during = try lab.fetchMany(path: "/whoami", count: 400, from: Lab.clientAddresses[0]).split(separator: "\n")
            let result = try batch.finish(lab, event: DownloadStalls.realtimeSeconds())
            #expect(result.intact == result.started, "\(result.intact) of \(result.started) downloads intact, rs2's among them")
            #expect(during.filter { $0 == "rs2" }.isEmpty && during.filter { $0 == "code=200" }.count == 400, "no new connection reached the drained rs2")

            #expect(try command(["server", "add", "198.18.0.100:80", "198.18.2.14", "--weight", "2"]).status == 0)
            let removed = try command(["server", "remove", "198.18.0.100:80", "198.18.2.11"])
            #expect(removed.output.contains("real servers removed (their connections go on until they end): 198.18.2.11:80"), "\(removed.output)")
            let refused = try command(["server", "weight", "198.18.0.100:80", "198.18.2.13", "99999"])
            #expect(refused.status != 0 && refused.output.contains("WEIGHT: expected a whole number from 0 to 65535"), "\(refused.output)")
            let after = try lab.fetchMany(path: "/whoami", count: 600, from: Lab.clientAddresses[1]).split(separator: "\n")
            let counts = (1...4).map { server in after.filter { $0 == "rs\(server)" }.count }
            print("live changes: \(result.intact)/\(result.started) downloads intact across a drain; 400 requests after it, rs2 \(during.filter { $0 == "rs2" }.count); "
                  + "600 after adding rs4 (weight 2) and removing rs1: rs1 \(counts[0]), rs2 \(counts[1]), rs3 \(counts[2]), rs4 \(counts[3])")
            #expect(counts[0] == 0 && counts[1] == 0 && counts[2] + counts[3] == 600)
            #expect(abs(Double(counts[3]) / 600 - 2.0 / 3) <= 0.05, "wrr gives rs4 two thirds by its weight: \(counts)")
            let dump = try command(["config", "dump"]).output
            #expect(dump.contains("{ address: 198.18.2.14, port: 80, weight: 2 }") && dump.contains("{ address: 198.18.2.12, port: 80, weight: 0 }")
                    && !dump.contains("198.18.2.11"), "\(dump)")
        }
    }
}
