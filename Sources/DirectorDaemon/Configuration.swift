import DirectorCore
import DirectorSync
import DirectorWire
import Foundation
import PacketIO

/// The director's configuration, validated: every field has been checked, so a value of this
/// type can be started without further questions (the director never starts half-configured).
public struct Configuration: Sendable {
    public struct RealServerConfig: Sendable, Equatable {
        public var address: IPAddress
        public var port: UInt16
        public var weight: UInt32
        /// Configured MAC; nil = resolve by ARP on the back interface.
        public var mac: MACAddress?
        /// The service's check with this server's overrides; nil: never checked, always up.
        public var healthCheck: HealthCheck? = nil
    }

    public struct ServiceConfig: Sendable {
        /// The VIP; its family is every real server's (and the fallback's).
        public var address: IPAddress
        public var port: UInt16
        public var transport: TransportProtocol
        public var scheduler: SchedulerKind
        public var forwarding: ForwardingMethod
        public var maglevTableSize: Int
        public var realServers: [RealServerConfig]
        /// The check a server added at run time gets (each configured server has its own copy,
        /// with its overrides).
        public var healthCheck: HealthCheck? = nil
        public var onServerDown: ServerFailurePolicy = .keep
        /// Where new connections go while no real server can take one (every one failed its check
        /// or is drained), like keepalived's sorry_server; nil: they are dropped and counted.
        public var fallback: RealServerConfig? = nil
    }

    public var frontInterface: String
    /// The interface towards the real servers; the front one when not set (one-armed DR).
    public var backInterface: String
    /// One worker per listed CPU, pinned to it.
    public var workerCPUs: [Int]
    /// Connections the whole director can track; each worker's shard gets an equal part.
    public var connectionCapacity: Int
    public var controlSocket: String
    /// Install the nftables netdev rule that hides the director's frames from the host stack.
    public var hidesFramesFromHost: Bool
    /// The VIP's MAC; nil = the front interface's own.
    public var virtualMAC: MACAddress?
    public var answersARP: Bool
    public var bucketCount: UInt32
    /// This dispatcher's id (1–255), unique in the pair.
    public var nodeID: UInt8
    /// The other dispatcher of the pair, if there is one.
    public var peer: Peer?
    /// The buckets this dispatcher accepts at start.
    public var initialOwnership: BucketOwnership
    /// Each worker's receive ring.
    public var receiveRing: ReceiveRingGeometry
    /// Whether the control socket takes `fault` commands (a stalled worker, a failing filter
    /// change): for testing the pair's reactions, never on a production director.
    public var allowsFaultInjection: Bool

    /// The other dispatcher of the pair and the crossover link to it (connection sync).
    public struct Peer: Sendable, Equatable {
        public var nodeID: UInt8
        /// The peer's address on the crossover link.
        public var address: IPv4Address
        /// This dispatcher's own address on the crossover link (the sync socket binds to it).
        public var localAddress: IPv4Address
        /// UDP port of the sync socket, the same on both.
        public var syncPort: UInt16
        /// UDP port of the liveness socket (heartbeats only), the same on both.
        public var heartbeatPort: UInt16
        /// The pair's shared HMAC-SHA256 key (at least 16 bytes).
        public var key: [UInt8]
        public var heartbeatIntervalMilliseconds: Int
        /// The peer is declared dead after this many heartbeat intervals of silence.
        public var deadAfterMissed: Int
        /// SCHED_FIFO priority of the sync thread (0: ordinary scheduling). Heartbeats must
        /// not wait behind busy workers, or a loaded survivor mistakes a late one for a death.
        public var syncRealtimePriority: Int
        /// CPU for the sync and liveness threads; nil = any CPU.
        public var syncCPU: Int?
        /// A worker that has not come round its loop for this long stops the heartbeats, so the
        /// peer takes over (a stuck data path must not keep its buckets).
        public var workerStallMilliseconds: Int

        public static let defaultSyncPort: UInt16 = 7439

        public init(nodeID: UInt8, address: IPv4Address, localAddress: IPv4Address, syncPort: UInt16 = Peer.defaultSyncPort,
                    heartbeatPort: UInt16? = nil, key: [UInt8], heartbeatIntervalMilliseconds: Int = 10, deadAfterMissed: Int = SyncSettings.defaultDeadAfterMissed,
                    syncRealtimePriority: Int = 10, syncCPU: Int? = nil, workerStallMilliseconds: Int = 1000) {
            self.nodeID = nodeID
            self.address = address
            self.localAddress = localAddress
            self.syncPort = syncPort
            self.heartbeatPort = heartbeatPort ?? (syncPort == .max ? syncPort - 1 : syncPort + 1)
            self.workerStallMilliseconds = workerStallMilliseconds
            self.key = key
            self.heartbeatIntervalMilliseconds = heartbeatIntervalMilliseconds
            self.deadAfterMissed = deadAfterMissed
            self.syncRealtimePriority = syncRealtimePriority
            self.syncCPU = syncCPU
        }
    }
    public var timeouts: ConnectionTimeouts
    public var services: [ServiceConfig]
    /// Run with the event's words appended (`peer dead 2`, `server down tcp:198.18.0.100:80
    /// 198.18.2.12:80`, …), like keepalived's notify scripts; nil: no notifications.
    public var notifyCommand: [String]? = nil
    /// Where `/metrics` and the status page are served over HTTP; nil: not at all.
    public var metricsListen: ListenAddress? = nil
    /// NAT: the real servers' default gateway, answered for by the director; nil: no NAT service.
    public var natGateway: NATGatewayConfig? = nil

    public struct NATGatewayConfig: Sendable, Equatable {
        public var address: IPv4Address
        /// The IPv6 real servers' gateway; required by an IPv6 NAT service.
        public var address6: IPv6Address?
        /// nil: the virtual MAC (the segments differ, so the pair's one MAC serves both).
        public var mac: MACAddress?

        public init(address: IPv4Address, address6: IPv6Address? = nil, mac: MACAddress?) {
            self.address = address
            self.address6 = address6
            self.mac = mac
        }
    }

    /// Lock the director's memory as it is touched (mlockall with MCL_ONFAULT): the data path
    /// never waits for a page from swap. Needs CAP_IPC_LOCK.
    public var locksMemory = true

    /// Whether established flows are forwarded by the XDP program on the front interface
    /// (`fast_path: xdp`) or every frame goes through the ring (`off`, the default).
    public var fastPath = FastPathMode.off
    /// Flows the fast path's map holds (`fast_path_flows`): kernel memory, about 100 bytes each.
    public var fastPathFlows = 262_144

    public enum FastPathMode: String, Sendable, Equatable {
        case off
        /// In the driver if it has XDP, else generic.
        case xdp
        /// Only in the driver (off if the driver has no XDP).
        case xdpDriver = "xdp-driver"
        /// Only generic: after the socket buffer is made, in any driver.
        case xdpGeneric = "xdp-generic"

        public var isOn: Bool { self != .off }
    }

    /// An IPv4 address and TCP port to listen on.
    public struct ListenAddress: Equatable, Sendable, CustomStringConvertible {
        public var address: IPv4Address
        public var port: UInt16

        public init(address: IPv4Address, port: UInt16) {
            self.address = address
            self.port = port
        }

        /// "127.0.0.1:9117"; nil for anything else (a port of 0 included).
        public init?(_ text: String) {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let address = IPv4Address(String(parts[0])), let port = UInt16(parts[1]), port > 0 else { return nil }
            self.init(address: address, port: port)
        }

        public var description: String { "\(address):\(port)" }
    }

    public static let defaultControlSocket = "/run/director/director.sock"

    /// A key as operators write it: hexadecimal, at least 32 digits (16 bytes); blanks ignored.
    public static func parseKey(_ text: String) -> [UInt8]? {
        let digits = Array(text.filter { !$0.isWhitespace })
        guard digits.count >= 32, digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(digits[index...index + 1]), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }

    /// Bucket ranges as operators write them: "all", "none", or "0-511,600,700-703".
    public static func parseBuckets(_ text: String, bucketCount: UInt32) -> BucketOwnership? {
        switch text.trimmingCharacters(in: .whitespaces) {
        case "all": return .all(bucketCount)
        case "none": return .none(bucketCount)
        default: break
        }
        var ownership = BucketOwnership.none(bucketCount)
        for part in text.split(separator: ",") {
            let bounds = part.trimmingCharacters(in: .whitespaces).split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count), let low = UInt32(bounds[0]), let high = UInt32(bounds.last!),
                  low <= high, high < bucketCount else { return nil }
            for bucket in low...high { ownership.set(bucket, owned: true) }
        }
        return ownership
    }
}

/// A configuration problem, naming the field (as a path into the file) and what is wrong.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    public let field: String
    public let problem: String

    public init(field: String, problem: String) {
        self.field = field
        self.problem = problem
    }

    public var description: String { field.isEmpty ? problem : "\(field): \(problem)" }
}
