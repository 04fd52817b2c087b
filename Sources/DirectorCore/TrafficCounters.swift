#if canImport(Glibc)
import Glibc
#endif

/// New connections, packets and bytes per real server and per virtual service, as one worker
/// counts them (`ipvsadm -L --stats`): plain memory only the worker writes, by stable id (a real
/// server's, a service's), so a reload that reorders pools keeps every count where it was. The
/// daemon copies the ids in use out to shared memory a few times a second.
///
/// Bytes are IP bytes (the packet's total length), as IPVS counts them. A DR director sees only
/// the clients' direction: there is no "out".
public struct TrafficCounters: ~Copyable {
    /// Ids run to `UInt16.max` for both kinds.
    public static let idCount = Int(UInt16.max) + 1
    public static let fieldCount = 3
    /// Per id, `fieldCount` words: connections, packets, bytes.
    @usableFromInline let servers: UnsafeMutablePointer<UInt64>
    @usableFromInline let services: UnsafeMutablePointer<UInt64>

    /// Zeroed by calloc: 1.5 MiB each, large enough that glibc maps them fresh, in zero pages
    /// the kernel fills in only for the ids in use (as `ConnectionLoad`).
    public init() {
        let count = TrafficCounters.idCount * TrafficCounters.fieldCount
        servers = calloc(count, MemoryLayout<UInt64>.stride)!.bindMemory(to: UInt64.self, capacity: count)
        services = calloc(count, MemoryLayout<UInt64>.stride)!.bindMemory(to: UInt64.self, capacity: count)
    }

    deinit {
        free(servers)
        free(services)
    }

    /// One packet of `bytes` IP bytes sent towards real server `server` of service `service`
    /// (before the transmit ring: one the full ring drops is also counted as
    /// `frames_dropped{reason="transmit_ring_full"}`).
    @inlinable @inline(__always)
    public func countPacket(server: UInt16, service: UInt16, bytes: Int) {
        let serverRow = servers + Int(server) &* TrafficCounters.fieldCount
        serverRow[1] &+= 1
        serverRow[2] &+= UInt64(truncatingIfNeeded: bytes)
        let serviceRow = services + Int(service) &* TrafficCounters.fieldCount
        serviceRow[1] &+= 1
        serviceRow[2] &+= UInt64(truncatingIfNeeded: bytes)
    }

    /// A connection scheduled to `server` of `service`.
    @inlinable @inline(__always)
    public func countConnection(server: UInt16, service: UInt16) {
        servers[Int(server) &* TrafficCounters.fieldCount] &+= 1
        services[Int(service) &* TrafficCounters.fieldCount] &+= 1
    }

    public func server(_ id: UInt16) -> Traffic { Traffic(servers + Int(id) * TrafficCounters.fieldCount) }
    public func service(_ id: UInt16) -> Traffic { Traffic(services + Int(id) * TrafficCounters.fieldCount) }
}

/// One id's totals.
public struct Traffic: Sendable, Equatable, Codable {
    public var connections: UInt64
    public var packets: UInt64
    public var bytes: UInt64

    public init(connections: UInt64 = 0, packets: UInt64 = 0, bytes: UInt64 = 0) {
        self.connections = connections
        self.packets = packets
        self.bytes = bytes
    }

    init(_ row: UnsafeMutablePointer<UInt64>) {
        self.init(connections: row[0], packets: row[1], bytes: row[2])
    }

    public static func + (left: Traffic, right: Traffic) -> Traffic {
        Traffic(connections: left.connections &+ right.connections, packets: left.packets &+ right.packets, bytes: left.bytes &+ right.bytes)
    }
}
