import CDirectorShim
#if canImport(Glibc)
import Glibc
#endif

/// One director per front interface: a second `director run` on the same interface would join
/// the same fan-out, attach its own filter and forward every frame a second time. The lock is
/// an abstract Unix socket named after the interface. Abstract names live in the network
/// namespace (two lab directors with interfaces of the same name in two namespaces do not
/// collide), need no file that could be left behind, and the kernel frees one when its process
/// ends, however it ends.
final class InstanceLock {
    private let socket: Int32
    let name: String

    init(frontInterface: String) throws {
        name = "director/front/\(frontInterface)"
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw LockError(description: "socket(AF_UNIX) failed: \(String(cString: strerror(director_errno())))") }
        // A leading NUL makes the name abstract; the length, not a terminator, ends it.
        var address = ControlServer.address("\u{0}" + name)
        let length = socklen_t(MemoryLayout<sa_family_t>.size + min(name.utf8.count + 1, MemoryLayout.size(ofValue: address.sun_path)))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else {
            let code = director_errno()
            close(fd)
            if code == EADDRINUSE {
                throw LockError(description: "another director already runs on front interface \(frontInterface) in this network namespace; "
                                + "stop it first (two would forward every frame twice)")
            }
            throw LockError(description: "cannot take the lock for front interface \(frontInterface): \(String(cString: strerror(code)))")
        }
        socket = fd
    }

    deinit { close(socket) }

    struct LockError: Error, CustomStringConvertible { let description: String }
}
