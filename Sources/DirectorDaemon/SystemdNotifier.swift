import CDirectorShim
#if canImport(Glibc)
import Glibc
#endif

/// The service manager's side of a `Type=notify` unit (`sd_notify(3)`, without libsystemd):
/// datagrams to `NOTIFY_SOCKET` saying the director is ready, reloading or stopping, and the
/// watchdog's keep-alive. Without `NOTIFY_SOCKET` (not under systemd) every call does nothing.
final class SystemdNotifier: Sendable {
    private let socketPath: String?
    /// Half of `WATCHDOG_USEC`, when systemd watches this process: how often to say WATCHDOG=1.
    let watchdogFeedNanoseconds: UInt64?

    init(environment: [String: String] = SystemdNotifier.processEnvironment()) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        let forThisProcess = environment["WATCHDOG_PID"].map { $0 == String(getpid()) } ?? true
        if forThisProcess, let text = environment["WATCHDOG_USEC"], let microseconds = UInt64(text), microseconds > 0 {
            watchdogFeedNanoseconds = microseconds * 1_000 / 2
        } else {
            watchdogFeedNanoseconds = nil
        }
    }

    var isActive: Bool { socketPath != nil }

    @discardableResult
    func ready() -> Bool { send("READY=1\nSTATUS=forwarding") }

    /// Around a reload: RELOADING=1 with the monotonic time systemd 253 and later want, then READY=1.
    @discardableResult
    func reloading() -> Bool { send("RELOADING=1\nMONOTONIC_USEC=\(director_monotonic_nanoseconds() / 1_000)") }

    @discardableResult
    func stopping() -> Bool { send("STOPPING=1") }

    @discardableResult
    func watchdog() -> Bool { send("WATCHDOG=1") }

    @discardableResult
    func status(_ text: String) -> Bool { send("STATUS=\(text)") }

    /// One datagram; an abstract socket's name starts with "@".
    func send(_ message: String) -> Bool {
        guard let socketPath else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let name = Array(socketPath.utf8)
        guard name.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (offset, byte) in name.enumerated() { buffer[offset] = byte }
            if name.first == UInt8(ascii: "@") { buffer[0] = 0 }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + name.count + (name.first == UInt8(ascii: "@") ? 0 : 1))
        let bytes = Array(message.utf8)
        let sent = bytes.withUnsafeBytes { payload in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, payload.baseAddress, payload.count, Int32(MSG_NOSIGNAL), $0, length) }
            }
        }
        return sent == bytes.count
    }

    static func processEnvironment() -> [String: String] {
        var environment: [String: String] = [:]
        for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            if let value = getenv(name) { environment[name] = String(cString: value) }
        }
        return environment
    }
}
