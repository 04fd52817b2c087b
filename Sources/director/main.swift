import ArgumentParser
import DirectorDaemon
#if canImport(Glibc)
import Glibc
#endif

struct DirectorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "director",
        abstract: "A layer-4 load balancer: TPACKET_V3 rings, per-core workers, direct routing.",
        version: DirectorVersion.current,
        subcommands: [Run.self, CheckConfig.self, Stats.self, Services.self, Connections.self, Buckets.self, Sync.self, Reload.self, Server.self, Service.self,
                      Config.self, Fault.self])
}

/// Reads and validates a config file, printing the problem (with its field) on failure.
func loadConfiguration(_ path: String) throws -> Configuration {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        throw ValidationError("cannot read config file \(path)")
    }
    do {
        return try ConfigurationParser.parse(yaml: text)
    } catch {
        throw ValidationError("\(path): \(error)")
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the director in the foreground until SIGINT or SIGTERM; SIGHUP re-reads the config (as director reload does).")
    @Option(name: .long, help: "The YAML config file.") var config: String
    @Option(name: .long, help: "Log from this level up: \(Log.levelNames.joined(separator: ", ")).") var logLevel = "info"

    func validate() throws {
        if !Log.levelNames.contains(logLevel) {
            throw ValidationError("--log-level \(logLevel): expected one of \(Log.levelNames.joined(separator: ", "))")
        }
    }

    func run() throws {
        let configuration = try loadConfiguration(config)
        _ = Log.bootstrap(nodeID: configuration.nodeID, levelName: logLevel)
        // Block the signals in every thread (threads inherit the mask), then wait for them here:
        // a signal never interrupts a worker, and SIGHUP's default (ending the process) never runs.
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&signals, signal) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        let director: Director
        do {
            director = try Director(configuration: configuration)
            director.configurationPath = config
            try director.start()
        } catch {
            Log.error("cannot start: \(error)")
            throw ExitCode(1)
        }
        var received: Int32 = 0
        while true {
            sigwait(&signals, &received)
            guard received == SIGHUP else { break }
            Log.info("SIGHUP: re-reading \(config)")
            _ = director.reload()
        }
        Log.info("signal \(received): stopping")
        director.stop()
    }
}

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check-config", abstract: "Validate a config file and summarise it.")
    @Argument(help: "The YAML config file.") var file: String

    func run() throws {
        let configuration = try loadConfiguration(file)
        print("\(file): ok")
        print("  front \(configuration.frontInterface), back \(configuration.backInterface), workers on CPUs \(configuration.workerCPUs.map(String.init).joined(separator: ","))")
        print("  \(configuration.connectionCapacity) connections, \(configuration.bucketCount) buckets")
        if let peer = configuration.peer {
            print("  node \(configuration.nodeID), peer node \(peer.nodeID) at \(peer.address) (sync from \(peer.localAddress):\(peer.syncPort), "
                + "heartbeat \(peer.heartbeatIntervalMilliseconds) ms, dead after \(peer.deadAfterMissed) missed); share \(configuration.initialOwnership.description)")
        }
        for service in configuration.services {
            print("  \(service.transport) \(service.address):\(service.port) \(service.scheduler.rawValue) \(service.forwarding.rawValue): \(service.realServers.count) real server(s)")
        }
    }
}

struct ControlOptions: ParsableArguments {
    @Option(name: .long, help: "The director's control socket.") var socket: String?
    @Option(name: .long, help: "Take the control socket from this config file.") var config: String?

    func path() throws -> String {
        if let socket { return socket }
        if let config { return try loadConfiguration(config).controlSocket }
        return Configuration.defaultControlSocket
    }
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the running director's counters (Prometheus text format).")
    @OptionGroup var options: ControlOptions
    func run() throws { print(try ControlClient.send("stats", to: try options.path()), terminator: "") }
}

struct Services: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List virtual services and real servers with their health and connections, like ipvsadm -L -n.",
        discussion: """
        Default columns: the weight in force (0 while drained or out of service), active
        (ESTABLISHED) and inactive connections this director forwards, the real server's MAC, and
        the pair's health verdict with each side's own. --stats: new connections, packets and IP
        bytes since the start (ipvsadm --stats; a DR director sees only the clients' direction).
        --rate: the same per second over the last 5 seconds. --json: all of it, one object.
        """)
    @Flag(help: "Totals: new connections, packets, bytes.") var stats = false
    @Flag(help: "Rates over the last 5 seconds.") var rate = false
    @Flag(help: "One JSON object (services, servers, health, connections, stats and rates).") var json = false
    @OptionGroup var options: ControlOptions

    func validate() throws {
        if stats && rate { throw ValidationError("--stats or --rate, not both") }
    }

    func run() throws {
        try control((["services"] + (stats ? ["stats"] : []) + (rate ? ["rate"] : []) + (json ? ["json"] : [])).joined(separator: " "), options)
    }
}

struct Connections: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List connections, like ipvsadm -L -c -n: state, expiry, real server, own or a replica of the peer's.",
        discussion: """
        director connections --service 198.18.0.100:80 --server 198.18.2.11:80 --limit 50
        director connections --service [2001:2::100]:80 --client 2001:2:0:1::10
        director connections --client 198.18.1.10 --json
        The workers walk their own shards between bursts: listing never stops the traffic. At most
        100000 connections per listing.
        """)
    @Option(help: "Only this virtual service (ADDRESS:PORT, [IPv6]:PORT).") var service: String?
    @Option(help: "Only this real server (ADDRESS:PORT, [IPv6]:PORT).") var server: String?
    @Option(help: "Only this client address.") var client: String?
    @Option(help: "At most this many connections.") var limit: Int?
    @Flag(help: "One JSON object.") var json = false
    @OptionGroup var options: ControlOptions

    func run() throws {
        var words = ["connections"]
        if let service { words += ["service", service] }
        if let server { words += ["server", server] }
        if let client { words += ["client", client] }
        if let limit { words += ["limit", String(limit)] }
        if json { words.append("json") }
        try control(words.joined(separator: " "), options)
    }
}

struct Buckets: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show or change which client buckets this dispatcher accepts (its kernel filter).",
        discussion: """
        director buckets show              the buckets this dispatcher owns
        director buckets own 512-1023      also accept these buckets
        director buckets release 512-1023  stop accepting these buckets
        director buckets set 0-511         accept exactly these (all, none, or ranges like 0-511,600)
        director buckets auto              resume the pair's automatic handovers
        To move buckets from B to A with no gap: `own` them on A first, then `release` them on B.
        In a pair, own/release/set pause the automatic handovers (the pair would otherwise return
        to its configured split) until `buckets auto`; a peer's death still moves every bucket.
        """)
    @Argument(help: "show, own, release, set or auto") var action = "show"
    @Argument(help: "Bucket ranges: all, none, or like 0-511,600.") var ranges: String?
    @Flag(help: "show only: one JSON object.") var json = false
    @OptionGroup var options: ControlOptions

    func validate() throws {
        if json && action != "show" { throw ValidationError("--json goes with show only") }
    }

    func run() throws {
        let reply = try ControlClient.send(["buckets", action, ranges, json ? "json" : nil].compactMap { $0 }.joined(separator: " "), to: try options.path())
        print(reply, terminator: "")
        if reply.hasPrefix("error") { throw ExitCode(1) }
    }
}

struct Sync: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the pair: the peer's state, the buckets, the sync stream, replica lag, takeovers and handovers.")
    @Flag(help: "One JSON object.") var json = false
    @OptionGroup var options: ControlOptions
    func run() throws { print(try ControlClient.send(json ? "sync json" : "sync", to: try options.path()), terminator: "") }
}

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-read the running director's config file and apply its services, real servers, weights, schedulers and timeouts live.",
        discussion: """
        Connections keep their real servers; a removed real server's connections go on to it until
        they end (weight 0 quiesces a server without removing it). Settings under director: need a
        restart: a file that changes one is refused, naming it, and so is a file check-config
        refuses; a refused reload changes nothing. SIGHUP to the daemon does the same.
        """)
    @OptionGroup var options: ControlOptions

    func run() throws {
        let reply = try ControlClient.send("reload", to: try options.path())
        print(reply, terminator: "")
        if reply.hasPrefix("error") { throw ExitCode(1) }
    }
}

/// Sends one control line and prints the reply; a reply that starts with "error" fails the command.
func control(_ line: String, _ options: ControlOptions) throws {
    let reply = try ControlClient.send(line, to: try options.path())
    print(reply, terminator: "")
    if reply.hasPrefix("error") { throw ExitCode(1) }
}

struct Server: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add, remove, reweight or drain a real server of a service, live (like ipvsadm -a/-d/-e).",
        discussion: """
        director server add 198.18.0.100:80 198.18.2.14 [--weight 2]
        director server weight 198.18.0.100:80 198.18.2.14 3
        director server drain 198.18.0.100:80 198.18.2.14      weight 0: no new connections, the open ones go on
        director server remove udp:198.18.0.100:53 198.18.2.14  its open connections go on until they end
        Applied between two bursts of the workers, on this director only (in a pair, change both).
        Not written to the config file: a reload or a restart returns to the file; director config
        dump prints the services as they run now.
        """)
    @Argument(help: "add, remove, weight or drain") var action: String
    @Argument(help: "The service: 198.18.0.100:80, or udp:198.18.0.100:53.") var service: String
    @Argument(help: "The real server: 198.18.2.14 (the service's port) or 198.18.2.14:80.") var server: String
    @Argument(help: "The new weight (weight only).") var newWeight: Int?
    @Option(help: "The weight of a server added (0–65535).") var weight = 1
    @OptionGroup var options: ControlOptions

    func run() throws {
        switch action {
        case "add": try control("server add \(service) \(server) \(weight)", options)
        case "weight":
            guard let newWeight else { throw ValidationError("server weight needs the new weight: director server weight SERVICE SERVER WEIGHT") }
            try control("server weight \(service) \(server) \(newWeight)", options)
        case "remove", "drain": try control("server \(action) \(service) \(server)", options)
        default: throw ValidationError("unknown action \"\(action)\": add, remove, weight or drain")
        }
    }
}

struct Service: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add or remove a virtual service, live (like ipvsadm -A/-D).",
        discussion: """
        director service add 198.18.0.101:443 [--scheduler rr]   then add its servers with director server add
        director service remove 198.18.0.101:443                 its open connections are no longer forwarded
        On this director only, and not written to the config file (see director server --help).
        """)
    @Argument(help: "add or remove") var action: String
    @Argument(help: "The service: 198.18.0.101:443, or udp:198.18.0.101:53.") var service: String
    @Option(help: "Scheduler of a service added: mh, sh, rr, wrr, lc or wlc.") var scheduler = "mh"
    @OptionGroup var options: ControlOptions

    func run() throws {
        switch action {
        case "add": try control("service add \(service) \(scheduler)", options)
        case "remove": try control("service remove \(service)", options)
        default: throw ValidationError("unknown action \"\(action)\": add or remove")
        }
    }
}

struct Config: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the running director's timeouts and services as config file sections (to keep live changes).")
    @Argument(help: "dump") var action = "dump"
    @OptionGroup var options: ControlOptions

    func run() throws {
        guard action == "dump" else { throw ValidationError("unknown action \"\(action)\": dump") }
        try control("config dump", options)
    }
}

struct Fault: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inject a fault into a running director, to test the pair's reactions (needs allow_fault_injection: true).",
        discussion: """
        director fault stall-worker WORKER MILLISECONDS   the worker sleeps instead of working, as a hung one would
        director fault fail-ownership COUNT               the next COUNT changes of the kernel filter fail
        Never on a production director: the config refuses these unless director.allow_fault_injection is true.
        """)
    @Argument(help: "stall-worker or fail-ownership, and its numbers.") var words: [String]
    @OptionGroup var options: ControlOptions

    func run() throws {
        let reply = try ControlClient.send((["fault"] + words).joined(separator: " "), to: try options.path())
        print(reply, terminator: "")
        if reply.hasPrefix("error") { throw ExitCode(1) }
    }
}

DirectorCommand.main()
