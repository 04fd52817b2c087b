import CDirectorShim
import Foundation

/// Runs lab commands (ip, nft, nginx, curl…) with posix_spawn and waitpid. Output goes to files,
/// not pipes: a daemon (nginx) that inherits a pipe would keep it open and a reader would wait
/// for an end that never comes.
public enum Shell {
    public struct Result: Sendable {
        public let status: Int32
        public let output: String
        public let errorOutput: String
    }

    public struct CommandError: Error, CustomStringConvertible {
        public let command: [String]
        public let result: Result
        public var description: String {
            "command failed (exit \(result.status)): \(command.joined(separator: " "))\n\(result.errorOutput)\(result.output.suffix(2000))"
        }
    }

    /// Runs `arguments` (the first is looked up in the usual system folders), waits, and returns
    /// its exit status and output. Throws if it fails and `check` is set.
    @discardableResult
    public static func run(_ arguments: [String], input: String? = nil, check: Bool = true) throws -> Result {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("director-lab-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var inputPath = "/dev/null"
        if let input {
            inputPath = scratch + "/in"
            try input.write(toFile: inputPath, atomically: false, encoding: .utf8)
        }
        let child = try spawn(arguments, input: inputPath, output: scratch + "/out", errors: scratch + "/err")
        let status = wait(child)
        let result = Result(status: status,
                            output: (try? String(contentsOfFile: scratch + "/out", encoding: .utf8)) ?? "",
                            errorOutput: (try? String(contentsOfFile: scratch + "/err", encoding: .utf8)) ?? "")
        if check && status != 0 { throw CommandError(command: arguments, result: result) }
        return result
    }

    /// Starts a command with stdin from `input` and output appended to files; returns its PID.
    public static func spawn(_ arguments: [String], input: String = "/dev/null", output: String, errors: String? = nil) throws -> pid_t {
        let path = resolve(arguments[0])
        let argv = ([path] + arguments.dropFirst()).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = director_spawn(path, argv, input, output, errors, &pid)
        guard result == 0 else {
            throw CommandError(command: arguments, result: Result(status: -1, output: "", errorOutput: "posix_spawn: \(String(cString: strerror(result)))\n"))
        }
        return pid
    }

    /// Waits for a child to exit; its exit status (128 + signal if it was killed).
    @discardableResult
    public static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -1 }
        }
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }

    /// nil while `pid` (a child of ours) runs; its exit status once it has exited (reaping it).
    public static func exitStatus(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }

    static func resolve(_ name: String) -> String {
        if name.hasPrefix("/") { return name }
        for folder in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin", "/usr/local/sbin"] {
            if FileManager.default.isExecutableFile(atPath: "\(folder)/\(name)") { return "\(folder)/\(name)" }
        }
        return "/usr/bin/\(name)"
    }
}
