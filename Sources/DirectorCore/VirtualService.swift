import DirectorWire

/// A real server behind a virtual service.
public struct RealServer: Sendable, Equatable {
    /// Stable id the control plane gives each (address, port): connection entries refer to real
    /// servers by it, so entries stay valid across reloads that reorder or shrink pools.
    public var id: UInt16
    /// Of the service's family.
    public var address: IPAddress
    public var port: UInt16
    /// Relative share of new connections; 0 means quiesced: existing connections continue, new
    /// ones go elsewhere (as with `ipvsadm -e -w 0`).
    public var weight: UInt32
    /// Where DR sends its frames. Resolved by ARP on the back interface when not configured.
    public var mac: MACAddress

    public init(id: UInt16, address: IPv4Address, port: UInt16, weight: UInt32, mac: MACAddress) {
        self.init(id: id, address: .v4(address), port: port, weight: weight, mac: mac)
    }

    public init(id: UInt16, address: IPAddress, port: UInt16, weight: UInt32, mac: MACAddress) {
        self.id = id
        self.address = address
        self.port = port
        self.weight = weight
        self.mac = mac
    }
}

/// How frames reach real servers.
public enum ForwardingMethod: String, Sendable {
    /// Only the destination MAC is rewritten; servers hold the VIP and answer clients directly.
    case directRouting = "dr"
    /// The destination address and port are rewritten to the server's own; its replies come
    /// back through a director (the servers' default gateway), which rewrites their source.
    case nat
}

/// A virtual service: (VIP, port, protocol) → a pool of real servers and a scheduler. One
/// family: its real servers have addresses of the VIP's family (as IPVS has it for DR and NAT).
public struct VirtualService: Sendable {
    public var address: IPAddress
    public var port: UInt16
    public var transport: TransportProtocol
    public var forwarding: ForwardingMethod
    public var pool: [RealServer]
    public var scheduler: Scheduler
    /// Stable id the control plane gives each (address, port, protocol), under which the workers
    /// count its traffic (see `TrafficCounters`); a reload that reorders services keeps it.
    public var statisticsID: UInt16

    public init(address: IPv4Address, port: UInt16, transport: TransportProtocol, forwarding: ForwardingMethod = .directRouting,
                pool: [RealServer], scheduler: SchedulerKind, maglevTableSize: Int = MaglevScheduler.defaultTableSize,
                statisticsID: UInt16 = 0) {
        self.init(address: .v4(address), port: port, transport: transport, forwarding: forwarding, pool: pool, scheduler: scheduler,
                  maglevTableSize: maglevTableSize, statisticsID: statisticsID)
    }

    public init(address: IPAddress, port: UInt16, transport: TransportProtocol, forwarding: ForwardingMethod = .directRouting,
                pool: [RealServer], scheduler: SchedulerKind, maglevTableSize: Int = MaglevScheduler.defaultTableSize,
                statisticsID: UInt16 = 0) {
        self.statisticsID = statisticsID
        self.address = address
        self.port = port
        self.transport = transport
        self.forwarding = forwarding
        self.pool = pool
        self.scheduler = Scheduler(kind: scheduler, pool: pool, maglevTableSize: maglevTableSize)
    }

    public var name: String { "\(transport) \(address.description(port: port))" }
}
