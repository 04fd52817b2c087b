import CDirectorShim
#if canImport(Glibc)
import Glibc
#endif

/// A program the director runs for an operator (a command health check, a notify command):
/// started with posix_spawn, its standard streams on /dev/null, every signal unblocked and at its
/// default action. The director's threads block the signals its main thread waits for (SIGHUP,
/// SIGINT, SIGTERM) and a child inherits a thread's mask: without this, the program could not
/// be stopped with SIGTERM, nor could anything it runs in turn (`timeout`, a shell's traps).
/// Looked at without waiting (`exitStatus`), ended with SIGKILL (`kill`); the caller reaps it.
struct ChildProcess {
    let pid: pid_t

    /// Starts `arguments[0]` (an absolute path) with `arguments`; throws with why it could not.
    init(_ arguments: [String]) throws(ChildProcessError) {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for stream: Int32 in [0, 1, 2] {
            posix_spawn_file_actions_addopen(&actions, stream, "/dev/null", stream == 0 ? O_RDONLY : O_WRONLY, 0)
        }
        var words = arguments.map { strdup($0) } + [nil]
        defer { for word in words { free(word) } }
        var child = pid_t()
        let result = posix_spawn(&child, arguments[0], &actions, &attributes, &words, environ)
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
