import CDirectorShim
@testable import DirectorDaemon
import DirectorWire
import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The metrics listener against clients on loopback: answers and refusals, and a client that
/// sends and never reads.
@Suite("Metrics server on loopback")
struct MetricsServerTests {
    static func connect(_ port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        precondition(connected == 0, "connect to 127.0.0.1:\(port)")
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    /// One request on a connection of its own; the whole answer (the server closes after it).
    static func ask(_ port: Int, _ request: String) -> String {
        let fd = connect(port)
        defer { close(fd) }
        _ = request.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        var answer: [UInt8] = [], buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            answer += buffer[..<count]
        }
        return String(decoding: answer, as: UTF8.self)
    }

    /// How many requests the route answered.
    final class Calls: Sendable {
        let count = Atomic<Int>(0)
    }

    static func server(body: String, calls: Calls = Calls()) throws -> MetricsServer {
        try MetricsServer(listen: Configuration.ListenAddress(address: IPv4Address(127, 0, 0, 1), port: 0), cpu: nil) { path in
            calls.count.add(1, ordering: .relaxed)
            return path == "/metrics" ? MetricsServer.Response(status: .ok, contentType: MetricsExposition.contentType, body: body)
                : .text(.notFound, "not found\n")
        }
    }

    @Test("GET answers with the route's body and type, HEAD without the body, an unknown path 404, a POST 405 naming the methods")
    func answers() throws {
        let server = try MetricsServerTests.server(body: "director_workers{node=\"1\"} 2\n")
        defer { server.stop() }
        let get = MetricsServerTests.ask(server.localPort, "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        #expect(get.hasPrefix("HTTP/1.1 200 OK") && get.contains("Content-Type: text/plain; version=0.0.4") && get.hasSuffix("director_workers{node=\"1\"} 2\n"), "\(get)")
        let head = MetricsServerTests.ask(server.localPort, "HEAD /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        #expect(head.hasPrefix("HTTP/1.1 200 OK") && head.hasSuffix("\r\n\r\n"), "\(head)")
        #expect(MetricsServerTests.ask(server.localPort, "GET /nothing HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").hasPrefix("HTTP/1.1 404"))
        let post = MetricsServerTests.ask(server.localPort, "POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
        #expect(post.hasPrefix("HTTP/1.1 405") && post.contains("Allow: GET, HEAD"), "\(post)")
        #expect(MetricsServerTests.ask(server.localPort, "NONSENSE\r\n\r\n").hasPrefix("HTTP/1.1 400"))
    }

    @Test("a client that pipelines thousands of requests for a 256 KiB answer and reads none gets a few answered, not thousands (the server stops reading it); other clients are still served")
    func clientThatNeverReads() throws {
        let calls = Calls()
        let server = try MetricsServerTests.server(body: String(repeating: "x", count: 256 * 1024), calls: calls)
        defer { server.stop() }
        let greedy = MetricsServerTests.connect(server.localPort)
        defer { close(greedy) }
        let flags = fcntl(greedy, F_GETFL)
        _ = fcntl(greedy, F_SETFL, flags | O_NONBLOCK)
        let request = Array("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n".utf8)
        var sent = 0
        for _ in 0..<20_000 {
            let count = request.withUnsafeBytes { send(greedy, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count <= 0 { usleep(1_000); continue }
            sent += 1
            if sent >= 5_000 { break }
        }
        usleep(500_000)
        let answered = calls.count.load(ordering: .relaxed)
        let other = MetricsServerTests.ask(server.localPort, "GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        print("metrics server: a client sent \(sent) pipelined requests and read nothing: \(answered) answered; another client got \(other.utf8.count) bytes")
        #expect(answered <= 64, "answered \(answered) of \(sent)")
        #expect(other.hasPrefix("HTTP/1.1 200 OK") && other.utf8.count > 256 * 1024)
    }
}
