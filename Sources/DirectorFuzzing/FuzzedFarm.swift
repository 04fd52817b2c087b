import DirectorCore
import DirectorWire

/// The farm both harnesses run against: an IPv4 VIP with a service per scheduler and both
/// transports, an IPv6 VIP with direct-routing and NAT services, small Maglev tables so that
/// building a forwarder per input stays cheap.
enum FuzzedFarm {
    static let virtualMAC = MACAddress(rawValue: 0x02_00_00_00_00_64)
    static let backMAC = MACAddress(rawValue: 0x02_00_00_00_00_B0)
    static let virtualAddress = IPv4Address(198, 18, 0, 100)
    static let clientMAC = MACAddress(rawValue: 0x02_00_00_00_01_01)

    /// The address of the real server at `index` of `pool`.
    static func serverAddress(_ index: Int) -> IPv4Address { IPv4Address(198, 18, 2, UInt8(11 + index)) }

    static let pool: [RealServer] = (0..<3).map { (index: Int) -> RealServer in
        RealServer(id: UInt16(index + 1), address: serverAddress(index), port: 80, weight: UInt32(index + 1),
                   mac: MACAddress(rawValue: 0x02_00_00_00_02_00 + UInt64(index)))
    }

    /// (port, transport, scheduler) of every service on the VIP.
    static let listeners: [(UInt16, TransportProtocol, SchedulerKind)] = [
        (80, .tcp, .maglev), (443, .tcp, .weightedLeastConnection), (22, .tcp, .sourceHash),
        (8080, .tcp, .weightedRoundRobin), (53, .udp, .roundRobin), (123, .udp, .leastConnection),
    ]

    /// NAT services: (port, transport, the servers' port).
    static let translatedListeners: [(UInt16, TransportProtocol, UInt16)] = [(8443, .tcp, 9443), (5000, .udp, 6000)]
    static let gateway = NATGateway(address: IPv4Address(198, 18, 2, 254), address6: IPv6Address("2001:2:0:2::fe")!,
                                    mac: MACAddress(rawValue: 0x02_00_00_00_02_FE))

    static let virtualAddress6 = IPv6Address("2001:2::100")!
    static func serverAddress6(_ index: Int) -> IPv6Address { IPv6Address(high: 0x2001_0002_0000_0002, low: UInt64(0x11 + index)) }
    static func pool6(firstID: UInt16, port: UInt16) -> [RealServer] {
        (0..<3).map { index in
            RealServer(id: firstID + UInt16(index), address: .v6(serverAddress6(index)), port: port, weight: 1,
                       mac: MACAddress(rawValue: 0x02_00_00_00_06_00 + UInt64(index)))
        }
    }
    /// IPv6 services: (port, transport, forwarding, the servers' port).
    static let listeners6: [(UInt16, TransportProtocol, ForwardingMethod, UInt16)] = [
        (80, .tcp, .directRouting, 80), (53, .udp, .directRouting, 53), (8443, .tcp, .nat, 9443),
    ]

    static let services = ServiceTable(services: listeners.map { port, transport, scheduler in
        VirtualService(address: virtualAddress, port: port, transport: transport, pool: pool, scheduler: scheduler, maglevTableSize: 251)
    } + translatedListeners.enumerated().map { index, listener in
        let servers = pool.map { RealServer(id: $0.id + UInt16(10 * (index + 1)), address: $0.address, port: listener.2, weight: $0.weight, mac: $0.mac) }
        return VirtualService(address: virtualAddress, port: listener.0, transport: listener.1, forwarding: .nat, pool: servers,
                              scheduler: .maglev, maglevTableSize: 251)
    } + listeners6.enumerated().map { index, listener in
        VirtualService(address: .v6(virtualAddress6), port: listener.0, transport: listener.1, forwarding: listener.2,
                       pool: pool6(firstID: UInt16(100 + 10 * index), port: listener.3), scheduler: .maglev, maglevTableSize: 251)
    })

    /// A forwarder with a table small enough that a few frames fill it and reclaiming is reached.
    static func forwarder(capacity: Int = 16) -> Forwarder<ConnectionChangeCounter> {
        Forwarder(table: ConnectionTable<IPv4Address>(capacity: capacity)!, table6: ConnectionTable<IPv6Address>(capacity: capacity)!, services: services,
                  settings: ForwarderSettings(virtualMAC: virtualMAC, backMAC: backMAC, gateway: gateway), changes: ConnectionChangeCounter())
    }
}
