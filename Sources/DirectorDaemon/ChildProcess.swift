import CDirectorShim
#if canImport(Glibc)
import Glibc
#endif

/// A program the director runs for an operator (a command health check, a notify command):
/// started by `director_spawn` (every signal unblocked: the director's threads block the ones its
/// main thread waits for), its standard streams on /dev/null.
/// Looked at without waiting (`exitStatus`), ended with SIGKILL (`kill`); the caller reaps it.
struct ChildProcess {
    let pid: pid_t

    /// Starts `arguments[0]` (an absolute path) with `arguments`; throws with why it could not.
    init(_ arguments: [String]) throws(ChildProcessError) {
        let words = arguments.map { strdup($0) } + [nil]
        defer { for word in words { free(word) } }
        var child = pid_t()
        let result = director_spawn(arguments[0], words, "/dev/null", "/dev/null", "/dev/null", &child)
        guard result == 0 else { throw ChildProcessError(program: arguments[0], errno: result) }
        pid = child
    }

    enum Status: Equatable {
        case running
        case exited(Int32)
        case killed(signal: Int32)
    }

    /// Reaps the program if it has ended (once: after an end is reported, ask no more).
    func exitStatus() -> Status {
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return .running }
        let signal = status & 0x7F
        return signal == 0 ? .exited((status >> 8) & 0xFF) : .killed(signal: signal)
    }

    /// Ends the program at once and reaps it.
    func kill() {
        _ = Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
    }
}

struct ChildProcessError: Error, CustomStringConvertible {
    let program: String
    let errno: Int32
    var description: String { "\(program) did not start: \(String(cString: strerror(errno)))" }
}
