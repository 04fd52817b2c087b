import ArgumentParser
import DirectorLab
import Foundation
import LoadGeneration

/// A blind attack on the connection table, with real clients beside it: spoofed handshakes (a
/// SYN then a bare ACK from each of a million client endpoints), plain SYNs or bare ACKs from the
/// router onto the front segment as fast as the generator sends them, while clients open new
/// connections at a steady rate and hundreds of paced downloads run. The director must keep
/// admitting the real clients (an entry is protected only once its client sends data; the
/// rest give their places up), break no download, and keep its table at its configured size.
///
/// The lab of the lab tests (client, router, one director, three nginx real servers).
struct TableFlood: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "table-flood",
        abstract: "Flood the connection table with spoofed handshakes while real clients connect and download (builds its own lab).")
    @Option(help: "syn-then-ack | syn | ack.") var pattern: TrafficPattern = .synThenAck
    @Option(help: "Spoofed client endpoints (address and port; 64,512 per address from 198.18.16.0).") var flows = 1_000_000
    @Option(help: "Flood frames per second (0 = as fast as the generator sends).") var rate = 0
    @Option(help: "Seconds of flood.") var seconds = 60.0
    @Option(help: "New client connections per second (HTTP requests, one connection each).") var connectionsPerSecond = 200
    @Option(help: "Concurrent paced downloads, spread over the four client addresses.") var downloads = 200
    @Option(help: "The director's connection_capacity.") var capacity = 65_536
    @Option(help: "Scheduler of the service (mh or sh: bare ACKs open entries by hashing).") var scheduler = "mh"
    @Option(help: "The director binary (default: the release build, else the debug one).") var binary: String?
    @Option(help: "Runs.") var repeats = 1
    @Option(help: "Folder for the report (created).") var results = "results"
    @Option(help: "Write the runs' JSON here too (for a test to read).") var summary: String?
    @Option(help: "Prefix of the lab's namespaces (at most 6 letters or digits).") var prefix = "btfl"

    static let firstSpoofedClient = "198.18.16.0"
    static let fileMegabytes = 4
    /// Each client process opens its connections one after another at this rate at most.
    static let connectionsPerClientProcess = 10

    func run() throws {
        guard pattern == .synThenAck || pattern == .syn || pattern == .bareAck else { throw ValidationError("--pattern: syn-then-ack, syn or ack") }
        guard seconds >= 5, seconds <= 600, (1...20).contains(repeats), connectionsPerSecond >= Self.connectionsPerClientProcess,
              downloads >= 4, flows >= 1, flows <= 16 * 64_512, rate >= 0 else {
            throw ValidationError("--seconds 5…600, --repeats 1…20, --connections-per-second at least 10, --downloads at least 4, --flows 1…1,032,192, --rate at least 0")
        }
        var runs: [TableFloodRun] = []
        for round in 0..<repeats {
            let run = try once()
            runs.append(run)
            print(String(format: "[%d/%d] %@ flood: %llu frames in %.1f s (%.0f/s); director input %.0f frames/s, ring drops %llu; "
                         + "new connections %d/%d succeeded (%.2f %%, %.0f/s); downloads %d/%d intact; table %llu of %llu, reclaimed %llu, "
                         + "table-full drops %llu, proven %llu; resident memory %llu → %llu KiB",
                         round + 1, repeats, run.pattern, run.floodFrames, run.floodSeconds, Double(run.floodFrames) / run.floodSeconds,
                         run.directorInputRate, run.receiveRingDrops, run.connectionsSucceeded, run.connectionsAttempted,
                         100 * Double(run.connectionsSucceeded) / Double(max(run.connectionsAttempted, 1)), run.connectionsPerSecond,
                         run.downloadsIntact, run.downloadsStarted, run.connectionsAtEnd, run.connectionCapacity, run.connectionsReclaimed,
                         run.tableFullDrops, run.connectionsProven, run.residentKilobytesBefore, run.residentKilobytesAfter))
            fflush(nil)
        }
        let markdown = report(runs)
        print("\n" + markdown)
        try ResultsFolder(path: results).write("table-flood-\(pattern.rawValue)", markdown: ResultsFolder.header("Connection table under a spoofed flood") + markdown, raw: runs)
        if let summary {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(runs).write(to: URL(fileURLWithPath: summary))
        }
    }

    private func report(_ runs: [TableFloodRun]) -> String {
        func column(_ values: [Double], digits: Int = 0) -> String { Spread(values).formatted(digits: digits) }
        let what = switch pattern {
        case .synThenAck: "spoofed SYN + bare ACK pairs"
        case .bareAck: "spoofed bare ACKs"
        default: "spoofed SYNs"
        }
        return """
        \(what) from \(flows) client endpoints, \(rate == 0 ? "as fast as the generator sends" : "\(rate) frames/s"), for \(seconds) s,
        through one director (\(scheduler), connection_capacity \(capacity)), while \(connectionsPerSecond) new client connections a
        second (HTTP requests) and \(downloads) paced downloads of \(Self.fileMegabytes) MiB run; \(runs.count) runs, medians (min–max).

        | flood frames/s | director input frames/s | new connections succeeded, % | new connections/s | downloads intact | table at the end / capacity | reclaimed | table-full drops | resident memory before → after, MiB |
        |---|---|---|---|---|---|---|---|---|
        | \(column(runs.map { Double($0.floodFrames) / $0.floodSeconds })) | \(column(runs.map(\.directorInputRate))) | \
        \(column(runs.map { 100 * Double($0.connectionsSucceeded) / Double(max($0.connectionsAttempted, 1)) }, digits: 2)) | \
        \(column(runs.map(\.connectionsPerSecond))) | \(runs.map(\.downloadsIntact).reduce(0, +))/\(runs.map(\.downloadsStarted).reduce(0, +)) | \
        \(column(runs.map { Double($0.connectionsAtEnd) })) / \(capacity) | \(column(runs.map { Double($0.connectionsReclaimed) })) | \
        \(column(runs.map { Double($0.tableFullDrops) })) | \
        \(column(runs.map { Double($0.residentKilobytesBefore) / 1024 }, digits: 1)) → \(column(runs.map { Double($0.residentKilobytesAfter) / 1024 }, digits: 1)) |

        """
    }

    private func once() throws -> TableFloodRun {
        let lab = Lab(prefix: prefix, directors: 1)
        defer { lab.tearDown() }
        try lab.setUp(largeFileMegabytes: Self.fileMegabytes)
        var settings = LabDirector.Settings()
        settings.scheduler = scheduler
        settings.connectionCapacity = capacity
        let director = try LabDirector(lab: lab, index: 0, settings: settings)
        defer { director.stop() }
        let binary = self.binary ?? Self.defaultBinary()
        try director.start(binary: binary)
        let pid = try director.processID.orThrow("the director has no process")
        let residentBefore = try Self.residentKilobytes(pid)
        let before = try director.stats(binary: binary)

        // Downloads paced to outlast the flood, so every one of them crosses it.
        let paceKilobytes = max(16, Int(Double(Self.fileMegabytes * 1024) / (seconds + 4)))
        let downloadsPerClient = downloads / Lab.clientAddresses.count
        let curls = try lab.startDownloads(Lab.largeFileName, perClient: downloadsPerClient, clients: Lab.clientAddresses,
                                           limitRate: "\(paceKilobytes)k", maxTime: Int(seconds) + 120)
        usleep(1_000_000)

        // New connections: processes that each open one connection after another at a set rate,
        // started first and stopping a few seconds after the flood, so that all of it has them.
        let processes = connectionsPerSecond / Self.connectionsPerClientProcess
        let perProcess = Int(Double(Self.connectionsPerClientProcess) * (seconds + 3))
        var requestLogs: [String] = []
        var requesters: [pid_t] = []
        for index in 0..<processes {
            let log = "\(lab.stateDirectory)/requests-\(index).log"
            requestLogs.append(log)
            requesters.append(try Shell.spawn(["ip", "netns", "exec", lab.clientNamespace, "curl", "-s", "-o", "/dev/null",
                                               "--rate", "\(Self.connectionsPerClientProcess)/s", "--connect-timeout", "3", "--max-time", "5",
                                               "-H", "Connection: close", "--interface", Lab.clientAddresses[index % Lab.clientAddresses.count],
                                               // On standard error, which is not buffered: the lines are there
                                               // to count while curl still runs.
                                               "-w", "%{stderr}code=%{http_code}\\n", "http://\(Lab.virtualAddress)/whoami?n=[1-\(perProcess)]"],
                                              output: log, errors: log))
        }
        usleep(1_000_000)

        let floodSummary = "\(lab.stateDirectory)/flood.json"
        let self_ = try Self.ownExecutable()
        let answeredBeforeFlood = Self.answers(in: requestLogs).count
        let flood = try Shell.spawn(["ip", "netns", "exec", lab.routerNamespace, self_, "generate", "--interface", "front",
                                     "--destination-mac", Lab.virtualMAC, "--pattern", pattern.rawValue, "--flows", String(flows),
                                     "--first-client", Self.firstSpoofedClient, "--destination", Lab.virtualAddress, "--port", "80",
                                     "--rate", String(rate), "--seconds", String(seconds), "--count", "1000000000", "--summary", floodSummary],
                                    output: "\(lab.stateDirectory)/flood.log")
        let floodStarted = Date()
        let inputBefore = before["frames_received"] ?? 0
        _ = Shell.wait(flood)
        let floodSeconds = Date().timeIntervalSince(floodStarted)
        let duringFlood = try director.stats(binary: binary)
        // The clients' pace is what they managed while the flood ran; a slow last connection
        // (a SYN retransmitted after a second) must not stretch it.
        let answeredDuringFlood = Self.answers(in: requestLogs).count - answeredBeforeFlood
        for requester in requesters { _ = Shell.wait(requester) }
        for curl in curls { _ = Shell.wait(curl) }
        let after = try director.stats(binary: binary)
        let residentAfter = try Self.residentKilobytes(pid)

        let generated = (try? JSONDecoder().decode(GeneratorSummary.self, from: Data(contentsOf: URL(fileURLWithPath: floodSummary))))
        let codes = Self.answers(in: requestLogs)
        let expected = try lab.largeFileSHA256()
        let intact = try lab.collectDownloads().filter { $0 == expected }.count
        func delta(_ name: String) -> UInt64 { (after[name] ?? 0) - (before[name] ?? 0) }
        return TableFloodRun(pattern: pattern.rawValue, floodFrames: generated?.frames ?? 0, floodSeconds: generated?.seconds ?? floodSeconds,
                   directorInputRate: Double((duringFlood["frames_received"] ?? 0) - inputBefore) / floodSeconds,
                   receiveRingDrops: delta("receive_ring_drops"),
                   connectionsAttempted: codes.count, connectionsSucceeded: codes.filter { $0 == "code=200" }.count,
                   connectionsPerSecond: Double(answeredDuringFlood) / floodSeconds,
                   downloadsStarted: downloadsPerClient * Lab.clientAddresses.count, downloadsIntact: intact,
                   connectionCapacity: after["connection_capacity"] ?? 0, connectionsAtEnd: duringFlood["connections"] ?? 0,
                   connectionsReclaimed: delta("connections_reclaimed"), tableFullDrops: delta("drop_connection_table_full"),
                   connectionsProven: delta("connections_proven"),
                   residentKilobytesBefore: residentBefore, residentKilobytesAfter: residentAfter)
    }

    /// curl's "code=NNN" lines so far, one per connection attempted.
    static func answers(in logs: [String]) -> [Substring] {
        logs.flatMap { ((try? String(contentsOfFile: $0, encoding: .utf8)) ?? "").split(separator: "\n") }.filter { $0.hasPrefix("code=") }
    }

    /// The release build of the director if there is one (what operators run), else the debug one.
    static func defaultBinary() -> String {
        let release = Lab.packageRoot + "/.build/release/director"
        return FileManager.default.isExecutableFile(atPath: release) ? release : LabDirector.binaryPath()
    }

    static func ownExecutable() throws -> String {
        try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    }

    /// VmRSS of `pid`, KiB.
    static func residentKilobytes(_ pid: pid_t) throws -> UInt64 {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return UInt64(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }
}

extension Optional {
    func orThrow(_ problem: String) throws -> Wrapped {
        guard let value = self else { throw LabDirector.LabError(description: problem) }
        return value
    }
}
