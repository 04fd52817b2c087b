/// What a dispatcher's heartbeat says about it.
public struct HeartbeatAnnouncement: Equatable, Sendable {
    /// Moves on with every change of the buckets the sender accepts.
    public var ownershipVersion: UInt64
    /// The last data sequence the sender had sent: anything the receiver has not seen up to
    /// here was lost and is NACKed.
    public var highestDataSequence: UInt64
    public var bucketCount: UInt16
    public var ownedBuckets: UInt16

    public init(ownershipVersion: UInt64, highestDataSequence: UInt64, bucketCount: UInt16, ownedBuckets: UInt16) {
        self.ownershipVersion = ownershipVersion
        self.highestDataSequence = highestDataSequence
        self.bucketCount = bucketCount
        self.ownedBuckets = ownedBuckets
    }
}

/// A heartbeat the liveness channel accepted.
public struct PeerHeartbeat: Equatable, Sendable {
    public var incarnation: UInt64
    public var announcement: HeartbeatAnnouncement
    /// CLOCK_MONOTONIC (ns) when it arrived here.
    public var heardAt: UInt64

    public init(incarnation: UInt64, announcement: HeartbeatAnnouncement, heardAt: UInt64) {
        self.incarnation = incarnation
        self.announcement = announcement
        self.heardAt = heardAt
    }
}

/// The liveness channel of the pair: heartbeats only, on a socket of their own, written and read
/// by a thread that does nothing else (the daemon's liveness thread). The record stream, however
/// busy, never delays a heartbeat here, and a heartbeat never waits behind records there.
/// Heartbeats are authenticated like every sync datagram; this channel numbers them itself and
/// keeps its own replay window. Pure: no sockets, time passed in.
public struct LivenessChannel: Sendable {
    public let nodeID: UInt8
    public let peerNodeID: UInt8
    public let incarnation: UInt64
    private let codec: SyncCodec
    private var sequence: UInt64 = 0
    private var replay = ReplayWindow()
    public private(set) var heartbeatsSent: UInt64 = 0
    public private(set) var heartbeatsReceived: UInt64 = 0
    public private(set) var rejected = [UInt64](repeating: 0, count: SyncRejection.allCases.count)

    public init(nodeID: UInt8, peerNodeID: UInt8, incarnation: UInt64, codec: SyncCodec) {
        self.nodeID = nodeID
        self.peerNodeID = peerNodeID
        self.incarnation = incarnation
        self.codec = codec
    }

    /// A signed heartbeat carrying `announcement`, sent at wall-clock time `wallClock`.
    public mutating func heartbeat(_ announcement: HeartbeatAnnouncement, wallClock: UInt64) -> [UInt8] {
        sequence += 1
        heartbeatsSent += 1
        let header = SyncHeader(nodeID: nodeID, incarnation: incarnation, sequence: sequence, sentAt: wallClock)
        return codec.encode(SyncDatagram(header: header, body: .heartbeat(
            ownershipVersion: announcement.ownershipVersion, highestDataSequence: announcement.highestDataSequence,
            bucketCount: announcement.bucketCount, ownedBuckets: announcement.ownedBuckets)))
    }

    /// The peer's heartbeat in `bytes`, if it is one; what is wrong with it is counted.
    public mutating func receive(_ bytes: [UInt8], now: UInt64) -> PeerHeartbeat? {
        let datagram: SyncDatagram
        do {
            datagram = try codec.decode(bytes)
        } catch {
            rejected[error.rawValue] += 1
            return nil
        }
        guard datagram.header.nodeID == peerNodeID else {
            rejected[SyncRejection.unexpectedSender.rawValue] += 1
            return nil
        }
        guard case let .heartbeat(version, highest, bucketCount, owned) = datagram.body else {
            rejected[SyncRejection.wrongChannel.rawValue] += 1
            return nil
        }
        if case .failure(let reason) = replay.admit(incarnation: datagram.header.incarnation, sequence: datagram.header.sequence) {
            rejected[reason.rawValue] += 1
            return nil
        }
        heartbeatsReceived += 1
        return PeerHeartbeat(incarnation: datagram.header.incarnation,
                             announcement: HeartbeatAnnouncement(ownershipVersion: version, highestDataSequence: highest,
                                                                 bucketCount: bucketCount, ownedBuckets: owned),
                             heardAt: now)
    }
}
