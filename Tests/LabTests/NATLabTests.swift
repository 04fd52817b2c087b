import DirectorLab
import Foundation
import Testing

extension LabSuites {
    /// NAT with port mapping (VIP:80 → each server's own address, port 8080) through the pair:
    /// the real servers' default gateway is the address both directors answer for with one MAC
    /// on the back segment, and each director's back filter passes only the replies of its own
    /// buckets, computed from the client endpoint.
    @Suite("Lab: NAT with port mapping")
    struct NATLabTests {
        static var settings: LabDirector.Settings {
            var settings = LabDirector.Settings()
            settings.forwarding = "nat"
            return settings
        }

        @Test("4,000 connections through the pair split about evenly, the 64 MiB download intact, servers see the clients' addresses, host stacks untouched")
        func pair() throws {
            let lab = Lab(prefix: "tnp", directors: 2, routesThroughDirectors: true)
            defer { lab.tearDown() }
            try lab.setUp(largeFileMegabytes: 64)
            var settings = NATLabTests.settings
            settings.scheduler = "mh"
            let directors = try lab.startPair(settings: settings)
            let (a, b) = (directors[0], directors[1])
            defer { a.stop(); b.stop() }
            let hostsBefore = try (0..<2).map { try lab.snmpCounters(lab.directorNamespace($0)) }

            nonisolated(unsafe) var outputs = [String](repeating: "", count: 4)
            DispatchQueue.concurrentPerform(iterations: 4) { index in
                outputs[index] = (try? lab.fetchMany(path: "/whoami", count: 1000, from: Lab.clientAddresses[index], parallel: 8)) ?? ""
            }
            let lines = outputs.joined(separator: "\n").split(separator: "\n")
            let succeeded = lines.filter { $0 == "code=200" }.count
            let perServer = (1...3).map { server in lines.filter { $0 == "rs\(server)" }.count }
            let statsA = try a.stats(), statsB = try b.stats()
            let createdA = Double(statsA["connections_created"] ?? 0), createdB = Double(statsB["connections_created"] ?? 0)
            let shareA = createdA / max(1, createdA + createdB)
            print("nat pair: \(succeeded)/4000 succeeded; per server \(perServer); node 1 created \(Int(createdA)), node 2 \(Int(createdB)) "
                + "(node 1 share \(Int((shareA * 100).rounded())) %); replies forwarded \(statsA["replies_forwarded"] ?? 0) + \(statsB["replies_forwarded"] ?? 0)")
            #expect(succeeded == 4000, "every connection succeeds")
            #expect(abs(shareA - 0.5) <= 0.1, "node 1 took \(Int(createdA)), node 2 \(Int(createdB))")
            #expect(createdA + createdB <= 4000 && createdA + createdB >= 3900, "no connection counted by both")
            // Each director translated the replies of its own connections only.
            for (name, stats) in [("node 1", statsA), ("node 2", statsB)] {
                #expect((stats["replies_forwarded"] ?? 0) >= UInt64(Double(stats["connections_created"] ?? 0) * 2), "\(name) forwarded its replies")
                #expect(stats["drop_reply_without_connection"] == 0 && stats["drop_client_next_hop_unknown"] == 0, "\(name): \(stats.filter { $0.key.hasPrefix("drop_") && $0.value > 0 })")
            }

            // The servers were reached on their own port and saw the clients' own addresses.
            let log = try String(contentsOfFile: "\(lab.stateDirectory)/rs1/access.log", encoding: .utf8)
            let translatedLines = log.split(separator: "\n").filter { $0.hasPrefix("\(Lab.realServerAddress(0)):\(Lab.translatedPort) ") }
            #expect(!translatedLines.isEmpty && translatedLines.allSatisfy { $0.contains(" 198.18.1.1") }, "rs1's access log names the clients")

            let expected = try lab.largeFileSHA256()
            for client in Lab.clientAddresses.prefix(2) {
                #expect(try lab.downloadSHA256(path: "/" + Lab.largeFileName, from: client) == expected, "the 64 MiB file arrives intact from \(client)")
            }

            try NATLabTests.checkPathMTUDiscovery(lab, directors: [a, b], "nat")

            // Neither director host's own stack forwarded or answered a frame of the flows.
            for index in 0..<2 {
                let after = try lab.snmpCounters(lab.directorNamespace(index))
                #expect(after["IpForwDatagrams"] == hostsBefore[index]["IpForwDatagrams"], "director \(index + 1)'s host forwarded nothing")
                #expect(after["TcpOutRsts"] == hostsBefore[index]["TcpOutRsts"], "director \(index + 1)'s host reset nothing")
            }
            // The servers learnt the gateway from node 1's ARP answer only.
            #expect(try b.stats()["arp_replies_sent"] == 0)
            let neighbour = try lab.inNamespace(lab.realServerNamespace(0), ["ip", "neigh", "show", Lab.natGatewayAddress]).output
            #expect(neighbour.contains(Lab.natGatewayMAC), "rs1's entry for the gateway: \(neighbour)")
        }

        /// The router's link to the clients gets an MTU of 1,400: the servers' full-size segments
        /// no longer fit it, the router says so to the VIP ("fragmentation needed"), and the
        /// directors must pass that on to the connection's server, translated, or the downloads
        /// hang (a path MTU black hole).
        static func checkPathMTUDiscovery(_ lab: Lab, directors: [LabDirector], _ name: String, ipv6: Bool = false) throws {
            try lab.inNamespace(lab.routerNamespace, ["ip", "link", "set", "client", "mtu", "1400"])
            defer { _ = try? lab.inNamespace(lab.routerNamespace, ["ip", "link", "set", "client", "mtu", "1500"]) }
            let expected = try lab.sha256(of: Lab.mediumFileName)
            let before = try directors.map { try $0.stats()["icmp_errors_relayed"] ?? 0 }.reduce(0, +)
            var intact = 0
            let clients = ipv6 ? Lab.clientAddresses6 : Lab.clientAddresses
            for client in clients {
                if try lab.downloadSHA256(path: "/" + Lab.mediumFileName, from: client,
                                          virtualAddress: ipv6 ? Lab.virtualAddress6 : Lab.virtualAddress) == expected { intact += 1 }
            }
            let relayed = try directors.map { try $0.stats()["icmp_errors_relayed"] ?? 0 }.reduce(0, +) - before
            print("\(name), path MTU 1400 on the clients' side: \(intact)/\(clients.count) downloads intact, \(relayed) ICMP errors relayed")
            #expect(intact == clients.count, "every download through the narrow link completes")
            #expect(relayed >= 1, "the router's \"fragmentation needed\" reached the servers through the directors")
        }

        @Test("both methods in one pair: DR on VIP:80 and NAT on VIP:8080 share the servers (which route by source); both go on through a director's death")
        func bothMethods() throws {
            var settings = LabDirector.Settings()
            settings.addsTranslatedService = true
            let lab = Lab(prefix: "tnb", directors: 2, routesThroughDirectors: true)
            defer { lab.tearDown() }
            try lab.setUp(largeFileMegabytes: 1)
            settings.scheduler = "mh"
            let directors = try lab.startPair(settings: settings)
            let (a, b) = (directors[0], directors[1])
            defer { a.stop(); b.stop() }
            func served(_ label: String) throws -> (direct: Int, translated: Int) {
                nonisolated(unsafe) var outputs = [String](repeating: "", count: 4)
                DispatchQueue.concurrentPerform(iterations: 4) { index in
                    let path = index % 2 == 0 ? "/whoami" : ":\(Lab.translatedPort)/whoami"
                    outputs[index] = (try? lab.fetchMany(path: path, count: 200, from: Lab.clientAddresses[index], parallel: 8)) ?? ""
                }
                let counts = outputs.map { $0.split(separator: "\n").filter { $0 == "code=200" }.count }
                let result = (counts[0] + counts[2], counts[1] + counts[3])
                print("both methods, \(label): \(result.0)/400 direct-routed and \(result.1)/400 translated requests succeeded")
                return result
            }
            let before = try served("the pair")
            #expect(before.direct == 400 && before.translated == 400)
            let statsA = try a.stats(), statsB = try b.stats()
            #expect((statsA["replies_forwarded"] ?? 0) > 0 && (statsB["replies_forwarded"] ?? 0) > 0, "both directors translated replies")
            _ = a.kill9()
            try waitUntil(seconds: 2, "B takes every bucket") { try b.buckets("show").contains("owns 1024 of 1024") }
            let after = try served("B alone")
            #expect(after.direct == 400 && after.translated == 400)
        }

        @Test("the back interface down for 2 s (the replies' ring loses its link): no worker spins, NAT requests go through again after link-up")
        func backInterfaceDown() throws {
            let lab = Lab(prefix: "tnd", routesThroughDirectors: true)
            defer { lab.tearDown() }
            try lab.setUp(largeFileMegabytes: 1)
            let director = try LabDirector(lab: lab, settings: NATLabTests.settings)
            defer { director.stop() }
            try director.start()
            func succeeded(_ count: Int) -> Int {
                ((try? lab.fetchMany(path: "/whoami", count: count, from: Lab.clientAddresses[0], parallel: 4)) ?? "")
                    .split(separator: "\n").filter { $0 == "code=200" }.count
            }
            #expect(succeeded(100) == 100)
            let pid = try #require(director.processID)
            let cpuAtStart = try PromiseUnderStressLabTests.cpuSeconds(pid)
            usleep(2_000_000)
            let cpuBefore = try PromiseUnderStressLabTests.cpuSeconds(pid)
            try lab.inNamespace(lab.directorNamespace(0), ["ip", "link", "set", "back", "down"])
            usleep(2_000_000)
            let cpuWhileDown = try PromiseUnderStressLabTests.cpuSeconds(pid) - cpuBefore
            try lab.inNamespace(lab.directorNamespace(0), ["ip", "link", "set", "back", "up"])
            try waitUntil(seconds: 10, "NAT requests succeed again") { succeeded(10) == 10 }
            let after = succeeded(100)
            print(String(format: "nat, back down 2 s: %.2f s of CPU while down (%.2f s in 2 s before); %d/100 requests after link-up",
                         cpuWhileDown, cpuBefore - cpuAtStart, after))
            #expect(cpuWhileDown < (cpuBefore - cpuAtStart) + 0.3, "something spun while the back interface was down")
            #expect(after == 100)
        }

        @Test("rr: 200 downloads across SIGKILL of a director, its return and a cut crossover: none broken")
        func failover() throws {
            let (lab, a, b) = try startPair(prefix: "tnf", scheduler: "rr", settings: NATLabTests.settings)
            defer { a.stop(); b.stop(); lab.tearDown() }
            try FailoverLabTests.failureSequence(lab, a, b)
            let stats = [try a.stats(), try b.stats()]
            print("nat failover: replies forwarded \(stats.map { $0["replies_forwarded"] ?? 0 }), replicas taken over \(stats.map { $0["replicas_taken_over"] ?? 0 }), "
                + "replies without a connection \(stats.map { $0["drop_reply_without_connection"] ?? 0 })")
        }
    }
}
