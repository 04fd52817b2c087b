import DirectorWire

/// An immutable snapshot of every virtual service, built by the control plane and read by the
/// workers, which pick up a new one between bursts (see `Forwarder.install`). Nothing in it
/// changes after `init`, so workers read it without locks.
public final class ServiceTable: Sendable {
    public let services: [VirtualService]
    /// Real-server MAC by real-server id (`MACAddress.zero` = not resolved yet).
    public let destinationMACs: [MACAddress]
    /// Open-addressed index from (VIP, port, protocol) to a position in `services`; -1 = empty.
    private let index: [Int32]
    /// Each service's packed (VIP, port, protocol), by position: the lookup compares these
    /// plain words and never copies a `VirtualService` (whose arrays would cost ARC per packet).
    private let packedKeys: [UInt64]
    private let virtualAddresses: [IPv4Address]
    public let generation: UInt64
    /// Real servers no service has any more (removed by a reload): no new flow goes to them, and
    /// the connections they still have go on to them until they end, as IPVS keeps a removed
    /// destination's connections.
    public let retired: [RealServer]
    /// The timeouts the workers use from this snapshot on; nil: keep theirs.
    public let timeouts: ConnectionTimeouts?
    /// By real-server id: whether its connections are reset (it failed its health check and
    /// its service says `on_server_down: reset`).
    private let resetting: [Bool]
    /// By real-server id: whether it takes no new connection (weight 0 wherever it serves: drained,
    /// failed its health check, or retired).
    private let quiesced: [Bool]
    /// Whether any server's connections are reset: the common case costs one test per frame.
    public let resetsAnyConnections: Bool
    private let realServerIDs: [UInt64: UInt16]
    /// Each service's `statisticsID`, by position (read per packet: no `VirtualService` copy).
    private let serviceStatisticsIDs: [UInt16]
    /// Every real server id the snapshot names (pools and retired), each once: the ids whose
    /// counts the workers publish.
    public let realServerIDsInUse: [UInt16]
    private let realServersByID: [UInt16: (address: IPv4Address, port: UInt16)]
    /// By position: whether the service translates addresses (NAT) rather than routing directly.
    private let translating: [Bool]
    /// By real-server id: the address and port a NAT service's frames are rewritten to.
    private let serverAddresses: [IPv4Address]
    private let serverPorts: [UInt16]
    /// Open-addressed index from a NAT real server's (address, port, protocol), the source of
    /// its replies, to the service it serves and its id; -1 = empty.
    private let replyIndex: [Int32]
    private let replySources: [(key: UInt64, service: Int32, server: UInt16)]

    public init(services: [VirtualService], retired: [RealServer] = [], timeouts: ConnectionTimeouts? = nil, generation: UInt64 = 0,
                resetting: Set<UInt16> = []) {
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
        var ids: [UInt64: UInt16] = [:]
        var byID: [UInt16: (address: IPv4Address, port: UInt16)] = [:]
        for server in known {
            ids[UInt64(server.address.rawValue) << 16 | UInt64(server.port)] = server.id
            byID[server.id] = (server.address, server.port)
        }
        realServerIDs = ids
        realServersByID = byID
        var addresses = [IPv4Address](repeating: IPv4Address(rawValue: 0), count: maxID + 1)
        var ports = [UInt16](repeating: 0, count: maxID + 1)
        for server in known {
            addresses[Int(server.id)] = server.address
            ports[Int(server.id)] = server.port
        }
        serverAddresses = addresses
        serverPorts = ports
        translating = services.map { $0.forwarding == .nat }
        // A real server's endpoint names one NAT service (the configuration checks it): its
        // replies carry no VIP, so the endpoint is what finds the service. The first one wins.
        var sources: [(key: UInt64, service: Int32, server: UInt16)] = []
        var seen = Set<UInt64>()
        for (position, service) in services.enumerated() where service.forwarding == .nat {
            for server in service.pool {
                let key = ServiceTable.packedKey(server.address, server.port, service.transport)
                if seen.insert(key).inserted { sources.append((key, Int32(position), server.id)) }
            }
        }
        var replySize = 16
        while replySize < sources.count * 4 { replySize *= 2 }
        var replyIndex = [Int32](repeating: -1, count: replySize)
        for (position, source) in sources.enumerated() {
            var slot = ServiceTable.slot(source.key, size: replySize)
            while replyIndex[slot] >= 0 { slot = (slot + 1) & (replySize - 1) }
            replyIndex[slot] = Int32(position)
        }
        self.replyIndex = replyIndex
        replySources = sources
        realServerIDsInUse = byID.keys.sorted()
        serviceStatisticsIDs = services.map(\.statisticsID)
        var size = 16
        while size < services.count * 4 { size *= 2 }
        var index = [Int32](repeating: -1, count: size)
        for (position, service) in services.enumerated() {
            var slot = ServiceTable.slot(ServiceTable.packedKey(service.address, service.port, service.transport), size: size)
            while index[slot] >= 0 { slot = (slot + 1) & (size - 1) }
            index[slot] = Int32(position)
        }
        self.index = index
        packedKeys = services.map { ServiceTable.packedKey($0.address, $0.port, $0.transport) }
        virtualAddresses = Array(Set(services.map(\.address))).sorted()
    }

    @inlinable @inline(__always)
    static func packedKey(_ address: IPv4Address, _ port: UInt16, _ transport: TransportProtocol) -> UInt64 {
        UInt64(address.rawValue) << 24 | UInt64(port) << 8 | UInt64(transport.rawValue)
    }

    @inlinable @inline(__always)
    static func slot(_ key: UInt64, size: Int) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 40) & (size - 1)
    }

    /// The position of the service for (address, port, transport), if there is one.
    public func find(address: IPv4Address, port: UInt16, transport: TransportProtocol) -> Int? {
        let key = ServiceTable.packedKey(address, port, transport)
        var slot = ServiceTable.slot(key, size: index.count)
        while true {
            let position = Int(index[slot])
            if position < 0 { return nil }
            if packedKeys[position] == key { return position }
            slot = (slot + 1) & (index.count - 1)
        }
    }

    /// The NAT service a real server's reply from (address, port) belongs to, and the server's
    /// id, if a NAT service has that server.
    @inline(__always)
    public func findReplySource(address: IPv4Address, port: UInt16, transport: TransportProtocol) -> (service: Int, server: UInt16)? {
        let key = ServiceTable.packedKey(address, port, transport)
        var slot = ServiceTable.slot(key, size: replyIndex.count)
        while true {
            let position = Int(replyIndex[slot])
            if position < 0 { return nil }
            let source = replySources[position]
            if source.key == key { return (Int(source.service), source.server) }
            slot = (slot + 1) & (replyIndex.count - 1)
        }
    }

    /// Whether the service at `position` translates addresses (NAT).
    @inline(__always)
    public func translates(_ position: Int) -> Bool { translating[position] }

    /// The address and port NAT rewrites a flow of `realServerID` to.
    @inline(__always)
    public func translatedDestination(_ realServerID: UInt16) -> (address: IPv4Address, port: UInt16) {
        (serverAddresses[Int(realServerID)], serverPorts[Int(realServerID)])
    }

    /// The VIP and port of the service at `position` (no `VirtualService` copy).
    @inline(__always)
    public func virtualEndpoint(ofService position: Int) -> (address: IPv4Address, port: UInt16) {
        let key = packedKeys[position]
        return (IPv4Address(rawValue: UInt32(truncatingIfNeeded: key >> 24)), UInt16(truncatingIfNeeded: key >> 8))
    }

    public func isVirtualAddress(_ address: IPv4Address) -> Bool {
        virtualAddresses.contains(address)
    }

    /// The stable id of the real server at `address`:`port`, if any service has it (for replicas,
    /// which name real servers by address because the two directors number them independently).
    public func realServerID(address: IPv4Address, port: UInt16) -> UInt16? {
        realServerIDs[UInt64(address.rawValue) << 16 | UInt64(port)]
    }

    /// The address and port of a real server id (to describe an entry to the peer).
    public func realServer(id: UInt16) -> (address: IPv4Address, port: UInt16)? {
        realServersByID[id]
    }

    /// Whether the connections of `realServerID` are reset (see `resetting`).
    @inline(__always)
    public func resetsConnections(of realServerID: UInt16) -> Bool {
        resetsAnyConnections && Int(realServerID) < resetting.count && resetting[Int(realServerID)]
    }

    /// Whether `realServerID` takes no new connection (see `quiesced`).
    public func isQuiesced(_ realServerID: UInt16) -> Bool {
        Int(realServerID) >= quiesced.count || quiesced[Int(realServerID)]
    }

    @inline(__always)
    public func statisticsID(ofService position: Int) -> UInt16 {
        serviceStatisticsIDs[position]
    }

    public func destinationMAC(_ realServerID: UInt16) -> MACAddress {
        Int(realServerID) < destinationMACs.count ? destinationMACs[Int(realServerID)] : .zero
    }
}
