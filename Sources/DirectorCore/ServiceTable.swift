import DirectorWire

/// An immutable snapshot of every virtual service, built by the control plane and read by the
/// workers, which pick up a new one between bursts (see `Forwarder.install`). Nothing in it
/// changes after `init`, so workers read it without locks.
public final class ServiceTable: Sendable {
    public let services: [VirtualService]
    /// Real-server MAC by real-server id (`MACAddress.zero` = not resolved yet).
    public let destinationMACs: [MACAddress]
    /// The IPv4 services, by (VIP, port, protocol).
    @usableFromInline let index4: ServiceIndex
    /// The IPv6 services, by (VIP, port, protocol).
    @usableFromInline let index6: ServiceIndex
    private let virtualAddresses4: [IPv4Address]
    @usableFromInline let virtualAddresses6: [IPv6Address]
    /// By position: each service's VIP (zero in the other family's array) and port, read per
    /// NAT reply without a `VirtualService` copy.
    @usableFromInline let serviceAddresses4: [IPv4Address]
    @usableFromInline let serviceAddresses6: [IPv6Address]
    @usableFromInline let servicePorts: [UInt16]
    public let generation: UInt64
    /// Real servers no service has any more (removed by a reload): no new flow goes to them, and
    /// the connections they still have go on to them until they end, as IPVS keeps a removed
    /// destination's connections.
    public let retired: [RealServer]
    /// The timeouts the workers use from this snapshot on; nil: keep theirs.
    public let timeouts: ConnectionTimeouts?
    /// By real-server id: whether its connections are reset (it failed its health check and
    /// its service says `on_server_down: reset`).
    @usableFromInline let resetting: [Bool]
    /// By real-server id: whether it takes no new connection (weight 0 wherever it serves: drained,
    /// failed its health check, or retired).
    @usableFromInline let quiesced: [Bool]
    /// Whether any server's connections are reset: the common case costs one test per frame.
    public let resetsAnyConnections: Bool
    private let realServerIDs: [RealServerEndpoint: UInt16]
    /// Each service's `statisticsID`, by position (read per packet: no `VirtualService` copy).
    @usableFromInline let serviceStatisticsIDs: [UInt16]
    /// Every real server id the snapshot names (pools and retired), each once: the ids whose
    /// counts the workers publish.
    public let realServerIDsInUse: [UInt16]
    private let realServersByID: [UInt16: RealServerEndpoint]
    /// By position: whether the service translates addresses (NAT) rather than routing directly.
    @usableFromInline let translating: [Bool]
    /// By real-server id: the address and port a NAT service's frames are rewritten to (zero
    /// for a server of the other family).
    @usableFromInline let serverAddresses4: [IPv4Address]
    @usableFromInline let serverAddresses6: [IPv6Address]
    @usableFromInline let serverPorts: [UInt16]
    /// NAT real servers by (address, port, protocol), the source of their replies: the position
    /// of the service each serves.
    @usableFromInline let replyIndex4: ServiceIndex
    @usableFromInline let replyIndex6: ServiceIndex
    /// By position in the reply index: the real server's id.
    @usableFromInline let replyServers4: [UInt16]
    @usableFromInline let replyServers6: [UInt16]

    public init(services: [VirtualService], retired: [RealServer] = [], timeouts: ConnectionTimeouts? = nil, generation: UInt64 = 0,
                resetting: Set<UInt16> = []) {
        for service in services {
            precondition(service.pool.allSatisfy { $0.address.isIPv6 == service.address.isIPv6 },
                         "\(service.name) has a real server of the other address family")
        }
        self.services = services
        self.generation = generation
        self.retired = retired
        self.timeouts = timeouts
        let known = services.flatMap(\.pool) + retired
        let maxID = known.map { Int($0.id) }.max() ?? 0
        var macs = [MACAddress](repeating: .zero, count: maxID + 1)
        for server in known { macs[Int(server.id)] = server.mac }
        destinationMACs = macs
        var flags = [Bool](repeating: false, count: maxID + 1)
        for id in resetting where Int(id) <= maxID { flags[Int(id)] = true }
        self.resetting = flags
        var takesNone = [Bool](repeating: true, count: maxID + 1)
        for server in services.flatMap(\.pool) where server.weight > 0 { takesNone[Int(server.id)] = false }
        quiesced = takesNone
        resetsAnyConnections = flags.contains(true)
        var ids: [RealServerEndpoint: UInt16] = [:]
        var byID: [UInt16: RealServerEndpoint] = [:]
        for server in known {
            let endpoint = RealServerEndpoint(address: server.address, port: server.port)
            ids[endpoint] = server.id
            byID[server.id] = endpoint
        }
        realServerIDs = ids
        realServersByID = byID
        var addresses4 = [IPv4Address](repeating: .zero, count: maxID + 1)
        var addresses6 = [IPv6Address](repeating: .zero, count: maxID + 1)
        var ports = [UInt16](repeating: 0, count: maxID + 1)
        for server in known {
            switch server.address {
            case .v4(let address): addresses4[Int(server.id)] = address
            case .v6(let address): addresses6[Int(server.id)] = address
            }
            ports[Int(server.id)] = server.port
        }
        serverAddresses4 = addresses4
        serverAddresses6 = addresses6
        serverPorts = ports
        translating = services.map { $0.forwarding == .nat }
        // A real server's endpoint names one NAT service (the configuration checks it): its
        // replies carry no VIP, so the endpoint is what finds the service. The first one wins.
        var sources4: [(key: ServiceIndex.Key, service: Int, server: UInt16)] = []
        var sources6: [(key: ServiceIndex.Key, service: Int, server: UInt16)] = []
        for (position, service) in services.enumerated() where service.forwarding == .nat {
            for server in service.pool {
                switch server.address {
                case .v4(let address):
                    let key = ServiceIndex.Key(address: address, port: server.port, transport: service.transport)
                    if !sources4.contains(where: { $0.key == key }) { sources4.append((key, position, server.id)) }
                case .v6(let address):
                    let key = ServiceIndex.Key(address: address, port: server.port, transport: service.transport)
                    if !sources6.contains(where: { $0.key == key }) { sources6.append((key, position, server.id)) }
                }
            }
        }
        replyIndex4 = ServiceIndex(sources4.map { ($0.key, $0.service) })
        replyIndex6 = ServiceIndex(sources6.map { ($0.key, $0.service) })
        replyServers4 = sources4.map(\.server)
        replyServers6 = sources6.map(\.server)
        realServerIDsInUse = byID.keys.sorted()
        serviceStatisticsIDs = services.map(\.statisticsID)
        var entries4: [(ServiceIndex.Key, Int)] = []
        var entries6: [(ServiceIndex.Key, Int)] = []
        for (position, service) in services.enumerated() {
            switch service.address {
            case .v4(let address): entries4.append((ServiceIndex.Key(address: address, port: service.port, transport: service.transport), position))
            case .v6(let address): entries6.append((ServiceIndex.Key(address: address, port: service.port, transport: service.transport), position))
            }
        }
        index4 = ServiceIndex(entries4)
        index6 = ServiceIndex(entries6)
        serviceAddresses4 = services.map { $0.address.v4 ?? .zero }
        serviceAddresses6 = services.map { $0.address.v6 ?? .zero }
        servicePorts = services.map(\.port)
        virtualAddresses4 = Array(Set(services.compactMap(\.address.v4))).sorted()
        virtualAddresses6 = Array(Set(services.compactMap(\.address.v6))).sorted()
    }

    /// The position of the IPv4 service for (address, port, transport), if there is one.
    @inlinable @inline(__always)
    public func find(address: IPv4Address, port: UInt16, transport: TransportProtocol) -> Int? {
        index4.find(ServiceIndex.Key(address: address, port: port, transport: transport))
    }

    /// The position of the IPv6 service for (address, port, transport), if there is one.
    @inlinable @inline(__always)
    public func find(address: IPv6Address, port: UInt16, transport: TransportProtocol) -> Int? {
        index6.find(ServiceIndex.Key(address: address, port: port, transport: transport))
    }

    /// The NAT service a real server's reply from (address, port) belongs to, and the server's
    /// id, if a NAT service has that server.
    @inlinable @inline(__always)
    public func findReplySource(address: IPv4Address, port: UInt16, transport: TransportProtocol) -> (service: Int, server: UInt16)? {
        replyIndex4.findEntry(ServiceIndex.Key(address: address, port: port, transport: transport)).map { ($0.service, replyServers4[$0.entry]) }
    }

    /// The IPv6 form of `findReplySource`.
    @inlinable @inline(__always)
    public func findReplySource(address: IPv6Address, port: UInt16, transport: TransportProtocol) -> (service: Int, server: UInt16)? {
        replyIndex6.findEntry(ServiceIndex.Key(address: address, port: port, transport: transport)).map { ($0.service, replyServers6[$0.entry]) }
    }

    /// Whether the service at `position` translates addresses (NAT).
    @inlinable @inline(__always)
    public func translates(_ position: Int) -> Bool { translating[position] }

    /// The address and port NAT rewrites a flow of `realServerID` (an IPv4 server) to.
    @inlinable @inline(__always)
    public func translatedDestination(_ realServerID: UInt16) -> (address: IPv4Address, port: UInt16) {
        (serverAddresses4[Int(realServerID)], serverPorts[Int(realServerID)])
    }

    /// The address and port NAT rewrites a flow of `realServerID` (an IPv6 server) to.
    @inlinable @inline(__always)
    public func translatedDestination6(_ realServerID: UInt16) -> (address: IPv6Address, port: UInt16) {
        (serverAddresses6[Int(realServerID)], serverPorts[Int(realServerID)])
    }

    /// The VIP and port of the IPv4 service at `position` (no `VirtualService` copy).
    @inlinable @inline(__always)
    public func virtualEndpoint(ofService position: Int) -> (address: IPv4Address, port: UInt16) {
        (serviceAddresses4[position], servicePorts[position])
    }

    /// The VIP and port of the IPv6 service at `position`.
    @inlinable @inline(__always)
    public func virtualEndpoint6(ofService position: Int) -> (address: IPv6Address, port: UInt16) {
        (serviceAddresses6[position], servicePorts[position])
    }

    public func isVirtualAddress(_ address: IPv4Address) -> Bool {
        virtualAddresses4.contains(address)
    }

    public func isVirtualAddress(_ address: IPv6Address) -> Bool {
        virtualAddresses6.contains(address)
    }

    /// Whether any service is IPv6: without one, the workers pass IPv6 frames over.
    @inlinable
    public var hasIPv6Services: Bool { !virtualAddresses6.isEmpty }

    /// The stable id of the real server at `address`:`port`, if any service has it (for replicas,
    /// which name real servers by address because the two directors number them independently).
    public func realServerID(address: IPAddress, port: UInt16) -> UInt16? {
        realServerIDs[RealServerEndpoint(address: address, port: port)]
    }

    public func realServerID(address: IPv4Address, port: UInt16) -> UInt16? {
        realServerID(address: .v4(address), port: port)
    }

    /// The address and port of a real server id (to describe an entry to the peer).
    public func realServer(id: UInt16) -> (address: IPAddress, port: UInt16)? {
        realServersByID[id].map { ($0.address, $0.port) }
    }

    /// Whether the connections of `realServerID` are reset (see `resetting`).
    @inlinable @inline(__always)
    public func resetsConnections(of realServerID: UInt16) -> Bool {
        resetsAnyConnections && Int(realServerID) < resetting.count && resetting[Int(realServerID)]
    }

    /// Whether `realServerID` takes no new connection (see `quiesced`).
    @inlinable public func isQuiesced(_ realServerID: UInt16) -> Bool {
        Int(realServerID) >= quiesced.count || quiesced[Int(realServerID)]
    }

    @inlinable @inline(__always)
    public func statisticsID(ofService position: Int) -> UInt16 {
        serviceStatisticsIDs[position]
    }

    @inlinable public func destinationMAC(_ realServerID: UInt16) -> MACAddress {
        Int(realServerID) < destinationMACs.count ? destinationMACs[Int(realServerID)] : .zero
    }
}

/// A real server's address and port: how replicas and reloads name it.
struct RealServerEndpoint: Hashable {
    var address: IPAddress
    var port: UInt16
}
