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
/// keeps its own replay window.
///
/// It is also where an incarnation of the peer comes to be believed (the handshake drawn in
/// SyncWireFormat): every heartbeat sent carries this side's challenge and echoes the peer's; a
/// heartbeat of an incarnation not yet believed is heard only if it echoes the current challenge,
/// and then the challenge is drawn anew. Pure: no sockets; time and nonces passed in.
public struct LivenessChannel: Sendable {
    public let nodeID: UInt8
    public let peerNodeID: UInt8
    public let incarnation: UInt64
    private let codec: SyncCodec
    private let nonces: @Sendable () -> UInt64
    private var sequence: UInt64 = 0
    private var replay = ReplayWindow()
    /// What the peer must echo for a new incarnation of it to be believed.
    private var challenge: UInt64
    /// The challenge of the latest authentic heartbeat from the peer, echoed in every heartbeat.
    private var echo: UInt64 = 0
    /// Heartbeats of an unbelieved incarnation that do not echo the challenge are authenticated
    /// only within this budget (tokens, refilled one per `unverifiedCheckInterval`): enough to
    /// learn a restarted peer's challenge, too little for a flood of forgeries to cost anything.
    private var unverifiedChecks = LivenessChannel.unverifiedCheckBurst
    private var unverifiedChecksRefilledAt: UInt64 = 0
    public private(set) var heartbeatsSent: UInt64 = 0
    public private(set) var heartbeatsReceived: UInt64 = 0
    /// Incarnations of the peer believed so far (the first, then one per restart).
    public private(set) var incarnationsVerified: UInt64 = 0
    public private(set) var rejected = [UInt64](repeating: 0, count: SyncRejection.allCases.count)
    /// The version the latest datagram of another sync wire version said it was, until
    /// `takeForeignVersion` (nil: none came since).
    public private(set) var foreignVersion: UInt8?

    /// The version of another sync wire a datagram spoke since the last call, and forgets it.
    public mutating func takeForeignVersion() -> UInt8? {
        defer { foreignVersion = nil }
        return foreignVersion
    }

    static let unverifiedCheckBurst = 8
    static let unverifiedCheckInterval: UInt64 = 10_000_000

    /// `nonces` draws challenges: random in the daemon (`LivenessChannel.randomNonce`), a fixed
    /// sequence where a test or a fuzzer needs to know them.
    public init(nodeID: UInt8, peerNodeID: UInt8, incarnation: UInt64, codec: SyncCodec,
                nonces: @escaping @Sendable () -> UInt64 = LivenessChannel.randomNonce) {
        self.nodeID = nodeID
        self.peerNodeID = peerNodeID
        self.incarnation = incarnation
        self.codec = codec
        self.nonces = nonces
        challenge = nonces()
    }

    public static let randomNonce: @Sendable () -> UInt64 = { UInt64.random(in: 1...UInt64.max) }

    /// The peer incarnation this side believes, once it answered a challenge.
    public var verifiedIncarnation: UInt64? { replay.incarnation }

    /// A signed heartbeat carrying `announcement`, sent at wall-clock time `wallClock`.
    public mutating func heartbeat(_ announcement: HeartbeatAnnouncement, wallClock: UInt64) -> [UInt8] {
        sequence += 1
        heartbeatsSent += 1
        let header = SyncHeader(nodeID: nodeID, incarnation: incarnation, sequence: sequence, sentAt: wallClock)
        return codec.encode(SyncDatagram(header: header, body: .heartbeat(announcement, challenge: challenge, echo: echo)))
    }

    /// The peer's heartbeat in `bytes`, if it is one of an incarnation this side believes; what
    /// is wrong with it is counted. The cheap checks come first: an HMAC is computed only for a
    /// datagram that a forger without the captures of this very link could not have written.
    public mutating func receive(_ bytes: [UInt8], now: UInt64) -> PeerHeartbeat? {
        let preview: SyncPreview
        do {
            preview = try codec.preview(bytes)
        } catch {
            // The magic is right and the version is not: a director of another release (the
            // datagram is not authenticated, so this is a hint for the log, nothing more).
            if error == .unsupportedVersion { foreignVersion = bytes[2] }
            return refuse(error)
        }
        guard preview.header.nodeID == peerNodeID else { return refuse(.unexpectedSender) }
        guard preview.kind.isLiveness else { return refuse(.wrongChannel) }
        let header = preview.header
        let believed = header.incarnation == replay.incarnation
        if believed {
            if let refusal = replay.refusal(incarnation: header.incarnation, sequence: header.sequence) { return refuse(refusal) }
        } else if preview.heartbeatEcho != challenge, !spendUnverifiedCheck(now: now) {
            return refuse(.unverifiedIncarnation)
        }
        let datagram: SyncDatagram
        do {
            datagram = try codec.decode(bytes)
        } catch {
            return refuse(error)
        }
        guard case let .heartbeat(announcement, peerChallenge, echoed) = datagram.body else { return refuse(.wrongChannel) }
        // Authentic: whatever its incarnation, its challenge is the one to echo. A fresh peer
        // believes this side only after hearing it echoed.
        echo = peerChallenge
        if !believed {
            guard echoed == challenge else { return refuse(.unverifiedIncarnation) }
            replay.start(incarnation: header.incarnation)
            incarnationsVerified += 1
            // A capture of this answer must not make another incarnation believed later.
            challenge = nonces()
        }
        if let refusal = replay.admit(incarnation: header.incarnation, sequence: header.sequence) { return refuse(refusal) }
        heartbeatsReceived += 1
        return PeerHeartbeat(incarnation: header.incarnation, announcement: announcement, heardAt: now)
    }

    private mutating func refuse(_ reason: SyncRejection) -> PeerHeartbeat? {
        rejected[reason.rawValue] += 1
        return nil
    }

    private mutating func spendUnverifiedCheck(now: UInt64) -> Bool {
        if now &- unverifiedChecksRefilledAt >= LivenessChannel.unverifiedCheckInterval {
            let refill = (now &- unverifiedChecksRefilledAt) / LivenessChannel.unverifiedCheckInterval
            unverifiedChecks = Int(min(UInt64(LivenessChannel.unverifiedCheckBurst), UInt64(unverifiedChecks) + refill))
            unverifiedChecksRefilledAt = now
        }
        guard unverifiedChecks > 0 else { return false }
        unverifiedChecks -= 1
        return true
    }
}
