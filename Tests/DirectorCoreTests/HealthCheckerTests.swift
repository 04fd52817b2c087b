import CDirectorShim
@testable import DirectorDaemon
import DirectorSync
import DirectorWire
import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A server on loopback that answers every connection with `answer` and closes it (nil: it
/// closes at once, without a word).
private final class LoopbackServer: @unchecked Sendable {
    let port: UInt16
    let answer: Mutex<String?>
    private let descriptor: Int32
    private let stopping = Atomic<Bool>(false)
    private var thread: Thread?

    init(answer: String?) throws {
        self.answer = Mutex(answer)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        descriptor = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = IPv4Address(127, 0, 0, 1).rawValue.bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && listen(fd, 64) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        try #require(bound)
        port = UInt16(bigEndian: address.sin_port)
        let thread = Thread { [self] in serve() }
        self.thread = thread
        thread.start()
    }

    private func serve() {
        while !stopping.load(ordering: .relaxed) {
            guard director_wait_readable(descriptor, 20_000_000) > 0 else { continue }
            let client = accept(descriptor, nil, nil)
            guard client >= 0 else { continue }
            if let text = answer.withLock({ $0 }) {
                // The request first, as a server reads it.
                var request = [UInt8](repeating: 0, count: 4096)
                _ = director_wait_readable(client, 200_000_000) > 0 ? recv(client, &request, request.count, 0) : 0
                _ = text.withCString { send(client, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
            }
            close(client)
        }
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        usleep(50_000)
        close(descriptor)
    }
}

private final class Changes: Sendable {
    let seen = Mutex<[(HealthKey, Bool, String)]>([])

    func wait(for count: Int, seconds: Double) -> [(HealthKey, Bool, String)] {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline, seen.withLock({ $0.count }) < count { usleep(10_000) }
        return seen.withLock { $0 }
    }
}

private func target(_ probe: HealthCheck.Probe, port: UInt16, server last: UInt8 = 1) -> HealthChecker.Target {
    HealthChecker.Target(
        key: HealthKey(virtualAddress: IPv4Address(198, 18, 0, 100), virtualPort: port, transport: .tcp,
                       serverAddress: IPv4Address(127, 0, 0, last), serverPort: port),
        check: HealthCheck(probe: probe, intervalMilliseconds: 200, timeoutMilliseconds: 200, rise: 2, fall: 2))
}

@Suite("Health checker", .serialized)
struct HealthCheckerTests {
    @Test("TCP: a listening server stays up; closed, it goes down after fall failures")
    func tcp() throws {
        let server = try LoopbackServer(answer: nil)
        let changes = Changes()
        let checker = HealthChecker(device: "", cpu: nil)
        checker.start { key, isUp, why in changes.seen.withLock { $0.append((key, isUp, why)) } }
        defer { checker.stop() }
        checker.check([target(.tcp, port: server.port)])
        usleep(1_000_000)
        #expect(changes.seen.withLock { $0.isEmpty }, "up from the start, and it stays up")
        #expect(checker.passedTotal.load(ordering: .relaxed) >= 4)
        server.stop()
        let seen = changes.wait(for: 1, seconds: 10)
        #expect(seen.count == 1 && seen.first?.1 == false)
        #expect(seen.first?.2.contains("2 tcp check(s) failed in a row, the last: connect: Connection refused") == true, "\(seen.first?.2 ?? "")")
    }

    @Test("HTTP: a 500 takes the server down, a 200 with the text brings it back after rise successes")
    func http() throws {
        let server = try LoopbackServer(answer: "HTTP/1.0 500 Internal Server Error\r\n\r\n")
        defer { server.stop() }
        let changes = Changes()
        let checker = HealthChecker(device: "", cpu: nil)
        checker.start { key, isUp, why in changes.seen.withLock { $0.append((key, isUp, why)) } }
        defer { checker.stop() }
        checker.check([target(.http(path: "/health", status: 200, bodyContains: "ok", usesTLS: false), port: server.port)])
        // The verdict, not the event count: on a starved test machine a check may also time out.
        func status() -> HealthChecker.Status? { checker.statuses.withLock { $0.values.first } }
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, !(status()?.isUp == false && status()?.lastOutcome == "HTTP 500, expected 200") { usleep(20_000) }
        #expect(status()?.isUp == false && status()?.lastOutcome == "HTTP 500, expected 200", "\(status()?.lastOutcome ?? "")")
        #expect(changes.seen.withLock { $0.first?.1 } == false)
        server.answer.withLock { $0 = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall ok\n" }
        let back = Date().addingTimeInterval(10)
        while Date() < back, status()?.isUp != true { usleep(20_000) }
        #expect(status()?.isUp == true && changes.seen.withLock { $0.last?.1 } == true)
    }

    @Test("HTTPS: a TLS server's answer is judged like HTTP's (its certificate not verified); a server that speaks no TLS fails the handshake")
    func https() throws {
        let directory = "/tmp/director-https-check-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func openssl(_ arguments: [String]) throws -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            process.arguments = arguments
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            return process
        }
        let certificate = try openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=realserver", "-days", "1",
                                       "-keyout", "\(directory)/key.pem", "-out", "\(directory)/cert.pem"])
        certificate.waitUntilExit()
        try #require(certificate.terminationStatus == 0)
        // A free port: the kernel's choice for a socket that is then closed.
        let probe = try LoopbackServer(answer: nil)
        let port = probe.port
        probe.stop()
        let server = try openssl(["s_server", "-accept", "127.0.0.1:\(port)", "-cert", "\(directory)/cert.pem", "-key", "\(directory)/key.pem", "-www", "-quiet"])
        defer {
            // SIGKILL: the test runner's threads block SIGTERM, and a child inherits the mask.
            kill(server.processIdentifier, SIGKILL)
            server.waitUntilExit()
        }
        let plain = try LoopbackServer(answer: "HTTP/1.0 200 OK\r\n\r\nok\n")
        defer { plain.stop() }
        usleep(500_000)

        let changes = Changes()
        let checker = HealthChecker(device: "", cpu: nil)
        checker.start { key, isUp, why in changes.seen.withLock { $0.append((key, isUp, why)) } }
        defer { checker.stop() }
        var overTLS = target(.http(path: "/", status: 200, bodyContains: "s_server", usesTLS: true), port: port)
        var notTLS = target(.http(path: "/", status: 200, bodyContains: nil, usesTLS: true), port: plain.port)
        for index in [0, 1] {
            var check = [overTLS, notTLS][index].check
            (check.intervalMilliseconds, check.timeoutMilliseconds) = (250, 250)
            if index == 0 { overTLS.check = check } else { notTLS.check = check }
        }
        checker.check([overTLS, notTLS])
        let seen = changes.wait(for: 1, seconds: 10)
        usleep(1_000_000)
        let statuses = checker.statuses.withLock { $0 }
        #expect(seen.count == 1 && seen.first?.0 == notTLS.key && seen.first?.2.contains("TLS") == true, "\(seen.map(\.2))")
        #expect(statuses[overTLS.key]?.isUp == true && statuses[overTLS.key]?.lastOutcome == "passed", "\(statuses[overTLS.key]?.lastOutcome ?? "")")
        #expect((statuses[overTLS.key]?.passed ?? 0) >= 3, "passed \(statuses[overTLS.key]?.passed ?? 0), failed \(statuses[overTLS.key]?.failed ?? 0)")
    }

    @Test("a command runs with no signal blocked, whatever the director's threads block")
    func commandSignals() throws {
        let marker = "/tmp/director-command-signals-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: marker) }
        var blocked = sigset_t(), previous = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGTERM)
        sigaddset(&blocked, SIGHUP)
        pthread_sigmask(SIG_BLOCK, &blocked, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        let child = try ChildProcess(["/bin/sh", "-c", "grep SigBlk /proc/self/status > \(marker)"])
        var status = child.exitStatus()
        for _ in 0..<200 where status == .running {
            usleep(10_000)
            status = child.exitStatus()
        }
        #expect(status == .exited(0))
        let line = (try? String(contentsOfFile: marker, encoding: .utf8)) ?? ""
        #expect(line.contains("0000000000000000"), "\(line)")
    }

    @Test("a command inherits none of the director's descriptors, not even one left open across exec")
    func commandDescriptors() throws {
        // A descriptor without close-on-exec, as a library might leave one: a daemon the command
        // starts would hold it (a listening socket, the packet ring) for as long as it lives.
        let inheritable = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        try #require(inheritable > 2)
        defer { close(inheritable) }
        // `$$` is the shell itself and `[` is built in: the shell's own descriptors are looked at.
        let child = try ChildProcess(["/bin/sh", "-c", "[ ! -e /proc/$$/fd/\(inheritable) ] && [ ! -e /proc/$$/fd/3 ]"])
        var status = child.exitStatus()
        for _ in 0..<200 where status == .running {
            usleep(10_000)
            status = child.exitStatus()
        }
        #expect(status == .exited(0), "descriptor \(inheritable) or 3 reached the command")
    }

    @Test("command: exit 0 is up, a failure or a program past its timeout is down; a removed target is forgotten")
    func command() throws {
        let changes = Changes()
        let checker = HealthChecker(device: "", cpu: nil)
        checker.start { key, isUp, why in changes.seen.withLock { $0.append((key, isUp, why)) } }
        defer { checker.stop() }
        checker.check([
            target(.command(["/bin/true"]), port: 1),
            target(.command(["/bin/sh", "-c", "test {port} = 1 || exit 3"]), port: 2),
            target(.command(["/bin/sleep", "5"]), port: 3),
        ])
        let seen = changes.wait(for: 2, seconds: 10)
        let byPort = Dictionary(seen.map { ($0.0.serverPort, $0) }, uniquingKeysWith: { first, _ in first })
        #expect(byPort[1] == nil, "/bin/true stays up")
        #expect(byPort[2]?.1 == false && byPort[2]?.2.contains("exit status 3") == true, "{port} became the server's port")
        #expect(byPort[3]?.1 == false && byPort[3]?.2.contains("still running after 200 ms") == true)
        checker.check([target(.command(["/bin/true"]), port: 1)])
        usleep(500_000)
        #expect(checker.statuses.withLock { $0.keys.map(\.serverPort) } == [1])
    }

    @Test("notify: each event runs the command with its words, in order; a failure and a command past its time are counted, the latter killed")
    func notifications() throws {
        let log = "/tmp/director-notify-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: log) }
        let notifier = Notifier(command: ["/bin/sh", "-c", "echo \"$*\" >> \(log); test \"$1\" != fail || exit 4; test \"$1\" != hang || sleep 30", "notify"],
                                timeoutMilliseconds: 300)
        notifier.start()
        defer { notifier.stop() }
        for event in [["peer", "dead", "2"], ["fail", "now"], ["hang", "on"], ["server", "up", "tcp:198.18.0.100:80", "198.18.2.12:80"]] {
            notifier.notify(event)
        }
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline, notifier.ran.load(ordering: .relaxed) < 4 || ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").count < 4 {
            usleep(20_000)
        }
        let lines = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n")
        #expect(lines == ["peer dead 2", "fail now", "hang on", "server up tcp:198.18.0.100:80 198.18.2.12:80"])
        usleep(100_000)
        #expect(notifier.ran.load(ordering: .relaxed) == 4 && notifier.failed.load(ordering: .relaxed) == 2, "exit 4, and the one killed at 300 ms")
    }
}
