import DirectorCore
@testable import DirectorDaemon
import DirectorWire
import Testing

private func config(servers: [(last: UInt8, weight: UInt32)], workers: String = "[0, 1]", scheduler: String = "mh", tcpTimeout: Int = 900) throws -> Configuration {
    let list = servers.map { "      - { address: 198.18.2.\($0.last), weight: \($0.weight), mac: \"02:00:00:00:02:\($0.last)\" }" }
    return try ConfigurationParser.parse(yaml: """
    director:
      front_interface: front
      back_interface: back
      workers: \(workers)
    timeouts:
      tcp_established: \(tcpTimeout)
    services:
      - address: 198.18.0.100
        port: 80
        scheduler: \(scheduler)
        real_servers:
    \(list.joined(separator: "\n"))
    """)
}

@Suite("Reload")
struct ReloadTests {
    @Test("real servers keep their ids across reloads; a removed one is retired (weight 0, its MAC kept); one added again gets its id back")
    func stableIDs() throws {
        let first = try config(servers: [(11, 1), (12, 1), (13, 1)])
        var live = LiveServices(services: first.services, timeouts: first.timeouts)
        let before = live.serviceTable(resolvedMACs: [:], generation: 1)
        let ids = Dictionary(uniqueKeysWithValues: before.services[0].pool.map { ($0.address, $0.id) })

        let second = try config(servers: [(14, 1), (11, 3), (12, 1)], tcpTimeout: 600)
        let summary = try live.replace(services: second.services, timeouts: second.timeouts)
        let after = live.serviceTable(resolvedMACs: [:], generation: 2)
        for server in after.services[0].pool where ids[server.address] != nil {
            #expect(server.id == ids[server.address], "\(server.address) kept its id")
        }
        let added = try #require(after.services[0].pool.first { $0.address == IPv4Address(198, 18, 2, 14) })
        #expect(!ids.values.contains(added.id), "a new server gets a new id")
        let retired = try #require(after.retired.first)
        #expect(after.retired.count == 1 && retired.address == IPv4Address(198, 18, 2, 13) && retired.weight == 0)
        #expect(after.destinationMAC(retired.id) == MACAddress("02:00:00:00:02:13")!, "its connections still reach it")
        #expect(after.realServerID(address: retired.address, port: 80) == retired.id)
        #expect(after.timeouts?.established == 600_000)
        #expect(summary.description.contains("real servers added: 198.18.2.14:80"))
        #expect(summary.description.contains("real servers removed (their connections go on until they end): 198.18.2.13:80"))
        #expect(summary.description.contains("198.18.2.11:80 in tcp 198.18.0.100:80 1 → 3"))
        #expect(summary.timeoutsChanged)

        _ = try live.replace(services: first.services, timeouts: first.timeouts)
        let again = live.serviceTable(resolvedMACs: [:], generation: 3)
        #expect(again.services[0].pool.first { $0.address == IPv4Address(198, 18, 2, 13) }?.id == ids[.v4(IPv4Address(198, 18, 2, 13))],
                "the removed server, added back, has its old id")
        #expect(again.retired.map(\.address) == [.v4(IPv4Address(198, 18, 2, 14))])
    }

    @Test("ids past a limit are found among the live servers only: a server retired by a reload no longer counts")
    func liveIDsPastALimit() throws {
        let first = try config(servers: [(11, 1), (12, 1), (13, 1)])
        var live = LiveServices(services: first.services, timeouts: first.timeouts)
        #expect(live.liveIDs(atOrAbove: 4) == (0, 0), "ids 1-3 for the servers, 1 for the service")
        let second = try config(servers: [(11, 1), (14, 1), (15, 1)])
        _ = try live.replace(services: second.services, timeouts: second.timeouts)
        #expect(live.liveIDs(atOrAbove: 4) == (2, 0), "the two new servers have ids 4 and 5; 13, retired, is not live")
        #expect(live.liveIDs(atOrAbove: 5) == (1, 0) && live.liveIDs(atOrAbove: 1) == (3, 1))
        _ = try live.replace(services: first.services, timeouts: first.timeouts)
        #expect(live.liveIDs(atOrAbove: 4) == (0, 0), "back to the first servers and their ids")
    }

    @Test("a file that changes a director: setting needs a restart, and the refusal names every such field")
    func settingsNeedingRestart() throws {
        let running = try config(servers: [(11, 1)])
        #expect(Director.settingsNeedingRestart(from: running, to: try config(servers: [(12, 5)], scheduler: "rr", tcpTimeout: 60)).isEmpty,
                "services and timeouts change live")
        #expect(Director.settingsNeedingRestart(from: running, to: try config(servers: [(11, 1)], workers: "[1]")) == ["director.workers"])
        var moved = running
        moved.frontInterface = "eth9"
        moved.connectionCapacity = 5
        #expect(Director.settingsNeedingRestart(from: running, to: moved) == ["director.front_interface", "director.connection_capacity"])
    }

    @Test("nothing changed is said so")
    func noChange() throws {
        let running = try config(servers: [(11, 1), (12, 2)])
        var live = LiveServices(services: running.services, timeouts: running.timeouts)
        #expect(try live.replace(services: running.services, timeouts: running.timeouts).description == "no change")
    }
}

@Suite("Live changes")
struct LiveChangeTests {
    static let running = try! config(servers: [(11, 1), (12, 2)])

    static func edit(_ line: String, _ services: [Configuration.ServiceConfig] = running.services) -> Result<[Configuration.ServiceConfig], ConfigurationError> {
        Result { () throws(ConfigurationError) in try LiveEdit.apply(line.split(separator: " "), to: services) }
    }

    @Test("IPv6: a service added and served by IPv6 servers, written as ipvsadm does ([address]:port); a server of the other family refused")
    func ipv6Edits() throws {
        let withService = try Self.edit("service add tcp:[2001:2::100]:443 wrr").get()
        #expect(withService[1].address == .v6(IPv6Address("2001:2::100")!) && withService[1].port == 443 && withService[1].scheduler == .weightedRoundRobin)
        let withServer = try Self.edit("server add [2001:2::100]:443 2001:2:0:2::11 3", withService).get()
        #expect(withServer[1].realServers == [Configuration.RealServerConfig(address: .v6(IPv6Address("2001:2:0:2::11")!), port: 443, weight: 3, mac: nil)])
        #expect(try Self.edit("server weight [2001:2::100]:443 [2001:2:0:2::11]:443 5", withServer).get()[1].realServers[0].weight == 5)
        #expect(try Self.edit("server remove [2001:2::100]:443 2001:2:0:2::11", withServer).get()[1].realServers.isEmpty)
        func refusal(_ line: String, _ services: [Configuration.ServiceConfig]) -> String {
            switch Self.edit(line, services) {
            case .success: "accepted"
            case .failure(let error): error.description
            }
        }
        #expect(refusal("server add [2001:2::100]:443 198.18.2.14", withService).contains("198.18.2.14 is not of the family of tcp [2001:2::100]:443"))
        #expect(refusal("server add 198.18.0.100:80 2001:2:0:2::14", withService).contains("is not of the family of tcp 198.18.0.100:80"))
        #expect(refusal("server add [2001:2::100]:443 [2001:2:0:2::11]:8443", withService).contains("direct routing cannot change the port"))
        #expect(refusal("service add [ff02::1]:80", withService).contains("ff02::1 cannot be a virtual address"))
        #expect(refusal("service add [2001:2::100:80", withService).contains("expected an address and port like"))
    }

    @Test("add, reweight, drain and remove a server; add and remove a service")
    func edits() throws {
        let added = try Self.edit("server add 198.18.0.100:80 198.18.2.14 5").get()
        #expect(added[0].realServers.last == Configuration.RealServerConfig(address: .v4(IPv4Address(198, 18, 2, 14)), port: 80, weight: 5, mac: nil))
        #expect(try Self.edit("server weight tcp:198.18.0.100:80 198.18.2.12:80 7").get()[0].realServers[1].weight == 7)
        #expect(try Self.edit("server drain 198.18.0.100:80 198.18.2.12").get()[0].realServers[1].weight == 0)
        #expect(try Self.edit("server remove 198.18.0.100:80 198.18.2.11").get()[0].realServers.map(\.address) == [.v4(IPv4Address(198, 18, 2, 12))])
        let service = try Self.edit("service add udp:198.18.0.101:53 rr").get()
        #expect(service.count == 2 && service[1].transport == .udp && service[1].scheduler == .roundRobin && service[1].realServers.isEmpty)
        #expect(try Self.edit("service remove 198.18.0.100:80").get().isEmpty)
        // A server added at run time gets its service's health check.
        var checked = Self.running.services
        checked[0].healthCheck = HealthCheck(probe: .tcp, intervalMilliseconds: 500, timeoutMilliseconds: 250)
        #expect(try Self.edit("server add 198.18.0.100:80 198.18.2.15", checked).get()[0].realServers.last?.healthCheck == checked[0].healthCheck)
    }

    @Test("wrong arguments are refused, naming what is wrong", arguments: [
        ("server add 198.18.0.100:80 198.18.2.11", "198.18.2.11:80 is in tcp 198.18.0.100:80 already"),
        ("server add 198.18.0.100:81 198.18.2.14", "no service tcp 198.18.0.100:81"),
        ("server add 198.18.0.100:80 198.18.2.14:8080", "direct routing cannot change the port"),
        ("server weight 198.18.0.100:80 198.18.2.11 70000", "WEIGHT: expected a whole number from 0 to 65535"),
        ("server remove 198.18.0.100:80 198.18.2.99", "198.18.2.99:80 is not in tcp 198.18.0.100:80"),
        ("server add sctp:198.18.0.100:80 198.18.2.14", "expected tcp or udp"),
        ("service add 198.18.0.100:80", "exists already"),
        ("service add 198.18.0.101:80 fastest", "SCHEDULER: expected one of"),
        ("server add 198.18.0.100 198.18.2.14", "expected an address and port"),
    ])
    func refusals(line: String, message: String) {
        guard case .failure(let error) = Self.edit(line) else {
            Issue.record("\(line) was accepted")
            return
        }
        #expect(error.description.contains(message), "\(error)")
    }

    @Test("config dump writes sections the parser reads back to the same services and timeouts")
    func dumpRoundTrip() throws {
        var services = try Self.edit("service add udp:198.18.0.101:53 rr").get()
        services = try Self.edit("server add udp:198.18.0.101:53 198.18.2.13 4", services).get()
        let live = LiveServices(services: services, timeouts: Self.running.timeouts)
        let text = "director:\n  front_interface: front\n" + live.yaml
        let parsed = try ConfigurationParser.parse(yaml: text)
        #expect(parsed.timeouts == Self.running.timeouts)
        #expect(parsed.services.map { "\($0.transport) \($0.address):\($0.port) \($0.scheduler.rawValue)" }
                == services.map { "\($0.transport) \($0.address):\($0.port) \($0.scheduler.rawValue)" })
        #expect(parsed.services.map(\.realServers) == services.map(\.realServers))
    }
}
