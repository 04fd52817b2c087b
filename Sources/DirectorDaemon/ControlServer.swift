import CDirectorShim
#if canImport(Glibc)
import Glibc
#endif

/// The control socket: a Unix stream socket that answers one command per connection
/// (`stats`, `services`, `connections`). `director stats` is its client.
final class ControlServer: @unchecked Sendable {
    private let path: String
    private let socket: Int32
    private let handler: @Sendable (String) -> String
    private var thread = DaemonThread()

    init(path: String, handler: @escaping @Sendable (String) -> String) throws {
        self.path = path
        self.handler = handler
        let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        if !directory.isEmpty { mkdir(directory, 0o755) }
        unlink(path)
        let fd = socket_unix()
        guard fd >= 0 else { throw ControlError(description: "socket(AF_UNIX) failed: errno \(director_errno())") }
        var address = ControlServer.address(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let code = director_errno()
            close(fd)
            throw ControlError(description: "cannot listen on control socket \(path): \(String(cString: strerror(code)))")
        }
        chmod(path, 0o600)
        socket = fd
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
            let client = accept(socket, nil, nil)
            if client < 0 {
                if director_errno() == EINTR { continue }
                return   // the socket was shut down: the director is stopping
            }
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var buffer = [UInt8](repeating: 0, count: 512)
            let count = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            let command = count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self).trimmingWhitespace() : ""
            let reply = Array(handler(command).utf8)
            var sent = 0
            while sent < reply.count {
                let written = reply[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if written <= 0 { break }
                sent += written
            }
            close(client)
        }
    }

    func stop() {
        shutdown(socket, Int32(SHUT_RDWR))
        close(socket)
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

private func socket_unix() -> Int32 { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0) }

extension String {
    func trimmingWhitespace() -> String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
