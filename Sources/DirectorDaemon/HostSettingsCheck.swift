import Foundation

/// At start, the director runs `director-tuning check --role director` for its own interfaces and
/// logs one warning per setting that differs, so operators see it in the log. The script is the
/// single place where the recommended settings live.
enum HostSettingsCheck {
    /// $DIRECTOR_TUNING, an installed copy, or `tuning/` of the checkout the binary was built in.
    static func scriptPath() -> String? {
        var candidates: [String] = []
        if let path = ProcessInfo.processInfo.environment["DIRECTOR_TUNING"] { candidates.append(path) }
        candidates += ["/usr/local/lib/director/director-tuning", "/usr/lib/director/director-tuning"]
        // A build in a checkout (.build/<triple>/<configuration>/director): the nearest ancestor
        // folder that holds tuning/director-tuning.
        var folder = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            candidates.append(folder.appendingPathComponent("tuning/director-tuning").path)
            folder = folder.deletingLastPathComponent()
        }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static func warnAboutDifferences(interfaces: [String], workerCPUs: [Int]) {
        guard let script = scriptPath() else {
            Log.info("host settings not checked: director-tuning not found (set DIRECTOR_TUNING to its path)")
            return
        }
        var arguments = ["check", "--role", "director", "--worker-cpus", workerCPUs.map(String.init).joined(separator: ",")]
        for name in Array(Set(interfaces)).sorted() { arguments += ["--interface", name] }
        let text: String
        do {
            text = try HelperProgram.run(script, arguments).output
        } catch {
            Log.warning("host settings not checked: \(script): \(error)")
            return
        }
        var differing = 0
        for line in text.split(separator: "\n") where line.contains("[DIFFERS]") {
            let columns = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: true)
            guard columns.count == 4 else { continue }
            let why = columns[3].replacingOccurrences(of: "[DIFFERS]", with: "").trimmingCharacters(in: .whitespaces)
            Log.warning("host setting \(columns[0]) is \(columns[1]), recommended \(columns[2]): \(why)")
            differing += 1
        }
        if differing > 0 {
            Log.warning("\(differing) host setting(s) differ; see: \(script) check --role director \(arguments.dropFirst(3).joined(separator: " "))")
        }
    }
}
