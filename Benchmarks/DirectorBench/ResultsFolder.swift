import Foundation

/// Where a run leaves its report: Markdown for people, JSON for the next comparison.
struct ResultsFolder {
    let path: String

    func write<Raw: Encodable>(_ name: String, markdown: String, raw: Raw) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try markdown.write(toFile: "\(path)/\(name).md", atomically: true, encoding: .utf8)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(raw).write(to: URL(fileURLWithPath: "\(path)/\(name).json"))
        print("report: \(path)/\(name).md, raw: \(path)/\(name).json")
    }

    /// The first lines of every report: when, where, and the command that reproduces it.
    static func header(_ title: String) -> String {
        let kernel = (try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
        return """
        # \(title)

        Measured \(ISO8601DateFormatter().string(from: Date())) on Linux \(kernel), \(ProcessInfo.processInfo.activeProcessorCount) CPUs.
        Command: `\(CommandLine.arguments.joined(separator: " "))`


        """
    }
}
