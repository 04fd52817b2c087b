import CDirectorShim
import CTLSClient
import DirectorWire
#if canImport(Glibc)
import Glibc
#endif

/// One check of one real server, in flight: a non-blocking socket connecting (tcp, http, https),
/// a TLS handshake (https) and a request answered (http, https), or a program running (command). Nothing in it blocks: the checker
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
        case handshaking
        case sending
        case reading
        case running(ChildProcess)
        case finished
    }

    let deadline: UInt64
    private(set) var descriptor: Int32 = -1
    private var phase: Phase = .finished
    private var request: [UInt8] = []
    private var response: [UInt8] = []
    private let check: HealthCheck
    private let timeoutMilliseconds: UInt64
    private let address: IPAddress
    /// The TLS session of an https check, once connected.
    private var tls: OpaquePointer?
    /// What the TLS session waits for (it may need to write while reading, and the reverse).
    private var tlsWantsWrite = false

    /// Starts checking `address`:`port` (the check's port when it has one); `device`: the
    /// interface the check leaves by (the back one: where the frames go). An outcome at once
    /// when the check could not even start.
    init(_ check: HealthCheck, address: IPAddress, port: UInt16, device: String, now: UInt64) {
        self.check = check
        self.address = address
        timeoutMilliseconds = check.timeoutMilliseconds
        deadline = now + check.timeoutMilliseconds
        let port = check.port ?? port
        switch check.probe {
        case .command(let words):
            let arguments = [words[0]] + words.dropFirst().map {
                $0.replacing("{address}", with: "\(address)").replacing("{port}", with: "\(port)")
            }
            do {
                phase = .running(try ChildProcess(arguments))
            } catch {
                early = .failed("\(error)")
            }
        case .tcp, .http:
            if case .http(let path, _, _, _) = check.probe {
                request = Array("GET \(path) HTTP/1.0\r\nHost: \(address.description(port: port))\r\nUser-Agent: director-health-check\r\nConnection: close\r\n\r\n".utf8)
            }
            early = connect(to: address, port: port, device: device)
        }
    }

    /// What was known before any waiting (a refused socket, a program that would not start).
    private(set) var early: Outcome?

    private func connect(to address: IPAddress, port: UInt16, device: String) -> Outcome? {
        let fd = socket(address.isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failed("socket: \(String(cString: strerror(errno)))") }
        descriptor = fd
        if !device.isEmpty, setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, device, socklen_t(device.utf8.count)) != 0 {
            return finish(.failed("binding the check to \(device): \(String(cString: strerror(errno)))"))
        }
        // No TIME_WAIT left behind per check: a close resets the connection.
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        // Built here, not by PacketIO's: an initializer added to the C struct in another module
        // is not found from this one in a clean build (the struct reaches the two modules
        // through different Clang modules).
        let result: Int32
        switch address {
        case .v4(let address):
            var target = sockaddr_in()
            target.sin_family = sa_family_t(AF_INET)
            target.sin_port = port.bigEndian
            target.sin_addr.s_addr = address.rawValue.bigEndian
            result = withUnsafePointer(to: &target) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .v6(let address):
            var target = sockaddr_in6()
            target.sin6_family = sa_family_t(AF_INET6)
            target.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &target.sin6_addr) { bytes in
                for (index, octet) in address.octets.enumerated() { bytes[index] = octet }
            }
            result = withUnsafePointer(to: &target) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        if result != 0, errno != EINPROGRESS { return finish(.failed("connect: \(String(cString: strerror(errno)))")) }
        phase = .connecting
        return nil
    }

    /// The poll(2) events the probe waits for; 0 when it waits on no socket (a program).
    var pollEvents: Int16 {
        switch phase {
        case .connecting: Int16(POLLOUT)
        case .handshaking: tlsEvents
        case .sending: tls == nil ? Int16(POLLOUT) : tlsEvents
        case .reading: tls == nil ? Int16(POLLIN) : tlsEvents
        case .running, .finished: 0
        }
    }

    private var tlsEvents: Int16 { Int16(tlsWantsWrite ? POLLOUT : POLLIN) }

    /// Moves on after poll(2) reported `events` on the socket (or, for a program, after any
    /// wait); the outcome once there is one.
    func advance(events: Int16) -> Outcome? {
        switch phase {
        case .finished:
            return nil
        case .running(let process):
            switch process.exitStatus() {
            case .running: return nil
            case .exited(let status):
                phase = .finished
                return status == 0 ? .passed : .failed("exit status \(status)")
            case .killed(let signal):
                phase = .finished
                return .failed("killed by signal \(signal)")
            }
        case .connecting:
            guard events != 0 else { return nil }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &error, &length)
            if error != 0 { return finish(.failed("connect: \(String(cString: strerror(error)))")) }
            guard case .http(_, _, _, let usesTLS) = check.probe else { return finish(.passed) }
            guard usesTLS else {
                phase = .sending
                return advance(events: Int16(POLLOUT))
            }
            tls = director_tls_new(descriptor, "\(address)")
            guard tls != nil else { return finish(.failed("TLS: \(String(cString: director_tls_last_error()))")) }
            phase = .handshaking
            return advance(events: Int16(POLLOUT))
        case .handshaking:
            guard events != 0 else { return nil }
            switch director_tls_handshake(tls) {
            case Int32(DIRECTOR_TLS_DONE):
                phase = .sending
                return advance(events: Int16(POLLOUT))
            case Int32(DIRECTOR_TLS_WANTS_READ): tlsWantsWrite = false
            case Int32(DIRECTOR_TLS_WANTS_WRITE): tlsWantsWrite = true
            default: return finish(.failed("TLS \(String(cString: director_tls_last_error()))"))
            }
            return nil
        case .sending:
            guard events != 0 else { return nil }
            switch transmit() {
            case .failure(let why): return finish(.failed("sending the request: \(why)"))
            case .success(let sent?):
                request.removeFirst(sent)
                if request.isEmpty { phase = .reading }
            case .success(nil): break
            }
            return nil
        case .reading:
            guard events != 0 else { return nil }
            var chunk = [UInt8](repeating: 0, count: 16384)
            let count: Int
            switch receive(into: &chunk) {
            case .failure(let why): return finish(.failed("reading the answer: \(why)"))
            case .success(nil): return nil
            case .success(let received?): count = received
            }
            response += chunk[..<count]
            guard count == 0 || response.count >= HealthProbe.responseLimit else { return nil }
            guard case .http(_, let status, let body, _) = check.probe else { return finish(.passed) }
            return finish(HealthProbe.judge(response, expectedStatus: status, bodyContains: body))
        }
    }

    private struct Failure: Error { let why: String }

    /// Sends what is left of the request (through TLS for https): how much went, or nil to wait.
    private func transmit() -> Result<Int?, Failure> {
        guard let tls else {
            let sent = request.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent >= 0 { return .success(sent) }
            return errno == EAGAIN ? .success(nil) : .failure(Failure(why: String(cString: strerror(errno))))
        }
        let sent = request.withUnsafeBytes { director_tls_write(tls, $0.baseAddress, $0.count) }
        return tlsStep(sent)
    }

    /// Reads the answer (through TLS for https): how much came (0: all of it), or nil to wait.
    private func receive(into chunk: inout [UInt8]) -> Result<Int?, Failure> {
        guard let tls else {
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count >= 0 { return .success(count) }
            return errno == EAGAIN ? .success(nil) : .failure(Failure(why: String(cString: strerror(errno))))
        }
        let count = chunk.withUnsafeMutableBytes { director_tls_read(tls, $0.baseAddress, $0.count) }
        return tlsStep(count)
    }

    private func tlsStep(_ result: Int) -> Result<Int?, Failure> {
        switch result {
        case 0...: return .success(result)
        case Int(DIRECTOR_TLS_WANTS_READ):
            tlsWantsWrite = false
            return .success(nil)
        case Int(DIRECTOR_TLS_WANTS_WRITE):
            tlsWantsWrite = true
            return .success(nil)
        default: return .failure(Failure(why: "TLS \(String(cString: director_tls_last_error()))"))
        }
    }

    /// The outcome of a probe still going at its deadline: it failed, and is stopped.
    func expire() -> Outcome {
        let waited: String
        switch phase {
        case .connecting: waited = "no connection"
        case .handshaking: waited = "no TLS handshake"
        case .sending, .reading: waited = "no whole answer"
        case .running: waited = "the program still running"
        case .finished: waited = "no outcome"
        }
        return finish(.failed("\(waited) after \(timeoutMilliseconds) ms"))
    }

    /// Stops whatever is in flight (a check removed by a reload, the director stopping).
    func cancel() { _ = finish(.failed("cancelled")) }

    private func finish(_ outcome: Outcome) -> Outcome {
        if let tls { director_tls_free(tls) }
        tls = nil
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
        if case .running(let process) = phase { process.kill() }
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
