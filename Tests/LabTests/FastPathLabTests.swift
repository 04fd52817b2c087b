import DirectorLab
import Foundation
import Testing

extension LabSuites {
    /// `fast_path: xdp`: the XDP program on each director's front interface forwards established
    /// flows; the ring and the workers keep everything else.
    @Suite("Lab: the XDP fast path")
    struct FastPathLabTests {
        static var xdp: LabDirector.Settings {
            var settings = LabDirector.Settings()
            settings.fastPath = "xdp"
            return settings
        }

        @Test("the pair with fast_path: xdp: 100 downloads intact, most segments forwarded by the program, each segment sent once; the kernel detaches a killed director's program")
        func pairForwardsThroughTheProgram() throws {
            let (lab, a, b) = try startPair(prefix: "txp", scheduler: "mh", settings: FastPathLabTests.xdp)
            defer { a.stop(); b.stop(); lab.tearDown() }
            for director in [a, b] {
                let line = director.log().split(separator: "\n").first { $0.contains("fast path:") }.map(String.init) ?? "(no fast path line)"
                print("fast path, start: \(line)")
                #expect(line.contains("fast path: XDP in"), "\(line)")
            }
            let serversBefore = try lab.tcpSegmentsAtRealServers()
            let expected = try lab.sha256(of: Lab.mediumFileName)
            let curls = try lab.startDownloads(Lab.mediumFileName, perClient: 25, clients: Array(Lab.clientAddresses.prefix(4)), limitRate: "200k", maxTime: 60)
            for curl in curls { Shell.wait(curl) }
            let intact = try lab.collectDownloads().filter { $0 == expected }.count
            usleep(1_500_000)
            let statsA = try a.stats(), statsB = try b.stats()
            let ring = (statsA["frames_forwarded"] ?? 0) + (statsB["frames_forwarded"] ?? 0)
            let program = (statsA["fast_path_redirected"] ?? 0) + (statsB["fast_path_redirected"] ?? 0)
            let received = UInt64(try lab.tcpSegmentsAtRealServers() - serversBefore)
            print("fast path, pair: \(intact)/100 downloads intact; segments to the real servers: \(program) by the program, \(ring) by the workers' rings, "
                + "\(received) received; offers \((statsA["fast_path_offers"] ?? 0) + (statsB["fast_path_offers"] ?? 0)), "
                + "withdrawals \((statsA["fast_path_withdrawals"] ?? 0) + (statsB["fast_path_withdrawals"] ?? 0)); "
                + "dropped as the other's: node 1 \(statsA["fast_path_dropped_not_owned"] ?? 0), node 2 \(statsB["fast_path_dropped_not_owned"] ?? 0)")
            #expect(intact == 100, "\(intact) of 100 downloads intact")
            #expect((statsA["fast_path_redirected"] ?? 0) > 0 && (statsB["fast_path_redirected"] ?? 0) > 0, "both programs forwarded")
            #expect(program > ring, "the program carried most segments")
            #expect(received == ring + program, "no segment reached the real servers twice, none lost")
            #expect((statsA["fast_path_dropped_not_owned"] ?? 0) > 0, "the program dropped the other dispatcher's frames")
            // Each director's per-server and per-service figures count the program's frames too.
            for (name, director, stats) in [("A", a, statsA), ("B", b, statsB)] {
                let services = (try ObservationLabTests.json(["services", "--stats"], director)["services"] as? [[String: Any]]) ?? []
                func packets(_ object: [String: Any]) -> UInt64 { ((object["stats"] as? [String: Any])?["packets"] as? NSNumber)?.uint64Value ?? 0 }
                let perServer = services.flatMap { ($0["real_servers"] as? [[String: Any]]) ?? [] }.map(packets).reduce(0, +)
                let perService = services.map(packets).reduce(0, +)
                // Counted before the transmit ring: a frame the full ring dropped is counted too (in
                // direct routing no reply passes the director, so the drop counts nothing else).
                let forwarded = (stats["frames_forwarded"] ?? 0) + (stats["fast_path_redirected"] ?? 0) + (stats["drop_transmit_ring_full"] ?? 0)
                print("fast path, \(name): services --stats counts \(perServer) packets at the real servers, \(perService) at the services; "
                    + "forwarded \(stats["frames_forwarded"] ?? 0) by the ring, \(stats["fast_path_redirected"] ?? 0) by the program, "
                    + "\(stats["drop_transmit_ring_full"] ?? 0) dropped by a full transmit ring")
                #expect(perServer == forwarded && perService == forwarded, "\(name): every frame forwarded, by the ring or the program, counted at its server and service")
            }

            // SIGKILL: the link's last descriptor closes and the kernel detaches the program, so a
            // dead director forwards nothing its peer took over.
            _ = a.kill9()
            let link = try lab.inNamespace(lab.directorNamespace(0), ["ip", "link", "show", "front"]).output
            #expect(!link.contains("xdp"), "the killed director's program is detached: \(link)")
        }

        @Test("clients that leave their checksums to offload (veth senders): no flow is offered to the program, and every download is intact through the rings")
        func checksumsLeftToOffloadStayOnTheRing() throws {
            let lab = Lab(prefix: "txc", directors: 2, clientsFinishChecksums: false)
            defer { lab.tearDown() }
            try lab.setUp(largeFileMegabytes: 1)
            let directors = try lab.startPair(settings: FastPathLabTests.xdp)
            defer { for director in directors { director.stop() } }
            let expected = try lab.sha256(of: Lab.mediumFileName)
            let curls = try lab.startDownloads(Lab.mediumFileName, perClient: 10, clients: Array(Lab.clientAddresses.prefix(4)), limitRate: "400k", maxTime: 60)
            for curl in curls { Shell.wait(curl) }
            let intact = try lab.collectDownloads().filter { $0 == expected }.count
            let stats = try directors.map { try $0.stats() }
            let offers = stats.map { $0["fast_path_offers"] ?? 0 }.reduce(0, +)
            let ring = stats.map { $0["frames_forwarded"] ?? 0 }.reduce(0, +)
            print("fast path, checksums left to offload: \(intact)/40 downloads intact; \(offers) offers; \(ring) segments by the rings")
            #expect(intact == 40)
            #expect(offers == 0 && ring > 0, "such flows stay on the ring")
        }

        @Test("fast_path: xdp through the pair's failures: SIGKILL A, A returns, SIGKILL and return of B, the crossover cut")
        func failuresWithTheProgram() throws {
            let (lab, a, b) = try startPair(prefix: "txf", scheduler: "mh", settings: FastPathLabTests.xdp)
            defer { a.stop(); b.stop(); lab.tearDown() }
            try FailoverLabTests.failureSequence(lab, a, b)
            let redirected = (try a.stats()["fast_path_redirected"] ?? 0) + (try b.stats()["fast_path_redirected"] ?? 0)
            print("fast path, failures: the programs forwarded \(redirected) segments since the last starts")
            #expect(redirected > 0)
        }

        @Test("without CAP_BPF the director starts anyway, says the fast path is off and why, and serves")
        func fallsBackWithoutThePrivilege() throws {
            try ServiceManagerLabTests.withServiceUser {
                let lab = Lab(prefix: "txo", directors: 1)
                defer { lab.tearDown() }
                try lab.setUp(largeFileMegabytes: 1)
                var settings = FastPathLabTests.xdp
                settings.user = "director"
                let director = try LabDirector(lab: lab, settings: settings)
                director.capabilities = LabDirector.serviceCapabilities.filter { $0 != "bpf" }
                try director.start()
                defer { director.stop() }
                let line = director.log().split(separator: "\n").first { $0.contains("fast path:") }.map(String.init) ?? "(no fast path line)"
                print("fast path, without CAP_BPF: \(line)")
                #expect(line.contains("fast path: off, XDP is not available here") && line.contains("CAP_BPF"), "\(line)")
                let answers = try lab.fetchMany(path: "/index.html", count: 50, from: Lab.clientAddresses[0])
                #expect(answers.split(separator: "\n").filter { $0 == "code=200" }.count == 50)
            }
        }
    }
}
