import DirectorLab
import Foundation
import Testing

extension LabSuites {
    /// IPv6 end to end in a dual-stack lab: curl over IPv6 to the IPv6 VIP, nginx on both
    /// families, an IPv4 and an IPv6 service in one config.
    @Suite("Lab: IPv6 beside IPv4")
    struct IPv6LabTests {
        @Test("One director, an IPv4 and an IPv6 service: Neighbor Discovery for the VIP, real servers resolved and checked over IPv6, 1,000 IPv6 and 500 IPv4 requests, a 50 MB download over IPv6")
        func mixedFamilies() throws {
            let lab = Lab(prefix: "t6d", dualStack: true)
            defer { lab.tearDown() }
            try lab.setUp()
            var settings = LabDirector.Settings()
            settings.addsIPv6Service = true
            settings.healthCheck = HealthCheckLabTests.check
            let director = try LabDirector(lab: lab, settings: settings)
            defer { director.stop() }
            try director.start()
            let servers6 = (0..<lab.realServerCount).map { "[\(Lab.realServerAddress6($0))]:80" }
            try waitUntil(seconds: 10, "every IPv6 real server checked up") {
                servers6.allSatisfy { HealthCheckLabTests.health(of: $0, at: director) == "up" }
            }

            let ipv6 = try lab.fetchMany(path: "/whoami", count: 1000, from: Lab.clientAddresses6[0], virtualAddress: Lab.virtualAddress6)
            let ipv4 = try lab.fetchMany(path: "/whoami", count: 500, from: Lab.clientAddresses[0])
            let lines6 = ipv6.split(separator: "\n"), lines4 = ipv4.split(separator: "\n")
            let perServer = (1...3).map { server in lines6.filter { $0 == "rs\(server)" }.count }
            print("ipv6: \(lines6.filter { $0 == "code=200" }.count)/1000 over IPv6, \(lines4.filter { $0 == "code=200" }.count)/500 over IPv4; IPv6 per real server: \(perServer)")
            #expect(lines6.filter { $0 == "code=200" }.count == 1000, "every IPv6 request succeeds")
            #expect(lines4.filter { $0 == "code=200" }.count == 500, "every IPv4 request succeeds beside them")
            for (server, count) in perServer.enumerated() {
                #expect((200...467).contains(count), "rs\(server + 1) served \(count) of 1,000 IPv6 requests (Maglev over three: about a third)")
            }
            #expect(try lab.downloadSHA256(path: "/" + Lab.largeFileName, from: Lab.clientAddresses6[1], virtualAddress: Lab.virtualAddress6)
                    == lab.largeFileSHA256(), "the 50 MB file arrives intact over IPv6")

            // The router learnt the IPv6 VIP from the director's Neighbor Advertisement.
            let neighbour = try lab.inNamespace(lab.routerNamespace, ["ip", "-6", "neigh", "show", Lab.virtualAddress6]).output
            #expect(neighbour.lowercased().contains(Lab.virtualMAC), "router's entry for the IPv6 VIP: \(neighbour)")
            let stats = try director.stats()
            #expect((stats["neighbor_advertisements_sent"] ?? 0) > 0)
            #expect(stats["drop_real_server_unresolved"] ?? 0 == 0, "every IPv6 real server was resolved by Neighbor Discovery")
            let listing = try Shell.run([LabDirector.binaryPath(), "services", "--socket", director.controlSocket]).output
            #expect(listing.contains("TCP  [\(Lab.virtualAddress6)]:80"), "the IPv6 service is listed as ipvsadm writes it:\n\(listing)")
            #expect(director.log().contains("real server \(Lab.realServerAddress6(0)) is at"), "resolved by Neighbor Discovery")
            // The listing walks the IPv6 shard too.
            let connections = try Shell.run([LabDirector.binaryPath(), "connections", "--socket", director.controlSocket,
                                             "--service", "[\(Lab.virtualAddress6)]:80", "--client", Lab.clientAddresses6[0], "--limit", "5"]).output
            #expect(connections.contains("[\(Lab.clientAddresses6[0])]:") && connections.contains("[\(Lab.virtualAddress6)]:80")
                    && !connections.contains(Lab.virtualAddress + ":"), "IPv6 connections listed:\n\(connections)")
        }

        @Test("A pair over IPv6: 4,000 IPv6 connections split about evenly by the client bucket, none handled by both; the 64 MiB download intact")
        func pairSplitsIPv6() throws {
            let lab = Lab(prefix: "t6p", directors: 2, dualStack: true)
            defer { lab.tearDown() }
            try lab.setUp(largeFileMegabytes: 64)
            var settings = LabDirector.Settings()
            settings.addsIPv6Service = true
            let directors = try lab.startPair(settings: settings)
            defer { for director in directors { director.stop() } }

            nonisolated(unsafe) var outputs = [String](repeating: "", count: 4)
            DispatchQueue.concurrentPerform(iterations: 4) { index in
                outputs[index] = (try? lab.fetchMany(path: "/whoami", count: 1000, from: Lab.clientAddresses6[index], parallel: 8,
                                                     virtualAddress: Lab.virtualAddress6)) ?? ""
            }
            let succeeded = outputs.joined(separator: "\n").split(separator: "\n").filter { $0 == "code=200" }.count
            let created = try directors.map { Double(try $0.stats()["connections_created"] ?? 0) }
            let share = created[0] / max(1, created[0] + created[1])
            print("ipv6 pair: \(succeeded)/4000 succeeded; connections created \(Int(created[0])) + \(Int(created[1])) (\(String(format: "%.1f", share * 100)) % on node 1)")
            #expect(succeeded == 4000, "every IPv6 request succeeds")
            #expect(abs(share - 0.5) <= 0.1, "node 1 took \(share) of the connections")
            // Clients reuse a source port now and then (the entry is found again), so a few
            // connections fewer than requests; never more: no flow was handled by both.
            #expect(created[0] + created[1] <= 4000 && created[0] + created[1] >= 3900)
            let expected = try lab.largeFileSHA256()
            for client in Lab.clientAddresses6.prefix(2) {
                #expect(try lab.downloadSHA256(path: "/" + Lab.largeFileName, from: client, virtualAddress: Lab.virtualAddress6) == expected,
                        "the 64 MiB file arrives intact at \(client)")
            }
        }

        @Test("Direct routing over both families, rr: 200 IPv6 and 100 IPv4 downloads under each of SIGKILL A, A's return, SIGKILL and return of B, a cut crossover: none broken")
        func mixedFamiliesThroughFailures() throws {
            var settings = LabDirector.Settings()
            settings.addsIPv6Service = true
            let (lab, a, b) = try startPair(prefix: "t6f", scheduler: "rr", settings: settings)
            defer { a.stop(); b.stop(); lab.tearDown() }
            try FailoverLabTests.failureSequence(lab, a, b)
            let replicas = try [a, b].map { try $0.stats()["replicas_applied"] ?? 0 }
            #expect(replicas.allSatisfy { $0 > 0 }, "each side kept replicas of the other's connections: \(replicas)")
        }

        @Test("NAT over IPv6 with port mapping through the pair: 4,000 IPv6 connections split about evenly, the 64 MiB download intact, servers see the clients' addresses, path MTU discovery, the gateway learnt by Neighbor Discovery")
        func translationPair() throws {
            let lab = Lab(prefix: "t6n", directors: 2, routesThroughDirectors: true, dualStack: true)
            defer { lab.tearDown() }
            try lab.setUp(largeFileMegabytes: 64)
            var settings = LabDirector.Settings()
            settings.forwarding = "nat"
            settings.addsIPv6Service = true
            let directors = try lab.startPair(settings: settings)
            let (a, b) = (directors[0], directors[1])
            defer { a.stop(); b.stop() }

            nonisolated(unsafe) var outputs = [String](repeating: "", count: 4)
            DispatchQueue.concurrentPerform(iterations: 4) { index in
                outputs[index] = (try? lab.fetchMany(path: "/whoami", count: 1000, from: Lab.clientAddresses6[index], parallel: 8,
                                                     virtualAddress: Lab.virtualAddress6)) ?? ""
            }
            let lines = outputs.joined(separator: "\n").split(separator: "\n")
            let succeeded = lines.filter { $0 == "code=200" }.count
            let stats = try [a.stats(), b.stats()]
            let created = stats.map { Double($0["connections_created"] ?? 0) }
            let share = created[0] / max(1, created[0] + created[1])
            print("ipv6 nat pair: \(succeeded)/4000 succeeded; node 1 created \(Int(created[0])), node 2 \(Int(created[1])); "
                + "replies forwarded \(stats.map { $0["replies_forwarded"] ?? 0 })")
            #expect(succeeded == 4000, "every IPv6 connection succeeds")
            #expect(abs(share - 0.5) <= 0.1, "node 1 took \(share) of the connections")
            for (name, stats) in [("node 1", stats[0]), ("node 2", stats[1])] {
                #expect((stats["replies_forwarded"] ?? 0) >= UInt64(Double(stats["connections_created"] ?? 0) * 2), "\(name) forwarded its replies")
                #expect(stats["drop_reply_without_connection"] == 0 && stats["drop_client_next_hop_unknown"] == 0,
                        "\(name): \(stats.filter { $0.key.hasPrefix("drop_") && $0.value > 0 })")
            }
            let log = try String(contentsOfFile: "\(lab.stateDirectory)/rs1/access.log", encoding: .utf8)
            let translated = log.split(separator: "\n").filter { $0.hasPrefix("\(Lab.realServerAddress6(0)):\(Lab.translatedPort) ") }
            #expect(!translated.isEmpty && translated.allSatisfy { $0.contains(" 2001:2:0:1::1") }, "rs1 was reached on its own port and saw the clients")
            let expected = try lab.largeFileSHA256()
            #expect(try lab.downloadSHA256(path: "/" + Lab.largeFileName, from: Lab.clientAddresses6[2], virtualAddress: Lab.virtualAddress6) == expected,
                    "the 64 MiB file arrives intact over IPv6 NAT")
            try NATLabTests.checkPathMTUDiscovery(lab, directors: [a, b], "ipv6 nat", ipv6: true)
            let neighbour = try lab.inNamespace(lab.realServerNamespace(0), ["ip", "-6", "neigh", "show", Lab.natGatewayAddress6]).output
            #expect(neighbour.lowercased().contains(Lab.natGatewayMAC), "rs1's entry for the IPv6 gateway: \(neighbour)")
        }

        @Test("NAT over IPv6 in a mixed-family pair, rr: 200 IPv6 downloads under each of SIGKILL A, A's return, SIGKILL and return of B, a cut crossover: none broken")
        func translationThroughFailures() throws {
            var settings = LabDirector.Settings()
            settings.forwarding = "nat"
            settings.addsIPv6Service = true
            let (lab, a, b) = try startPair(prefix: "t6m", scheduler: "rr", settings: settings)
            defer { a.stop(); b.stop(); lab.tearDown() }
            try FailoverLabTests.failureSequence(lab, a, b)
            let stats = [try a.stats(), try b.stats()]
            print("ipv6 nat failover: replies forwarded \(stats.map { $0["replies_forwarded"] ?? 0 }), replicas taken over \(stats.map { $0["replicas_taken_over"] ?? 0 })")
        }
    }
}
