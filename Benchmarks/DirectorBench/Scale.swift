import ArgumentParser
import Foundation
import PacketIO

/// Table scaling: the director at a fixed offered rate with 1 k … 10 M live connections in its
/// table (every flow opened by the warm-up, then the window's frames spread over all of them),
/// and the memory the table costs per connection.
struct Scale: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure the director with 1 k … 10 M live connections (builds its own lab).")
    @Option(help: "Live connections, comma-separated.") var sizes = "1000,100000,1000000,10000000"
    @Option(help: "Offered frames per second in the window (and the warm-up's ceiling).") var rate = 200_000
    @Option(help: "Seconds of offered load per run.") var seconds = 5.0
    @Option(help: "Runs of every size (interleaved).") var repeats = 3
    @Option(help: "Folder for the report (created).") var results = "results"
    @Option(help: "Prefix of the lab's namespaces.") var prefix = "bench"

    struct Row: Codable {
        var connections: Int
        var runs: [Trial.Result]
    }

    func run() throws {
        let counts = try sizes.split(separator: ",").map { item in
            guard let count = Int(item), (1...16_000_000).contains(count) else { throw ValidationError("--sizes: 1…16,000,000 each, got \(item)") }
            return count
        }
        guard (1...20).contains(repeats), rate > 0, seconds > 0 else { throw ValidationError("--repeats 1…20, --rate and --seconds above 0") }
        try NUMAPlacement(cpu: PerformanceLab.benchCPU).pinCurrentThread()
        var rows = counts.map { Row(connections: $0, runs: []) }
        for round in 0..<repeats {
            for index in rows.indices {
                var traffic = try TrafficOptions.parse(["--flows", String(rows[index].connections)])
                traffic.pattern = .established
                // Room for every flow with the table never more than ~2/3 full.
                let capacity = max(4096, rows[index].connections * 9 / 8)
                let result = try Trial(device: .director, traffic: traffic, rate: rate, seconds: seconds, checksFrames: false,
                                       connectionCapacity: capacity, prefix: prefix).run()
                rows[index].runs.append(result)
                print(String(format: "[%d/%d] %8d connections: forwarded %7.0f/s, loss %.2f%%, CPU %.2f µs/frame, table %llu entries, RSS %.0f MB",
                             round + 1, repeats, rows[index].connections, result.forwardedRate, result.loss * 100, result.cpuNanosecondsPerFrame / 1000,
                             result.directorStats?["connections"] ?? 0, Double(result.directorResidentBytes ?? 0) / 1e6))
                fflush(nil)
            }
        }
        let markdown = report(rows)
        print("\n" + markdown)
        try ResultsFolder(path: results).write("scale", markdown: ResultsFolder.header("Table scaling") + markdown, raw: rows)
    }

    func report(_ rows: [Row]) -> String {
        let smallest = rows.min { $0.connections < $1.connections }
        let baselineCPU = smallest.map { Spread($0.runs.map(\.cpuNanosecondsPerFrame)).median }
        let baselineRSS = smallest.map { Spread($0.runs.map { Double($0.directorResidentBytes ?? 0) }).median } ?? 0
        let baselineEntries = smallest.map { Spread($0.runs.map { Double($0.directorStats?["connections"] ?? 0) }).median } ?? 0
        var lines = [
            "The director (DR, mh, one worker on CPU 1) at \(rate / 1000)k frames/s offered, data segments spread over every live connection; "
                + "two warm-up passes open every flow first. \(repeats) interleaved runs per size, medians (min–max). "
                + "Memory per connection = growth of the director's resident set over the smallest size, divided by the growth in table entries "
                + "(the table is allocated whole at start, sized to the connections: capacity × 3/2 slots of \(32) bytes).",
            "",
            "| live connections | table entries | forwarded kpps | loss % | CPU µs per frame | vs smallest | resident MB | bytes per connection |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in rows {
            let cpu = Spread(row.runs.map(\.cpuNanosecondsPerFrame))
            let entries = Spread(row.runs.map { Double($0.directorStats?["connections"] ?? 0) }).median
            let rss = Spread(row.runs.map { Double($0.directorResidentBytes ?? 0) }).median
            let perConnection = entries > baselineEntries ? String(format: "%.0f", (rss - baselineRSS) / (entries - baselineEntries)) : "–"
            lines.append("| \(row.connections) | \(Int(entries)) | \(Spread(row.runs.map(\.forwardedRate)).formatted(scale: 1e-3, digits: 0)) | "
                         + "\(Spread(row.runs.map(\.loss)).formatted(scale: 100)) | \(cpu.formatted(scale: 1e-3)) | "
                         + String(format: "%.2f×", cpu.median / (baselineCPU ?? cpu.median)) + " | \(String(format: "%.0f", rss / 1e6)) | \(perConnection) |")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// New connections per second: unique SYNs as fast as the generator sends them, each one a
/// new flow the director must schedule and insert.
struct NewConnections: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "new-connections",
        abstract: "Measure the connections the director opens per second from a flat-out SYN stream (builds its own lab).")
    @Option(help: "Seconds of SYNs per run.") var seconds = 5.0
    @Option(help: "Runs.") var repeats = 3
    @Option(help: "Folder for the report (created).") var results = "results"
    @Option(help: "Prefix of the lab's namespaces.") var prefix = "bench"

    func run() throws {
        guard (1...20).contains(repeats), seconds > 0, seconds <= 60 else { throw ValidationError("--repeats 1…20, --seconds up to 60") }
        try NUMAPlacement(cpu: PerformanceLab.benchCPU).pinCurrentThread()
        // More flows than any run sends SYNs: every SYN opens a new connection.
        var traffic = try TrafficOptions.parse(["--flows", "1000000000"])
        traffic.pattern = .syn
        var runs: [Trial.Result] = []
        for round in 0..<repeats {
            // Every SYN stays in the table for the SYN_RECV timeout: room for the whole run.
            let result = try Trial(device: .director, traffic: traffic, rate: 0, seconds: seconds, checksFrames: false,
                                   connectionCapacity: Int(seconds * 1_000_000), prefix: prefix).run()
            runs.append(result)
            print(String(format: "[%d/%d] SYNs in %7.0f/s, connections created %7.0f/s, dropped: table full %llu",
                         round + 1, repeats, result.inputRate, created(result), result.directorStats?["drop_connection_table_full"] ?? 0))
            fflush(nil)
        }
        let rate = Spread(runs.map(created)), input = Spread(runs.map(\.inputRate)), cpu = Spread(runs.map(\.cpuNanosecondsPerFrame))
        let markdown = """
        Unique SYNs (each from a new client address and port) from the generator flat out, for \(seconds) s, to the director (mh, one
        worker on CPU 1); \(repeats) runs, medians (min–max).

        | SYNs in, per second | connections created per second (one core) | CPU µs per SYN | device CPU busy |
        |---|---|---|---|
        | \(input.formatted(digits: 0)) | \(rate.formatted(digits: 0)) | \(cpu.formatted(scale: 1e-3)) | \(Spread(runs.map(\.deviceCPUBusy)).formatted(scale: 100, digits: 0)) % |

        When the device CPU is not fully busy, the generator, not the director, set the rate. The table-and-scheduler
        cost alone, without the kernel, is `swift run -c release pipeline-benchmark` (in process) and the
        microbenchmarks in Benchmarks/Micro.

        """
        print("\n" + markdown)
        try ResultsFolder(path: results).write("new-connections", markdown: ResultsFolder.header("New connections per second") + markdown, raw: runs)
    }

    func created(_ result: Trial.Result) -> Double {
        Double(result.directorStats?["connections_created"] ?? 0) / max(result.generator.seconds, 0.001)
    }
}
