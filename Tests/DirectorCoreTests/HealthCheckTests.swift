import DirectorCore
@testable import DirectorDaemon
import DirectorSync
import DirectorWire
import Testing

private func parse(_ service: String, director extra: String = "") throws(ConfigurationError) -> Configuration {
    try ConfigurationParser.parse(yaml: """
    director:
      front_interface: front
      back_interface: back
    \(extra)
    services:
      - address: 198.18.0.100
        port: 80
    \(service)
    """)
}

private func refusal(_ service: String, director extra: String = "") -> ConfigurationError? {
    do {
        _ = try parse(service, director: extra)
        return nil
    } catch {
        return error
    }
}

private let servers = """
    real_servers:
      - { address: 198.18.2.11, mac: "02:00:00:00:02:11" }
      - { address: 198.18.2.12, mac: "02:00:00:00:02:12", health_check: { type: tcp, port: 8080, fall: 5 } }
      - { address: 198.18.2.13, mac: "02:00:00:00:02:13", health_check: none }
"""

private func key(_ last: UInt8) -> HealthKey {
    HealthKey(virtualAddress: IPv4Address(198, 18, 0, 100), virtualPort: 80, transport: .tcp, serverAddress: IPv4Address(198, 18, 2, last), serverPort: 80)
}

@Suite("Health checks")
struct HealthCheckTests {
    @Test("a service's check applies to each server, with the server's overrides; none turns it off")
    func perServerOverrides() throws {
        let config = try parse("""
            health_check: { type: http, path: /health, status: 200, body: ok, interval: 0.5, timeout: 0.25, rise: 3, fall: 2 }
            on_server_down: reset
            fallback: { address: 198.18.2.99, mac: "02:00:00:00:02:99" }
        \(servers)
        """, director: "  notify: [/bin/true, --site, lab]")
        let service = config.services[0]
        let inherited = HealthCheck(probe: .http(path: "/health", status: 200, bodyContains: "ok", usesTLS: false), intervalMilliseconds: 500,
                                    timeoutMilliseconds: 250, rise: 3, fall: 2)
        #expect(service.healthCheck == inherited && service.realServers[0].healthCheck == inherited)
        #expect(service.realServers[1].healthCheck == HealthCheck(probe: .tcp, port: 8080, intervalMilliseconds: 500, timeoutMilliseconds: 250, rise: 3, fall: 5),
                "a type of its own starts that type afresh but keeps the service's timing")
        #expect(service.realServers[2].healthCheck == nil)
        #expect(service.onServerDown == .reset && service.fallback?.address == .v4(IPv4Address(198, 18, 2, 99)))
        #expect(config.notifyCommand == ["/bin/true", "--site", "lab"])
        let targets = LiveServices(services: config.services, timeouts: config.timeouts).healthTargets
        #expect(targets.map(\.key.serverAddress) == [.v4(IPv4Address(198, 18, 2, 11)), .v4(IPv4Address(198, 18, 2, 12))])
    }

    @Test("what a health check cannot be is refused, naming the field")
    func refusals() {
        let cases: [(String, String, String)] = [
            ("health_check: { type: ping }", "services[0].health_check.type", "expected tcp, http, https or command"),
            ("health_check: { interval: 1 }", "services[0].health_check.type", "is required"),
            ("health_check: { type: tcp, interval: 1, timeout: 2 }", "services[0].health_check.timeout", "to the interval"),
            ("health_check: { type: tcp, rise: 0 }", "services[0].health_check.rise", "from 1 to 100"),
            ("health_check: { type: http, path: \"/a b\" }", "services[0].health_check.path", "no spaces"),
            ("health_check: { type: http, path: \"/a\\r\\nX: y\" }", "services[0].health_check.path", "no spaces"),
            ("health_check: { type: http, status: 700 }", "services[0].health_check.status", "from 100 to 599"),
            ("health_check: { type: tcp, path: /x }", "services[0].health_check.path", "not a field of a tcp check"),
            ("health_check: { type: command }", "services[0].health_check.command", "is required"),
            ("health_check: { type: command, command: [relative/check] }", "services[0].health_check.command", "absolute path"),
            ("health_check: { type: command, command: [/nonexistent/check] }", "services[0].health_check.command", "not an executable"),
            ("health_check: sometimes", "services[0].health_check", "or none"),
            ("on_server_down: drop", "services[0].on_server_down", "keep"),
            ("fallback: { address: 198.18.2.11, weight: 3 }", "services[0].fallback.weight", "unknown field"),
            ("fallback: { address: 198.18.2.11 }", "services[0].fallback", "one of the service's real servers"),
        ]
        for (yaml, field, problem) in cases {
            let error = refusal("    \(yaml)\n" + servers)
            #expect(error?.field == field, "\(yaml)")
            #expect(error?.problem.contains(problem) == true, "\(yaml): \(error?.problem ?? "accepted")")
        }
        #expect(refusal(servers, director: "  notify: [notify.sh]")?.field == "director.notify")
    }

    @Test("a server down takes no new connection; all down, the fallback takes them; reset is for the services that ask")
    func serviceTableFollowsHealth() throws {
        let config = try parse("""
            health_check: { type: tcp }
            on_server_down: reset
            fallback: { address: 198.18.2.99, mac: "02:00:00:00:02:99" }
        \(servers)
        """)
        let live = LiveServices(services: config.services, timeouts: config.timeouts)
        let healthy = live.serviceTable(resolvedMACs: [:], generation: 1)
        #expect(healthy.services[0].pool.map(\.weight) == [1, 1, 1, 0] && !healthy.resetsAnyConnections, "the fallback waits, weight 0")
        let oneDown = live.serviceTable(resolvedMACs: [:], generation: 2, down: [key(12)])
        let down = try #require(oneDown.services[0].pool.first { $0.address == IPv4Address(198, 18, 2, 12) })
        #expect(oneDown.services[0].pool.map(\.weight) == [1, 0, 1, 0], "weight 0, as drained")
        #expect(oneDown.destinationMAC(down.id) == MACAddress("02:00:00:00:02:12")!, "its connections still know where it is")
        #expect(oneDown.resetsConnections(of: down.id) && !oneDown.resetsConnections(of: oneDown.services[0].pool[0].id))
        let allDown = live.serviceTable(resolvedMACs: [:], generation: 3, down: [key(11), key(12), key(13)])
        #expect(allDown.services[0].pool.map(\.weight) == [0, 0, 0, 1])
        #expect(allDown.services[0].pool.last?.address == .v4(IPv4Address(198, 18, 2, 99)))
        #expect(allDown.retired.isEmpty, "the fallback is a server of the service, not a retired one")
    }

    @Test("the pair's verdict: down when either side says so; an older report never undoes a newer one; a forgotten peer counts no more")
    func pairVerdict() {
        var board = HealthBoard()
        board.setOwn(key(11), isUp: false)
        #expect(board.down == [key(11)])
        board.takePeer(version: 5, reports: [ServerHealthReport(key(12), isUp: false), ServerHealthReport(key(11), isUp: true)])
        #expect(board.down == [key(11), key(12)])
        board.takePeer(version: 4, reports: [ServerHealthReport(key(12), isUp: true)])
        #expect(board.down.contains(key(12)), "a reordered older report is ignored")
        board.takePeer(version: 6, reports: [ServerHealthReport(key(12), isUp: true)])
        board.setOwn(key(11), isUp: true)
        #expect(board.down.isEmpty)
        board.takePeer(version: 7, reports: [ServerHealthReport(key(13), isUp: false)])
        board.forgetPeer()
        #expect(board.down.isEmpty)
        board.setOwn(key(13), isUp: false)
        board.takePeer(version: 8, reports: [ServerHealthReport(key(12), isUp: false)])
        board.keep(own: [key(11)], peer: [key(11), key(12)])
        #expect(board.down == [key(12)], "a server no longer checked here is forgotten, the peer's view of one still served kept")
        board.keep(own: [], peer: [])
        #expect(board.down.isEmpty)
    }

    @Test("the checks' thread takes the first CPU no worker or sync thread has, none when all are taken")
    func spareCPU() {
        #expect(HealthChecker.spareCPU(of: 4, busy: [0, 2, 1]) == 3)
        #expect(HealthChecker.spareCPU(of: 8, busy: [2, 3]) == 0)
        #expect(HealthChecker.spareCPU(of: 2, busy: [0, 1]) == nil)
    }

    @Test("an HTTP answer passes on its status and, when asked, a text in its body")
    func httpJudgement() {
        func answer(_ text: String) -> [UInt8] { Array(text.utf8) }
        #expect(HealthProbe.judge(answer("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"), expectedStatus: 200, bodyContains: "ok") == .passed)
        #expect(HealthProbe.judge(answer("HTTP/1.1 500 Internal Server Error\r\n\r\n"), expectedStatus: 200, bodyContains: nil) == .failed("HTTP 500, expected 200"))
        #expect(HealthProbe.judge(answer("HTTP/1.1 200 OK\r\n\r\nfine"), expectedStatus: 200, bodyContains: "ok") == .failed("the body lacks \"ok\""))
        #expect(HealthProbe.judge(answer("HTTP/1.0 204 No Content\r\n\r\n"), expectedStatus: 204, bodyContains: nil) == .passed)
        #expect(HealthProbe.judge([], expectedStatus: 200, bodyContains: nil) == .failed("an empty answer"))
        #expect(HealthProbe.judge(answer("SSH-2.0-OpenSSH\r\n"), expectedStatus: 200, bodyContains: nil) == .failed("not an HTTP answer"))
        #expect(HealthProbe.judge(answer("HTTP/1.1 abc\r\n\r\n"), expectedStatus: 200, bodyContains: nil) != .passed)
    }

    @Test("the config dump writes health checks back as the parser reads them")
    func dumpRoundTrip() throws {
        let config = try parse("""
            health_check: { type: https, path: /health, body: "say \\"ok\\"", interval: 0.5, timeout: 0.25 }
            on_server_down: reset
            fallback: { address: 198.18.2.99, mac: "02:00:00:00:02:99" }
        \(servers)
        """)
        let yaml = LiveServices(services: config.services, timeouts: config.timeouts).yaml
        let again = try ConfigurationParser.parse(yaml: "director:\n  front_interface: front\n" + yaml)
        #expect(config.services[0].healthCheck?.probe == .http(path: "/health", status: 200, bodyContains: "say \"ok\"", usesTLS: true))
        #expect(again.services[0].healthCheck == config.services[0].healthCheck)
        #expect(again.services[0].realServers.map(\.healthCheck) == config.services[0].realServers.map(\.healthCheck))
        #expect(again.services[0].onServerDown == .reset && again.services[0].fallback == config.services[0].fallback)
    }
}
