import ArgumentParser
import DirectorLab
import Foundation

struct DirectorLabCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "director-lab",
        abstract: "The director's network-namespace lab: client, router, flooding front segment, director, three nginx real servers.",
        subcommands: [Demo.self, Up.self, Down.self, Flood.self, SyncFlood.self, HostStackCost.self, TransmitCost.self, SyncSoak.self])
}

struct LabOptions: ParsableArguments {
    @Option(help: "Prefix of every namespace and file of this lab (at most 6 letters or digits).") var prefix = "demo"
}

struct Up: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Build the lab and leave it running (namespaces <prefix>-*).")
    @OptionGroup var options: LabOptions
    @Option(help: "Director hosts: 1, or 2 for the dispatcher pair (same VIP and MAC, crossover link).") var directors = 1
    func run() throws {
        guard (1...2).contains(directors) else { throw ValidationError("--directors must be 1 or 2") }
        let lab = Lab(prefix: options.prefix, directors: directors)
        try lab.setUp()
        print("lab \(options.prefix) is up: ip netns list | grep \(options.prefix)-; take it down with: director-lab down --prefix \(options.prefix)")
    }
}

struct Down: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove the lab, its processes and files (also after a killed run).")
    @OptionGroup var options: LabOptions
    func run() { Lab(prefix: options.prefix).tearDown() }
}

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Build the lab with the dispatcher pair, run real requests and downloads through it, kill a dispatcher mid-transfer, restart it, print what happened, tear down.")
    @OptionGroup var options: LabOptions
    @Option(help: "Requests from each of the two client addresses.") var requests = 500
    @Option(help: "Scheduler of the demo service (rr shows that the synced state, not hashing, carries connections).") var scheduler = "mh"
    @Option(help: "Run the directors as this user with the systemd unit's five capabilities (made if missing, as the package makes it); root: as root.")
    var user = "director"

    func run() throws {
        let lab = Lab(prefix: options.prefix, directors: 2)
        defer { lab.tearDown() }
        say("building the lab (namespaces \(options.prefix)-*): client, router, flooding front bridge, two directors with one VIP and MAC, 3 nginx real servers")
        try lab.setUp()
        var settings = LabDirector.Settings()
        if user != "root" {
            if try Shell.run(["getent", "passwd", user], check: false).status != 0 {
                try Shell.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", user])
                say("made system user \(user) (the package's postinst makes it too)")
            }
            settings.user = user
            say("the directors run as user \(user) with CAP_NET_RAW, CAP_NET_ADMIN, CAP_SYS_NICE, CAP_IPC_LOCK and CAP_BPF only, as the systemd unit runs them")
        }
        settings.metricsListen = "127.0.0.1:9117"
        settings.scheduler = scheduler
        settings.weights = [1, 2, 3]
        settings.timeouts = ["tcp_fin_wait": 2, "tcp_time_wait": 2, "tcp_close": 1]
        let directors = try (0..<2).map { try LabDirector(lab: lab, index: $0, settings: settings) }
        defer { for director in directors { director.stop() } }
        for director in directors { try director.start() }
        say("directors up (DR, \(scheduler), weights 1:2:3): " + (try directors.map { try $0.buckets("show").trimmingCharacters(in: .newlines) }.joined(separator: "; ")))

        say("\(2 * requests) HTTP requests from 198.18.1.10 and 198.18.1.11, one TCP connection each")
        let started = Date()
        let outputs = try [Lab.clientAddresses[0], Lab.clientAddresses[1]].map { try lab.fetchMany(path: "/whoami", count: requests, from: $0) }
        let elapsed = Date().timeIntervalSince(started)
        let lines = outputs.joined(separator: "\n").split(separator: "\n")
        let succeeded = lines.filter { $0 == "code=200" }.count
        say("  \(succeeded) of \(2 * requests) succeeded in \(String(format: "%.1f", elapsed)) s")
        for server in 0..<lab.realServerCount {
            let name = "rs\(server + 1)"
            say("  \(name) (weight \(settings.weights[server])): \(lines.filter { $0 == Substring(name) }.count) requests")
        }
        let stats = try directors.map { try $0.stats() }
        for (index, counters) in stats.enumerated() {
            say("  director \(index + 1): \(counters["connections_created"] ?? 0) connections, \(counters["frames_forwarded"] ?? 0) frames forwarded, \(counters["arp_replies_sent"] ?? 0) ARP replies")
        }
        usleep(200_000)   // the workers publish their per-server counts every 100 ms
        say("director services --stats on director 1 (its half of the clients):")
        for line in try Shell.run([LabDirector.binaryPath(), "services", "--stats", "--socket", directors[0].controlSocket]).output.split(separator: "\n") {
            say("  " + line)
        }
        let metrics = try lab.inNamespace(lab.directorNamespace(0), ["curl", "-s", "http://127.0.0.1:9117/metrics"]).output
        let excerpt = metrics.split(separator: "\n").filter { $0.hasPrefix("director_real_server_connections_total{") }
        say("its /metrics (http://127.0.0.1:9117 in its namespace), per real server: " + excerpt.joined(separator: "; "))

        say("downloading the 50 MB file through the pair")
        let expected = try lab.largeFileSHA256()
        let received = try lab.downloadSHA256(path: "/" + Lab.largeFileName, from: Lab.clientAddresses[0])
        say("  sha256 \(received == expected ? "matches" : "DIFFERS: \(received) vs \(expected)")")

        say("200 downloads of ~10 s each from four client addresses; after 4 s director 1 is killed (SIGKILL)")
        let curls = try lab.startDownloads(Lab.mediumFileName, perClient: 50, clients: Lab.clientAddresses, limitRate: "100k", maxTime: 60)
        usleep(4_000_000)
        let killedAt = directors[0].kill9()
        for curl in curls { Shell.wait(curl) }
        let mediumSHA = try lab.sha256(of: Lab.mediumFileName)
        let intact = try lab.collectDownloads().filter { $0 == mediumSHA }.count
        let survivor = try directors[1].stats()
        let declared = survivor["sync_peer_declared_dead_at_ns"] ?? 0
        let detection = declared > killedAt ? String(format: "%.1f ms", Double(declared - killedAt) / 1e6) : "never"
        say("  \(intact) of 200 downloads completed intact; director 2 declared director 1 dead \(detection) after the kill "
            + "and carried \(survivor["replicas_taken_over"] ?? 0) of its connections from the synced replicas")

        say("director 1 restarts: it takes a snapshot of director 2's table, then its buckets back")
        try directors[0].start()
        var handedBack = false
        for _ in 0..<250 where !handedBack {
            handedBack = try directors[0].buckets("show").contains("buckets: 0-511")
            if !handedBack { usleep(20_000) }
        }
        let gap = Double(try directors[1].stats()["sync_last_handover_gap_ns"] ?? 0) / 1e6
        say("  " + (try directors.map { try $0.buckets("show").trimmingCharacters(in: .newlines) }.joined(separator: "; "))
            + String(format: "; the handover left those buckets ownerless for at most %.1f ms", gap))

        say("director 2's view of the pair (director sync):")
        for line in try directors[1].syncReport().split(separator: "\n") { say("  \(line)") }

        let snmp = try (0..<2).map { try lab.snmpCounters(lab.directorNamespace($0)) }
        say("director hosts' own stacks: TCP resets sent \(snmp.map { $0["TcpOutRsts"] ?? -1 }), IP packets forwarded \(snmp.map { $0["IpForwDatagrams"] ?? -1 })")
        say("tearing down")
        if succeeded != 2 * requests || received != expected || intact != 200 || !handedBack { throw ExitCode(1) }
    }

    func say(_ text: String) {
        print("[demo] \(text)")
        fflush(nil)
    }
}

DirectorLabCommand.main()
