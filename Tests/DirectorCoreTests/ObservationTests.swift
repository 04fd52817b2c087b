@testable import DirectorDaemon
import DirectorCore
import DirectorWire
import Foundation
import Testing

private let clientMAC = MACAddress("02:00:00:00:01:01")!
private let vipMAC = MACAddress("02:00:00:00:00:64")!
private let vip = IPv4Address(198, 18, 0, 100)
private let toVIP = PacketBuilder().ethernet(from: clientMAC, to: vipMAC).ipv4(from: IPv4Address(198, 18, 1, 10), to: vip)

/// Per-server and per-service counting, rates, the services report's shapes and the workers'
/// connection listing, in memory.
@Suite("Observation: traffic counters, rates, reports, listings")
struct ObservationTests {
    @Test("the forwarder counts each forwarded packet and new connection at its real server and its service (by statistics id), IP bytes; drops count nowhere")
    func trafficCounted() {
        let services = ServiceTable(services: [
            VirtualService(address: vip, port: 80, transport: .tcp, pool: pool([1]), scheduler: .maglev, statisticsID: 7),
            VirtualService(address: vip, port: 53, transport: .udp, pool: pool([1]), scheduler: .maglev, statisticsID: 9),
        ])
        var forwarder = Forwarder(table: ConnectionTable<IPv4Address>(capacity: 64)!, services: services,
                                  settings: ForwarderSettings(virtualMAC: vipMAC, backMAC: MACAddress("02:00:00:00:00:b0")!), changes: RecordingSink())
        let syn = toVIP.tcp(sourcePort: 40000, destinationPort: 80, flags: .syn).build()
        let data = toVIP.tcp(sourcePort: 40000, destinationPort: 80, flags: [.ack, .psh]).payload([UInt8](repeating: 1, count: 100)).build()
        let udp = toVIP.udp(sourcePort: 5000, destinationPort: 53).payload([1, 2, 3, 4]).build()
        let stray = toVIP.tcp(sourcePort: 40000, destinationPort: 443, flags: .syn).build()
        for frame in [syn, data, data, udp, stray] { _ = forwarder.run(frame) }
        #expect(forwarder.traffic.server(1) == Traffic(connections: 2, packets: 4, bytes: 40 + 140 + 140 + 32))
        #expect(forwarder.traffic.service(7) == Traffic(connections: 1, packets: 3, bytes: 40 + 140 + 140))
        #expect(forwarder.traffic.service(9) == Traffic(connections: 1, packets: 1, bytes: 32))
        #expect(forwarder.traffic.service(0) == Traffic(), "the port without a service counts nowhere")
        #expect(services.realServerIDsInUse == [1])
    }

    @Test("a rate is the change across the kept samples; a server seen only lately counts from its first sample; fewer than two samples give 0")
    func rates() {
        let rates = TrafficRates()
        #expect(rates.server(1) == Rate())
        rates.record(.init(at: 0, servers: [1: Traffic(connections: 0, packets: 0, bytes: 0)], services: [:]))
        #expect(rates.server(1) == Rate())
        rates.record(.init(at: 1_000_000_000, servers: [1: Traffic(connections: 10, packets: 100, bytes: 1000), 2: Traffic()], services: [:]))
        rates.record(.init(at: 2_000_000_000, servers: [1: Traffic(connections: 30, packets: 300, bytes: 3000), 2: Traffic(connections: 5)], services: [3: Traffic(packets: 8)]))
        #expect(rates.server(1).connectionsPerSecond == 15 && rates.server(1).packetsPerSecond == 150 && rates.server(1).bytesPerSecond == 1500)
        #expect(rates.server(2).connectionsPerSecond == 5)
        #expect(rates.service(3) == Rate(), "one sample of it: no rate yet")
        for second in 3...10 { rates.record(.init(at: UInt64(second) * 1_000_000_000, servers: [1: Traffic(connections: 30 + UInt64(second - 2))], services: [:])) }
        #expect(rates.server(1).connectionsPerSecond == 1, "only the last \(TrafficRates.window) seconds count")
    }

    static let report = ServicesReport(node: 1, services: [
        .init(transport: "tcp", address: "198.18.0.100", port: 80, scheduler: "mh", forwarding: "dr", activeConnections: 3, inactiveConnections: 1,
              stats: Traffic(connections: 12, packets: 340, bytes: 56_000), rates: Rate(), realServers: [
                  .init(address: "198.18.2.11", port: 80, weight: 1, mac: "02:00:00:00:02:00", health: "down", healthHere: "down", healthPeer: "up",
                        activeConnections: 3, inactiveConnections: 1, stats: Traffic(connections: 12, packets: 340, bytes: 56_000), rates: Rate()),
                  .init(address: "198.18.2.12", port: 80, weight: 0, mac: nil, health: "unchecked", healthHere: nil, healthPeer: nil,
                        activeConnections: 0, inactiveConnections: 0, stats: Traffic(), rates: Rate()),
              ]),
    ], retired: [])

    @Test("services: the listing keeps its health words; --stats and --rate print ipvsadm's columns; the JSON has the documented names and reads back")
    func servicesReport() throws {
        let listing = ObservationTests.report.text(.connections)
        #expect(listing.contains("  -> 198.18.2.11:80  Route   1  3 1  02:00:00:00:02:00  down (here down, peer up)"), "\(listing)")
        #expect(listing.contains("  -> 198.18.2.12:80  Route   0  0 0  unresolved  unchecked"), "\(listing)")
        let stats = ObservationTests.report.text(.stats)
        #expect(stats.split(separator: "\n")[0].hasPrefix("Prot LocalAddress:Port") && stats.contains("Conns") && stats.contains("InBytes"))
        #expect(stats.contains("TCP  198.18.0.100:80") && stats.contains("         340       56000"), "\(stats)")
        #expect(ObservationTests.report.text(.rate).contains("CPS"))
        let json = ObservationTests.report.json()
        for name in ["\"active_connections\":3", "\"inactive_connections\":1", "\"real_servers\"", "\"health_here\":\"down\"", "\"health_peer\":\"up\"",
                     "\"protocol\":\"tcp\"", "\"connections_per_second\"", "\"packets\":340", "\"retired\":[]"] {
            #expect(json.contains(name), "\(name) in \(json)")
        }
        #expect(try JSONDecoder().decode(ServicesReport.self, from: Data(json.utf8)) == ObservationTests.report)
    }

    @Test("the connection listing: a worker walks its table in bounded steps, keeps what the filter matches up to the limit, says when more matched; a cancelled listing delivers nothing")
    func listing() throws {
        guard var table = ConnectionTable<IPv4Address>(capacity: 50_000), var table6 = ConnectionTable<IPv6Address>(capacity: 64) else {
            Issue.record("no table")
            return
        }
        for index in 0..<40_000 {
            let key = FlowKey(clientAddress: IPv4Address(198, 18, 1, UInt8(10 + index % 4)), clientPort: UInt16(10_000 + index / 4), virtualAddress: vip,
                              virtualPort: 80, transport: .tcp)
            _ = table.insert(ConnectionEntry(key: key, keyHash: key.tableHash, state: .established, realServerID: UInt16(1 + index % 3), expiresAt: 10_000))
        }
        // Two IPv6 connections, one of them of server 2 but another client.
        for port in [UInt16(10_000), 10_001] {
            let key = FlowKey(clientAddress: IPv6Address("2001:2:0:1::11")!, clientPort: port, virtualAddress: IPv6Address("2001:2::100")!,
                              virtualPort: 80, transport: .tcp)
            _ = table6.insert(ConnectionEntry(key: key, keyHash: key.tableHash, state: .established, realServerID: port == 10_000 ? 2 : 3, expiresAt: 10_000))
        }
        let mailbox = ConnectionListingMailbox()
        #expect(mailbox.takeRequest() == nil)
        mailbox.ask(.init(filter: ConnectionFilter(realServerID: 2, clientAddress: .v4(IPv4Address(198, 18, 1, 11))), limit: 100_000))
        var walk = ConnectionListingMailbox.Walk(try #require(mailbox.takeRequest()))
        var steps = 1
        while !mailbox.step(&walk, table: &table, table6: &table6) {
            #expect(mailbox.take() == nil, "nothing before the walk ends")
            steps += 1
        }
        let result = try #require(mailbox.take())
        let expected = (0..<40_000).filter { $0 % 4 == 1 && $0 % 3 == 1 }.count
        #expect(result.entries.count == expected && !result.truncated)
        #expect(result.entries.allSatisfy { $0.realServerID == 2 && $0.clientAddress == .v4(IPv4Address(198, 18, 1, 11)) })
        let stepsPerShard = (table.slotCount + ConnectionListingMailbox.stepBudget - 1) / ConnectionListingMailbox.stepBudget
        #expect(steps == stepsPerShard, "bounded steps: \(steps) (the step that ends the IPv4 shard goes on into the small IPv6 one)")

        mailbox.ask(.init(filter: ConnectionFilter(realServerID: 2, clientAddress: .v6(IPv6Address("2001:2:0:1::11")!)), limit: 100))
        walk = ConnectionListingMailbox.Walk(try #require(mailbox.takeRequest()))
        while !mailbox.step(&walk, table: &table, table6: &table6) {}
        let ipv6 = try #require(mailbox.take())
        #expect(ipv6.entries.count == 1 && ipv6.entries[0].clientPort == 10_000 && ipv6.entries[0].virtualAddress == .v6(IPv6Address("2001:2::100")!))

        mailbox.ask(.init(filter: ConnectionFilter(), limit: 10))
        walk = ConnectionListingMailbox.Walk(try #require(mailbox.takeRequest()))
        while !mailbox.step(&walk, table: &table, table6: &table6) {}
        let limited = try #require(mailbox.take())
        #expect(limited.entries.count == 10 && limited.truncated)

        mailbox.ask(.init(filter: ConnectionFilter(), limit: 10))
        walk = ConnectionListingMailbox.Walk(try #require(mailbox.takeRequest()))
        mailbox.cancel()
        while !mailbox.step(&walk, table: &table, table6: &table6) {}
        #expect(mailbox.take() == nil)
    }
}
