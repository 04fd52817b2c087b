import DirectorLab
import Foundation
import Testing

extension LabSuites {
    /// End to end in the namespace lab: real curl clients, real nginx real servers, the real
    /// director binary.
    @Suite("Lab: one director in direct routing")
    struct DirectRoutingLabTests {
        @Test("2,000 HTTP requests, wrr 1:2:3, a 50 MB download, no host-stack interference, entries expire, path MTU discovery through the director")
        func directRouting() throws {
            let lab = Lab(prefix: "tdr")
            defer { lab.tearDown() }
            try lab.setUp()
            var settings = LabDirector.Settings()
            settings.scheduler = "wrr"
            settings.weights = [1, 2, 3]
            settings.timeouts = ["tcp_fin_wait": 2, "tcp_time_wait": 2, "tcp_close": 1, "tcp_syn_recv": 5]
            let director = try LabDirector(lab: lab, settings: settings)
            defer { director.stop() }
            try director.start()
            let hostBefore = try lab.snmpCounters(lab.directorNamespace(0))
            let serversBefore = try lab.tcpSegmentsAtRealServers()

            // Two client addresses at once, 1,000 connections each (each its own source port).
            let clients = [Lab.clientAddresses[0], Lab.clientAddresses[1]]
            nonisolated(unsafe) var outputs = [String](repeating: "", count: clients.count)
            DispatchQueue.concurrentPerform(iterations: clients.count) { index in
                outputs[index] = (try? lab.fetchMany(path: "/whoami", count: 1000, from: clients[index], parallel: 16)) ?? ""
            }
            let lines = outputs.joined(separator: "\n").split(separator: "\n")
            #expect(lines.filter { $0 == "code=200" }.count == 2000, "every request succeeds")
            let perServer = (1...3).map { server in lines.filter { $0 == "rs\(server)" }.count }
            print("dr: \(lines.filter { $0 == "code=200" }.count)/2000 succeeded; per real server (weights 1:2:3): \(perServer)")
            for (server, count) in perServer.enumerated() {
                let expected = 2000.0 * Double(settings.weights[server]) / 6.0
                #expect(abs(Double(count) - expected) <= expected * 0.10, "rs\(server + 1): \(count) requests, expected about \(Int(expected))")
            }

            #expect(try lab.downloadSHA256(path: "/" + Lab.largeFileName, from: clients[0]) == lab.largeFileSHA256(), "the 50 MB file arrives intact")

            // The router learnt the VIP from the director's ARP answer.
            let neighbour = try lab.inNamespace(lab.routerNamespace, ["ip", "neigh", "show", Lab.virtualAddress]).output
            let frontMAC = try lab.inNamespace(lab.directorNamespace(0), ["cat", "/sys/class/net/front/address"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(neighbour.contains(frontMAC), "router's entry for the VIP: \(neighbour)")

            // The director host holds the VIP and forwards IP, yet its own stack neither reset nor
            // forwarded a single frame: the guard hid them all.
            let hostAfter = try lab.snmpCounters(lab.directorNamespace(0))
            #expect(hostAfter["TcpOutRsts"] == hostBefore["TcpOutRsts"], "no RST from the director host")
            #expect(hostAfter["IpForwDatagrams"] == hostBefore["IpForwDatagrams"], "no duplicate forwarded by the director host")
            let stats = try director.stats()
            // Clients reuse source ports now and then; such a SYN finds the old entry (as in IPVS),
            // so there can be slightly fewer entries than connections.
            #expect((1900...2001).contains(stats["connections_created"] ?? 0))
            #expect(stats["drop_transmit_ring_full"] == 0 && stats["receive_ring_drops"] == 0)

            // Closed flows leave the table once their FIN_WAIT/TIME_WAIT timeouts (2 s here) pass.
            let deadline = Date().addingTimeInterval(20)
            var live = try director.stats()["connections"] ?? 0
            while live > 0 && Date() < deadline {
                usleep(250_000)
                live = try director.stats()["connections"] ?? 0
            }
            #expect(live == 0, "connections left in the table")
            print("dr: table empty \(String(format: "%.1f", 20 - deadline.timeIntervalSinceNow)) s after the last flow closed (fin_wait/time_wait 2 s)")
            let quiet = try director.stats()
            // A connection ends by expiring, or by a new one taking its place (a client port reused
            // after its FIN: `connections_reopened`).
            #expect((quiet["connections_expired"] ?? 0) + (quiet["connections_reopened"] ?? 0) == quiet["connections_created"])
            // Every creation and removal was reported as a change (the stream sync will carry).
            #expect(quiet["connection_changes_created"] == quiet["connections_created"])
            #expect(quiet["connection_changes_removed"] == quiet["connections_expired"])
            // Every TCP segment a real server received came from the director, exactly once.
            let receivedByServers = try lab.tcpSegmentsAtRealServers() - serversBefore
            print("dr: director host TcpOutRsts +\((hostAfter["TcpOutRsts"] ?? 0) - (hostBefore["TcpOutRsts"] ?? 0)), IpForwDatagrams +\((hostAfter["IpForwDatagrams"] ?? 0) - (hostBefore["IpForwDatagrams"] ?? 0)); forwarded \(quiet["frames_to_servers"] ?? 0), real servers received \(receivedByServers)")
            #expect(UInt64(receivedByServers) == quiet["frames_to_servers"], "real servers received \(receivedByServers), director forwarded \(quiet["frames_to_servers"] ?? 0)")
            // Direct routing's servers answer from the VIP: a router's ICMP errors about those answers
            // come to the director, which passes them on to the connection's server.
            try NATLabTests.checkPathMTUDiscovery(lab, directors: [director], "dr")
            #expect(director.stop() == 0, "the director stops cleanly on SIGTERM")
            let guardLeft = try lab.inNamespace(lab.directorNamespace(0), ["nft", "list", "tables"]).output
            #expect(!guardLeft.contains("director_front"), "the host-stack guard is removed on stop")
        }

        @Test("a rule-less host stack would have answered: without the guard, the director host sends RSTs")
        func guardIsWhatPreventsResets() throws {
            let lab = Lab(prefix: "tng")
            defer { lab.tearDown() }
            try lab.setUp(largeFileMegabytes: 1)
            var settings = LabDirector.Settings()
            settings.hideFramesFromHost = false
            settings.workerCPUs = [1]
            let director = try LabDirector(lab: lab, settings: settings)
            defer { director.stop() }
            try director.start()
            _ = try lab.fetchMany(path: "/whoami", count: 50, from: Lab.clientAddresses[0], parallel: 4)
            #expect((try lab.snmpCounters(lab.directorNamespace(0))["TcpOutRsts"] ?? 0) > 0)
        }
    }

    @Suite("Lab: clean-up")
    struct LabCleanupTests {
        @Test("tearDown removes what a killed run left: namespaces and the processes inside")
        func leftovers() throws {
            let lab = Lab(prefix: "tleft")
            try Shell.run(["ip", "netns", "add", "tleft-client"])
            try Shell.run(["ip", "netns", "add", "tleft-rs1"])
            let sleeper = try Shell.spawn(["ip", "netns", "exec", "tleft-rs1", "sleep", "60"], output: "/dev/null")
            usleep(200_000)
            lab.tearDown()
            #expect(!(try Shell.run(["ip", "netns", "list"]).output.contains("tleft-")))
            #expect(Shell.wait(sleeper) != 0, "the process in the namespace was stopped")
        }
    }
}
