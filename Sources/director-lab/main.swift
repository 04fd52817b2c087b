import ArgumentParser
import DirectorLab
import Foundation

struct DirectorLabCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "director-lab",
        abstract: "The director's network-namespace lab: client, router, flooding front segment, director, three nginx real servers.",
        subcommands: [Demo.self, Up.self, Down.self, Flood.self, HostStackCost.self, TransmitCost.self])
}

struct LabOptions: ParsableArguments {
    @Option(help: "Prefix of every namespace and file of this lab (at most 6 letters or digits).") var prefix = "demo"
}

struct Up: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Build the lab and leave it running (namespaces <prefix>-*).")
    @OptionGroup var options: LabOptions
    func run() throws {
        let lab = Lab(prefix: options.prefix)
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
    static let configuration = CommandConfiguration(abstract: "Build the lab, run real requests through the director, print what happened, tear down.")
    @OptionGroup var options: LabOptions
    @Option(help: "Requests from each of the two client addresses.") var requests = 500
    @Option(help: "Scheduler of the demo service.") var scheduler = "wrr"

    func run() throws {
        let lab = Lab(prefix: options.prefix)
        defer { lab.tearDown() }
        say("building the lab (namespaces \(options.prefix)-*): client, router, flooding front bridge, director, 3 nginx real servers")
        try lab.setUp()
        var settings = LabDirector.Settings()
        settings.scheduler = scheduler
        settings.weights = [1, 2, 3]
        settings.timeouts = ["tcp_fin_wait": 2, "tcp_time_wait": 2, "tcp_close": 1]
        let director = try LabDirector(lab: lab, settings: settings)
        defer { director.stop() }
        say("starting the director (DR, \(scheduler), weights 1:2:3, workers on CPUs 0 and 1)")
        try director.start()

        say("\(2 * requests) HTTP requests from 198.18.1.10 and 198.18.1.11, one TCP connection each")
        let started = Date()
        let outputs = try [Lab.clientAddresses[0], Lab.clientAddresses[1]].map { try lab.fetchMany(path: "/whoami", count: requests, from: $0) }
        let elapsed = Date().timeIntervalSince(started)
        let lines = outputs.joined(separator: "\n").split(separator: "\n")
        let succeeded = lines.filter { $0 == "code=200" }.count
        say("  \(succeeded) of \(2 * requests) succeeded in \(String(format: "%.1f", elapsed)) s")
        for server in 0..<lab.realServerCount {
            let name = "rs\(server + 1)"
            let count = lines.filter { $0 == Substring(name) }.count
            say("  \(name) (weight \(settings.weights[server])): \(count) requests")
        }

        say("downloading the 50 MB file through the director")
        let expected = try lab.largeFileSHA256()
        let received = try lab.downloadSHA256(path: "/" + Lab.largeFileName, from: Lab.clientAddresses[0])
        say("  sha256 \(received == expected ? "matches" : "DIFFERS: \(received) vs \(expected)")")

        let stats = try director.stats()
        say("director counters: " + ["frames_received", "frames_forwarded", "connections_created", "arp_replies_sent", "drop_not_addressed_to_director"]
            .map { "\($0)=\(stats[$0] ?? 0)" }.joined(separator: " "))
        let snmp = try lab.snmpCounters(lab.directorNamespace(0))
        say("director host's own stack: TCP resets sent \(snmp["TcpOutRsts"] ?? -1), IP packets forwarded \(snmp["IpForwDatagrams"] ?? -1)")
        say("tearing down")
        if succeeded != 2 * requests || received != expected { throw ExitCode(1) }
    }

    func say(_ text: String) {
        print("[demo] \(text)")
        fflush(nil)
    }
}

DirectorLabCommand.main()
