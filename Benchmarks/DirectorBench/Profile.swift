import DirectorLab
import Foundation

/// Where the device's CPU went during a trial's window: `perf record` of every task on that CPU
/// (cpu-clock, a software event: this VM has no hardware counters), reported by shared object
/// and symbol, with Swift names demangled.
struct Profile: Codable {
    struct Entry: Codable {
        var percent: Double
        var object: String
        var symbol: String
    }
    var entries: [Entry]
    /// Share of the samples outside the kernel (the director's own code and its libraries).
    var userSpacePercent: Double
}

/// A `perf record` running on one CPU for a trial's window.
struct ProfileRecording {
    let process: pid_t
    let dataFile: String
    let directory: String

    init(cpu: Int, seconds: Double, directory: String) throws {
        self.directory = directory
        dataFile = directory + "/perf.data"
        process = try Shell.spawn(["perf", "record", "-q", "-C", String(cpu), "-e", "cpu-clock", "-F", "4999", "-o", dataFile,
                                   "--", "sleep", String(format: "%.1f", seconds)], output: directory + "/perf-record.log")
    }

    func finish() throws -> Profile {
        Shell.wait(process)
        let report = try Shell.run(["sh", "-c", "perf report -i \(dataFile) --stdio --no-children --sort dso,sym --percent-limit 0.3 2>/dev/null"
                                    + " | swift demangle --simplified"]).output
        var entries: [Profile.Entry] = []
        for line in report.split(separator: "\n") where !line.hasPrefix("#") {
            // "    12.34%  director  [.] symbol" or "     3.21%  [kernel.kallsyms]  [k] symbol"
            let fields = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: true)
            guard fields.count == 4, fields[0].hasSuffix("%"), let percent = Double(fields[0].dropLast()) else { continue }
            entries.append(Profile.Entry(percent: percent, object: String(fields[1]), symbol: String(fields[3])))
        }
        // Per object, without a floor: the kernel and its modules are the bracketed ones.
        let objects = try Shell.run(["sh", "-c", "perf report -i \(dataFile) --stdio --no-children --sort dso 2>/dev/null"]).output
        var kernel = 0.0, total = 0.0
        for line in objects.split(separator: "\n") where !line.hasPrefix("#") {
            let fields = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            guard fields.count == 2, fields[0].hasSuffix("%"), let percent = Double(fields[0].dropLast()) else { continue }
            total += percent
            if fields[1].trimmingCharacters(in: .whitespaces).hasPrefix("[") { kernel += percent }
        }
        return Profile(entries: entries, userSpacePercent: total > 0 ? (total - kernel) / total * 100 : 0)
    }
}
