import CDirectorShim
import DirectorWire
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One check of one real server, in flight: a non-blocking socket connecting (tcp, http) and a
/// request answered (http), or a program running (command). Nothing in it blocks: the checker
/// polls many at once, so a server that never answers costs its own timeout and nobody else's.
final class HealthProbe {
    /// The most of an HTTP answer that is read; the status line and the start of the body are
    /// what is judged.
    static let responseLimit = 65536

    enum Outcome: Equatable {
        case passed
        case failed(String)
    }

    private enum Phase {
        case connecting
        case sending
        case reading
        case running(Process)
        case finished
    }

    let deadline: UInt64
    private(set) var descriptor: Int32 = -1
    private var phase: Phase = .finished
    private var request: [UInt8] = []
    private var response: [UInt8] = []
    private let check: HealthCheck
    private let timeoutMilliseconds: UInt64

    /// Starts checking `address`:`port` (the check's port when it has one); `device`: the
    /// interface the check leaves by (the back one: where the frames go). An outcome at once
    /// when the check could not even start.
    init(_ check: HealthCheck, address: IPv4Address, port: UInt16, device: String, now: UInt64) {
        self.check = check
        timeoutMilliseconds = check.timeoutMilliseconds
        deadline = now + check.timeoutMilliseconds
        let port = check.port ?? port
        switch check.probe {
        case .command(let words):
            let process = Process()
            process.executableURL = URL(fileURLWithPath: words[0])
            process.arguments = words.dropFirst().map {
                $0.replacingOccurrences(of: "{address}", with: "\(address)").replacingOccurrences(of: "{port}", with: "\(port)")
            }
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            do {
                try process.run()
                phase = .running(process)
            } catch {
                early = .failed("\(words[0]) did not start: \(error)")
            }
        case .tcp, .http:
            if case .http(let path, _, _) = check.probe {
                request = Array("GET \(path) HTTP/1.0\r\nHost: \(address):\(port)\r\nUser-Agent: director-health-check\r\nConnection: close\r\n\r\n".utf8)
            }
            early = connect(to: address, port: port, device: device)
        }
    }

    /// What was known before any waiting (a refused socket, a program that would not start).
    private(set) var early: Outcome?

    private func connect(to address: IPv4Address, port: UInt16, device: String) -> Outcome? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failed("socket: \(String(cString: strerror(errno)))") }
        descriptor = fd
        if !device.isEmpty, setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, device, socklen_t(device.utf8.count)) != 0 {
            return finish(.failed("binding the check to \(device): \(String(cString: strerror(errno)))"))
        }
        // No TIME_WAIT left behind per check: a close resets the connection.
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = port.bigEndian
        target.sin_addr.s_addr = address.rawValue.bigEndian
        let result = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result != 0, errno != EINPROGRESS { return finish(.failed("connect: \(String(cString: strerror(errno)))")) }
        phase = .connecting
        return nil
    }

    /// The poll(2) events the probe waits for; 0 when it waits on no socket (a program).
    var pollEvents: Int16 {
        switch phase {
        case .connecting, .sending: Int16(POLLOUT)
        case .reading: Int16(POLLIN)
        case .running, .finished: 0
        }
    }

    /// Moves on after poll(2) reported `events` on the socket (or, for a program, after any
    /// wait); the outcome once there is one.
    func advance(events: Int16) -> Outcome? {
        switch phase {
        case .finished:
            return nil
        case .running(let process):
            guard !process.isRunning else { return nil }
            let status = process.terminationStatus
            phase = .finished
            if process.terminationReason == .uncaughtSignal { return .failed("killed by signal \(status)") }
            return status == 0 ? .passed : .failed("exit status \(status)")
        case .connecting:
            guard events != 0 else { return nil }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &error, &length)
            if error != 0 { return finish(.failed("connect: \(String(cString: strerror(error)))")) }
            guard case .http = check.probe else { return finish(.passed) }
            phase = .sending
            return advance(events: Int16(POLLOUT))
        case .sending:
            guard events != 0 else { return nil }
            let sent = request.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 {
                return errno == EAGAIN ? nil : finish(.failed("sending the request: \(String(cString: strerror(errno)))"))
            }
            request.removeFirst(sent)
            if request.isEmpty { phase = .reading }
            return nil
        case .reading:
            guard events != 0 else { return nil }
            var chunk = [UInt8](repeating: 0, count: 16384)
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                return errno == EAGAIN ? nil : finish(.failed("reading the answer: \(String(cString: strerror(errno)))"))
            }
            response += chunk[..<count]
            guard count == 0 || response.count >= HealthProbe.responseLimit else { return nil }
            guard case .http(_, let status, let body) = check.probe else { return finish(.passed) }
            return finish(HealthProbe.judge(response, expectedStatus: status, bodyContains: body))
        }
    }

    /// The outcome of a probe still going at its deadline: it failed, and is stopped.
    func expire() -> Outcome {
        let waited: String
        switch phase {
        case .connecting: waited = "no connection"
        case .sending, .reading: waited = "no whole answer"
        case .running: waited = "the program still running"
        case .finished: waited = "no outcome"
        }
        return finish(.failed("\(waited) after \(timeoutMilliseconds) ms"))
    }

    /// Stops whatever is in flight (a check removed by a reload, the director stopping).
    func cancel() { _ = finish(.failed("cancelled")) }

    private func finish(_ outcome: Outcome) -> Outcome {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
        if case .running(let process) = phase, process.isRunning { kill(process.processIdentifier, SIGKILL) }
        phase = .finished
        return outcome
    }

    /// Judges an HTTP answer: its status line's code, and the text its body must hold.
    static func judge(_ response: [UInt8], expectedStatus: Int, bodyContains: String?) -> Outcome {
        let text = String(decoding: response, as: UTF8.self)
        guard let statusLine = text.split(separator: "\r\n", maxSplits: 1, omittingEmptySubsequences: false).first,
              statusLine.hasPrefix("HTTP/") else {
            return .failed(response.isEmpty ? "an empty answer" : "not an HTTP answer")
        }
        let words = statusLine.split(separator: " ", maxSplits: 2)
        guard words.count >= 2, let status = Int(words[1]) else { return .failed("no status in \"\(statusLine.prefix(80))\"") }
        guard status == expectedStatus else { return .failed("HTTP \(status), expected \(expectedStatus)") }
        if let bodyContains {
            guard let start = text.range(of: "\r\n\r\n") else { return .failed("no body") }
            guard text[start.upperBound...].contains(bodyContains) else { return .failed("the body lacks \"\(bodyContains)\"") }
        }
        return .passed
    }
}
