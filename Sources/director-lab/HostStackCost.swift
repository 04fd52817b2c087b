import ArgumentParser
import DirectorLab
import Foundation

/// Measures what the director host's own stack would spend on the director's frames, and what
/// the guard that hides them costs instead. SYNs go to a VIP port with no service: the director
/// counts and drops them the same way in both runs, so the difference in the machine's CPU time
/// per frame is the host stack's work (here the RST path: the lab's director host holds the VIP)
/// minus the guard rule's.
struct HostStackCost: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "host-stack-cost",
        abstract: "Measure the CPU the director host's stack spends on the director's frames, with and without the guard.")
    @Option(help: "Frames per run.") var frames = 200_000
    @Option(help: "Offered frames per second.") var rate = 50_000
    @Option(help: "Runs of each kind (interleaved).") var repeats = 3

    func run() throws {
        let lab = Lab(prefix: "hsc")
        defer { lab.tearDown() }
        try lab.setUp(largeFileMegabytes: 1)
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
        var results: [Bool: [Double]] = [true: [], false: []]
        for _ in 0..<repeats {
            for guarded in [true, false] {
                var settings = LabDirector.Settings()
                settings.hideFramesFromHost = guarded
                settings.workerCPUs = [1]
                let director = try LabDirector(lab: lab, settings: settings)
                try director.start()
                defer { director.stop() }
                let mac = try lab.inNamespace(lab.directorNamespace(0), ["cat", "/sys/class/net/front/address"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
                usleep(300_000)
                let before = try busyNanoseconds()
                try lab.inNamespace(lab.routerNamespace, [binary, "flood", "--destination-mac", mac, "--port", "8080",
                                                          "--count", String(frames), "--rate", String(rate)])
                usleep(300_000)
                let after = try busyNanoseconds()
                let received = try director.stats()["frames_received"] ?? 0
                guard received >= UInt64(frames) * 9 / 10 else {
                    throw ValidationError("the director saw only \(received) of \(frames) frames")
                }
                results[guarded]!.append(Double(after - before) / Double(frames))
            }
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let on = median(results[true]!), off = median(results[false]!)
        print("CPU per frame, whole machine (generator, director, host stack), median of \(repeats), \(frames) frames at \(rate)/s:")
        print("  guard on  (frames hidden from the host stack): \(String(format: "%.2f", on / 1000)) µs   runs: \(results[true]!.map { String(format: "%.2f", $0 / 1000) })")
        print("  guard off (host stack answers with RSTs):      \(String(format: "%.2f", off / 1000)) µs   runs: \(results[false]!.map { String(format: "%.2f", $0 / 1000) })")
        print("  the host stack's work the guard saves, net of the rule: \(String(format: "%.2f", (off - on) / 1000)) µs per frame")
    }

    /// Busy CPU time of the whole machine (all but idle and iowait), from /proc/stat.
    func busyNanoseconds() throws -> UInt64 {
        let line = try String(contentsOfFile: "/proc/stat", encoding: .utf8).split(separator: "\n")[0]
        let fields = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
        let busy = fields.enumerated().filter { $0.offset != 3 && $0.offset != 4 }.map(\.element).reduce(0, +)
        return busy * 1_000_000_000 / UInt64(sysconf(Int32(_SC_CLK_TCK)))
    }
}
