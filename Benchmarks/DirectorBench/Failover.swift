import ArgumentParser
import DirectorLab
import DirectorWire
import Foundation
import LoadGeneration
import PacketIO

/// Failover under load: established flows at a steady rate through the dispatcher pair, one
/// dispatcher killed with SIGKILL mid-run; the sink counts how many flows go on, and each flow's
/// longest silence as it saw it.
///
/// The pair lab (client, router, flooding front bridge, two directors, three real servers); the
/// generator sends from the router onto the front segment, and the back segment floods as well,
/// so one sink on rs1's interface sees every frame to every real server.
struct Failover: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Kill one dispatcher of the pair under load and measure each flow's gap (builds its own lab).")
    @Option(help: "Established flows.") var flows = 1000
    @Option(help: "Frames per second over all flows (flows / rate is each flow's frame interval: the resolution of its gap).") var rate = 100_000
    @Option(help: "Seconds of load per run.") var seconds = 6.0
    @Option(help: "Seconds into the load at which director 1 is killed.") var killAfter = 2.0
    @Option(help: "Runs.") var repeats = 3
    @Option(help: "Folder for the report (created).") var results = "results"
    @Option(help: "Prefix of the lab's namespaces.") var prefix = "bfail"
    @Option(help: "The directors' fast_path: off (the ring carries every frame) or xdp.") var fastPath = "off"

    struct Run: Codable {
        var sink: SinkSummary
        var generator: GeneratorSummary
        var detectionMilliseconds: Double?
        var replicasTakenOver: UInt64
    }

    func run() throws {
        guard flows > 0, rate > 0, seconds > killAfter + 1, killAfter > 0.5, (1...20).contains(repeats) else {
            throw ValidationError("--flows and --rate above 0, --kill-after above 0.5 s and at least 1 s before the end, --repeats 1…20")
        }
        var runs: [Run] = []
        for round in 0..<repeats {
            let run = try once()
            runs.append(run)
            print(String(format: "[%d/%d] flows %d, alive at the end %d, longest gap %.1f ms (p99 of flows %.1f ms), detection %.1f ms, "
                         + "taken over %llu, server changes %llu, duplicates %llu, misrouted %llu",
                         round + 1, repeats, run.sink.flowsSeen, run.sink.flowsAliveAtEnd ?? 0,
                         Double(run.sink.longestFlowGapMicroseconds ?? 0) / 1000, Double(run.sink.flowGapP99Microseconds ?? 0) / 1000,
                         run.detectionMilliseconds ?? -1, run.replicasTakenOver, run.sink.serverChanges, run.sink.duplicates, run.sink.misrouted))
            fflush(nil)
        }
        let interval = Double(flows) / Double(rate) * 1000
        func column(_ values: [Double], digits: Int = 1) -> String { Spread(values).formatted(digits: digits) }
        let markdown = """
        \(flows) established TCP flows (data segments), \(rate) frames/s in all (one frame per flow every \(String(format: "%.0f", interval)) ms),
        through the dispatcher pair (mh, connection sync on, fast_path: \(fastPath)); director 1 killed with SIGKILL \(killAfter) s into \(seconds) s of load.
        A flow is alive at the end if a frame of it reached a real server in the last \(String(format: "%.0f", 3 * interval)) ms.
        \(repeats) runs, medians (min–max).

        | flows | alive at the end | longest gap of any flow, ms | p99 of flows' longest gaps, ms | detection, ms | connections taken over | server changes | duplicates | misrouted |
        |---|---|---|---|---|---|---|---|---|
        | \(flows) | \(column(runs.map { Double($0.sink.flowsAliveAtEnd ?? 0) }, digits: 0)) | \(column(runs.map { Double($0.sink.longestFlowGapMicroseconds ?? 0) / 1000 })) | \
        \(column(runs.map { Double($0.sink.flowGapP99Microseconds ?? 0) / 1000 })) | \(column(runs.map { $0.detectionMilliseconds ?? 0 })) | \
        \(column(runs.map { Double($0.replicasTakenOver) }, digits: 0)) | \(runs.map(\.sink.serverChanges).reduce(0, +)) | \
        \(runs.map(\.sink.duplicates).reduce(0, +)) | \(runs.map(\.sink.misrouted).reduce(0, +)) |

        A flow's gap without failover is its frame interval (\(String(format: "%.0f", interval)) ms); the flows of the killed director's
        buckets see that plus the time to declare it dead and take its buckets.

        """
        print("\n" + markdown)
        try ResultsFolder(path: results).write("failover", markdown: ResultsFolder.header("Failover under load") + markdown, raw: runs)
        if runs.contains(where: { $0.sink.violations > 0 || ($0.sink.flowsAliveAtEnd ?? 0) < flows }) {
            print("FAILED: a flow stopped, moved to another real server, or was duplicated")
            throw ExitCode(1)
        }
    }

    private func once() throws -> Run {
        let lab = Lab(prefix: prefix, directors: 2)
        defer { lab.tearDown() }
        try lab.setUp(largeFileMegabytes: 1)
        // The back segment floods too, so that rs1's interface sees every real server's frames;
        // the real servers' stacks drop the benchmark's clients (no RSTs back to addresses that
        // do not exist).
        let ports = try lab.inNamespace(lab.switchNamespace, ["sh", "-c", "ls /sys/class/net/back/brif"]).output.split(separator: "\n")
        for port in ports { try lab.inNamespace(lab.switchNamespace, ["bridge", "link", "set", "dev", String(port), "learning", "off", "flood", "on"]) }
        try lab.inNamespace(lab.switchNamespace, ["ip", "link", "set", "back", "type", "bridge", "ageing_time", "0"])
        var servers: [String] = []
        for index in 0..<lab.realServerCount {
            let namespace = lab.realServerNamespace(index)
            try lab.inNamespace(namespace, ["nft", "-f", "-"], input: """
                table netdev bench {
                  chain ingress { type filter hook ingress device "eth0" priority 0; ip saddr 198.19.0.0/16 drop; }
                }
                """)
            let mac = try lab.inNamespace(namespace, ["cat", "/sys/class/net/eth0/address"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
            servers.append("\(mac)@\(Lab.realServerAddress(index))")
        }
        let binary = DeviceUnderTest.directorBinary
        var settings = LabDirector.Settings()
        settings.fastPath = fastPath
        let directors = try lab.startPair(settings: settings, binary: binary)
        defer { for director in directors { director.stop() } }

        var traffic = try TrafficOptions.parse(["--flows", String(flows)])
        traffic.pattern = .established
        let ready = lab.stateDirectory + "/sink.ready", sinkSummary = lab.stateDirectory + "/sink.json"
        let interval = Double(flows) / Double(rate) * 1000
        let sink = try Shell.spawn(["ip", "netns", "exec", lab.realServerNamespace(0), Trial.selfBinary, "sink", "--interface", "eth0"]
                                   + traffic.arguments + ["--real-servers", servers.joined(separator: ","), "--rewrite", "dr",
                                   "--seconds", String(seconds + 30), "--idle-stop", "1", "--alive-window-ms", String(3 * interval),
                                   "--ready-file", ready, "--summary", sinkSummary], output: lab.stateDirectory + "/sink.log")
        defer { if Shell.exitStatus(sink) == nil { kill(sink, SIGTERM); Shell.wait(sink) } }
        try Lab.waitUntil(seconds: 5, "the sink is receiving") { FileManager.default.fileExists(atPath: ready) }

        let generatorSummary = lab.stateDirectory + "/generator.json"
        let generator = try Shell.spawn(["ip", "netns", "exec", lab.routerNamespace, Trial.selfBinary, "generate", "--interface", "front",
                                         "--destination-mac", Lab.virtualMAC] + traffic.arguments
                                        + ["--count", String(Int(Double(rate) * seconds)), "--rate", String(rate), "--seconds", String(seconds + 5),
                                           "--summary", generatorSummary], output: lab.stateDirectory + "/generator.log")
        usleep(UInt32(killAfter * 1e6))
        let killedAt = directors[0].kill9()
        Shell.wait(generator)
        Shell.wait(sink)
        let survivor = try directors[1].stats(binary: binary)
        if fastPath != "off" {
            print("survivor: \(survivor["fast_path_redirected"] ?? 0) frames by the XDP program, \(survivor["frames_forwarded"] ?? 0) by the ring")
        }
        let declared = survivor["sync_peer_declared_dead_at_ns"] ?? 0
        return Run(sink: try JSONDecoder().decode(SinkSummary.self, from: Data(contentsOf: URL(fileURLWithPath: sinkSummary))),
                   generator: try JSONDecoder().decode(GeneratorSummary.self, from: Data(contentsOf: URL(fileURLWithPath: generatorSummary))),
                   detectionMilliseconds: declared > killedAt ? Double(declared - killedAt) / 1e6 : nil,
                   replicasTakenOver: survivor["replicas_taken_over"] ?? 0)
    }
}
