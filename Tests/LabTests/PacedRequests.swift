import DirectorLab
import Foundation
import PacketIO
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Requests for /whoami through the VIP at a steady rate, from the lab's client namespace, each
/// on a new connection, with the time it started (on CLOCK_MONOTONIC, as `Lab` reads it) and
/// which real server answered or why it failed. Threads, not curl processes: 200 requests a
/// second cost little CPU and every one is timed exactly.
final class PacedRequests: @unchecked Sendable {
    struct Answer: Sendable {
        /// Monotonic seconds at which the request started.
        var startedAt: Double
        /// "rs1"… when it succeeded.
        var server: String?
        var failure: String?
    }

    private let answers = Mutex<[Answer]>([])
    private var threads: [Thread] = []
    private let done = Atomic<Int>(0)
    private let threadCount: Int

    /// Starts `perSecond` requests a second for `seconds`, on `threads` threads.
    init(_ lab: Lab, perSecond: Int, seconds: Double, threads threadCount: Int = 8) {
        self.threadCount = threadCount
        let start = Double(Lab.monotonicNanoseconds()) / 1e9 + 0.1
        let period = Double(threadCount) / Double(perSecond)
        let perThread = Int(seconds * Double(perSecond)) / threadCount
        let namespace = "/var/run/netns/\(lab.clientNamespace)"
        for index in 0..<threadCount {
            let thread = Thread { [self] in
                defer { done.add(1, ordering: .relaxed) }
                try? NetworkNamespace.run(in: namespace) {
                    for request in 0..<perThread {
                        let due = start + Double(request) * period + period * Double(index) / Double(threadCount)
                        let now = Double(Lab.monotonicNanoseconds()) / 1e9
                        if due > now { usleep(UInt32((due - now) * 1e6)) }
                        let startedAt = Double(Lab.monotonicNanoseconds()) / 1e9
                        let (server, failure) = PacedRequests.fetch(from: Lab.clientAddresses[index % Lab.clientAddresses.count])
                        answers.withLock { $0.append(Answer(startedAt: startedAt, server: server, failure: failure)) }
                    }
                }
            }
            threads.append(thread)
            thread.start()
        }
    }

    /// Waits for the last request and returns every answer, in the order they started.
    func finish() -> [Answer] {
        while done.load(ordering: .relaxed) < threadCount { usleep(20_000) }
        return answers.withLock { $0 }.sorted { $0.startedAt < $1.startedAt }
    }

    /// One GET /whoami on a connection of its own, a second at most for each step.
    private static func fetch(from client: String) -> (server: String?, failure: String?) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return (nil, "socket") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        func address(_ text: String, _ port: UInt16) -> sockaddr_in {
            var value = sockaddr_in()
            value.sin_family = sa_family_t(AF_INET)
            value.sin_port = port.bigEndian
            inet_pton(AF_INET, text, &value.sin_addr)
            return value
        }
        var local = address(client, 0), remote = address(Lab.virtualAddress, 80)
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        guard withUnsafePointer(to: &local, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }) == 0 else {
            return (nil, "bind: \(String(cString: strerror(errno)))")
        }
        guard withUnsafePointer(to: &remote, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } }) == 0 else {
            return (nil, "connect: \(String(cString: strerror(errno)))")
        }
        let request = "GET /whoami HTTP/1.0\r\nHost: \(Lab.virtualAddress)\r\n\r\n"
        guard request.withCString({ send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }) > 0 else { return (nil, "send: \(String(cString: strerror(errno)))") }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count < 0 { return (nil, "recv: \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            response += buffer[..<count]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.1 200") else { return (nil, "answer: \(text.prefix(40))") }
        // Swift reads "\r\n" as one character: split on newlines, not on "\n".
        return (text.split(whereSeparator: \.isNewline).last.map { String($0) }, nil)
    }
}
