import DirectorCore
import DirectorWire
import Foundation

/// The director's configuration, validated: every field has been checked, so a value of this
/// type can be started without further questions (the director never starts half-configured).
public struct Configuration: Sendable {
    public struct RealServerConfig: Sendable, Equatable {
        public var address: IPv4Address
        public var port: UInt16
        public var weight: UInt32
        /// Configured MAC; nil = resolve by ARP on the back interface.
        public var mac: MACAddress?
    }

    public struct ServiceConfig: Sendable {
        public var address: IPv4Address
        public var port: UInt16
        public var transport: TransportProtocol
        public var scheduler: SchedulerKind
        public var forwarding: ForwardingMethod
        public var maglevTableSize: Int
        public var realServers: [RealServerConfig]
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

    public struct Peer: Sendable, Equatable {
        public var nodeID: UInt8
        /// The peer's address on the crossover link (connection sync).
        public var address: IPv4Address

        public init(nodeID: UInt8, address: IPv4Address) {
            self.nodeID = nodeID
            self.address = address
        }
    }
    public var timeouts: ConnectionTimeouts
    public var services: [ServiceConfig]

    public static let defaultControlSocket = "/run/director/director.sock"

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
