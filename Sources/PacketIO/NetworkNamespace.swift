import CDirectorShim
#if canImport(Glibc)
import Glibc
#endif

/// Running code with the calling thread inside another network namespace (setns). Sockets opened
/// there stay there after the thread returns: how a process in one namespace uses interfaces of
/// another (the lab's tests do, so no test interface ever lives in the host's namespace).
public enum NetworkNamespace {
    /// Runs `body` inside the namespace at `path` (e.g. /var/run/netns/NAME, as `ip netns` makes
    /// them), then moves the thread back to the namespace it was in.
    public static func run<T>(in path: String, _ body: () throws -> T) throws -> T {
        let original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        guard original >= 0 else { throw SystemCallError(call: "open", context: "opening this thread's network namespace", errno: director_errno()) }
        defer { close(original) }
        let target = open(path, O_RDONLY | O_CLOEXEC)
        guard target >= 0 else { throw SystemCallError(call: "open", context: "opening network namespace \(path)", errno: director_errno()) }
        defer { close(target) }
        let entered = director_enter_network_namespace(target)
        guard entered == 0 else { throw SystemCallError(call: "setns", context: "entering network namespace \(path)", errno: entered) }
        defer {
            // A thread left in the wrong namespace would quietly break whatever runs on it next.
            precondition(director_enter_network_namespace(original) == 0, "could not return to the original network namespace")
        }
        return try body()
    }
}
