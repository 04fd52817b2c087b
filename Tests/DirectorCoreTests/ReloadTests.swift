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
        #expect(again.services[0].pool.first { $0.address == IPv4Address(198, 18, 2, 13) }?.id == ids[IPv4Address(198, 18, 2, 13)],
                "the removed server, added back, has its old id")
        #expect(again.retired.map(\.address) == [IPv4Address(198, 18, 2, 14)])
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
