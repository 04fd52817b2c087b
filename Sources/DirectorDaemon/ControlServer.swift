import CDirectorShim
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Who is on the other end of a control connection, from the kernel (SO_PEERCRED), not from
/// anything the client says.
struct ControlCaller: Sendable {
    var uid: uid_t
    var pid: pid_t
    /// Root, or a process with CAP_NET_ADMIN: may run the commands that change the director.
    var mayChange: Bool
}

/// The control socket: a Unix stream socket that answers one command per connection
/// (`stats`, `services`, `sync`, `buckets …`). `director stats` is its client.
///
/// Who may connect is the socket file's business: mode 0660 and group `director` when that
/// group exists (so a non-root operator in it can read the stats), otherwise 0600; the mode is
/// set before `listen()`, so there is no moment when anyone else could connect. What a caller
/// may do is the handler's, from `ControlCaller`. A request is one line of at most
/// `requestLimit` bytes; a client gets `clientTimeout` to send it and to take the reply, so a
/// slow or stuck client delays the next one by that much at most and never holds up `stop()`.
final class ControlServer: @unchecked Sendable {
    static let requestLimit = 4096
    static let clientTimeout = timeval(tv_sec: 1, tv_usec: 0)
    static let operatorGroup = "director"

    private let path: String
    private let socket: Int32
    private let handler: @Sendable (String, ControlCaller) -> String
    private var thread = DaemonThread(name: "control")
    /// The connection being served (-1: none), for `stop()` to cut. A lock, not an atomic: the
    /// descriptor is closed under it, so `stop()` never shuts down a number reused meanwhile.
    private let currentClient = Mutex<Int32>(-1)

    init(path: String, handler: @escaping @Sendable (String, ControlCaller) -> String) throws {
        self.path = path
        self.handler = handler
        let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        if !directory.isEmpty { mkdir(directory, 0o755) }
        // A socket file that answers belongs to a running director: never take it away.
        if (try? ControlClient.send("ping", to: path)) == "pong\n" {
            throw ControlError(description: "a director already answers on control socket \(path); stop it first or give this one another --socket")
        }
        unlink(path)
        let fd = socket_unix()
        guard fd >= 0 else { throw ControlError(description: "socket(AF_UNIX) failed: errno \(director_errno())") }
        var address = ControlServer.address(path)
        // The node is created 0600 (umask), then opened to the operator group: never wider.
        let oldMask = umask(0o177)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(oldMask)
        guard bound == 0 else {
            let code = director_errno()
            close(fd)
            throw ControlError(description: "cannot bind control socket \(path): \(String(cString: strerror(code)))")
        }
        do {
            try ControlServer.restrictAccess(path)
        } catch {
            close(fd)
            unlink(path)
            throw error
        }
        guard listen(fd, 16) == 0 else {
            let code = director_errno()
            close(fd)
            unlink(path)
            throw ControlError(description: "cannot listen on control socket \(path): \(String(cString: strerror(code)))")
        }
        socket = fd
    }

    /// Mode 0660 with group `director` if the group exists, else 0600; checked, not assumed.
    private static func restrictAccess(_ path: String) throws {
        var mode: mode_t = 0o600
        if let group = getgrnam(operatorGroup) {
            guard chown(path, geteuid(), group.pointee.gr_gid) == 0 else {
                throw ControlError(description: "cannot give control socket \(path) to group \(operatorGroup): \(String(cString: strerror(director_errno())))")
            }
            mode = 0o660
        }
        var status = stat()
        guard chmod(path, mode) == 0, stat(path, &status) == 0, status.st_mode & 0o777 == mode else {
            throw ControlError(description: "cannot set control socket \(path) to mode \(String(mode, radix: 8))")
        }
    }

    static func address(_ path: String) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (offset, byte) in path.utf8.prefix(buffer.count - 1).enumerated() { buffer[offset] = byte }
        }
        return address
    }

    func start() {
        thread.start { self.serve() }
    }

    private func serve() {
        while true {
            let client = director_accept(socket)
            if client < 0 {
                let code = director_errno()
                if code == EINTR || code == ECONNABORTED { continue }
                return   // the socket was shut down: the director is stopping
            }
            currentClient.withLock { $0 = client }
            serve(client)
            currentClient.withLock {
                $0 = -1
                close(client)
            }
        }
    }

    private func serve(_ client: Int32) {
        var timeout = ControlServer.clientTimeout
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var uid: UInt32 = 0, pid: Int32 = 0
        guard director_peer_credentials(client, &uid, &pid) == 0 else { return }
        let caller = ControlCaller(uid: uid, pid: pid, mayChange: uid == 0 || ControlServer.hasNetworkAdministration(pid))
        let reply: String
        switch ControlServer.readRequest(client) {
        case .line(let command): reply = handler(command, caller)
        case .tooLong: reply = "error: a request is one line of at most \(ControlServer.requestLimit) bytes\n"
        case .none: return
        }
        let bytes = Array(reply.utf8)
        var sent = 0
        while sent < bytes.count {
            let written = bytes[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written <= 0 { return }   // gone, or took longer than the timeout to read
            sent += written
        }
    }

    enum Request: Equatable { case line(String), tooLong, none }

    /// Reads up to the first newline (or the end of the stream), at most `requestLimit` bytes.
    static func readRequest(_ client: Int32) -> Request {
        var buffer = [UInt8](repeating: 0, count: requestLimit + 1)
        var filled = 0
        while filled < buffer.count {
            let count = buffer[filled...].withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if count < 0 { return .none }   // timed out or broken: the client never finished its line
            if count == 0 { break }
            filled += count
            if buffer[filled - count..<filled].contains(UInt8(ascii: "\n")) { break }
        }
        let end = buffer[..<filled].firstIndex(of: UInt8(ascii: "\n")) ?? filled
        guard end <= requestLimit else { return .tooLong }
        return .line(String(decoding: buffer[..<end], as: UTF8.self).trimmingWhitespace())
    }

    /// Whether process `pid` has CAP_NET_ADMIN in its effective set (bit 12 of CapEff).
    static func hasNetworkAdministration(_ pid: pid_t) -> Bool {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
              let mask = UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces), radix: 16) else { return false }
        return mask & (1 << 12) != 0
    }

    func stop() {
        shutdown(socket, Int32(SHUT_RDWR))
        close(socket)
        // A client that does not read must not hold the stop up for its timeout.
        currentClient.withLock { if $0 >= 0 { shutdown($0, Int32(SHUT_RDWR)) } }
        thread.join()
        unlink(path)
    }

    struct ControlError: Error, CustomStringConvertible { let description: String }
}

/// Client side: sends `command`, returns the reply.
public enum ControlClient {
    public static func send(_ command: String, to path: String) throws -> String {
        let fd = socket_unix()
        guard fd >= 0 else { throw ControlServer.ControlError(description: "socket(AF_UNIX) failed") }
        defer { close(fd) }
        var address = ControlServer.address(path)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            throw ControlServer.ControlError(description: "cannot reach the director at \(path): \(String(cString: strerror(director_errno()))) (is it running? is --socket right?)")
        }
        let bytes = Array((command + "\n").utf8)
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            reply += buffer[0..<count]
        }
        return String(decoding: reply, as: UTF8.self)
    }
}

private func socket_unix() -> Int32 { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }

extension String {
    func trimmingWhitespace() -> String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
