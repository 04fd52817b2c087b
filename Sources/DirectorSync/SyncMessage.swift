import DirectorCore
import DirectorWire

/// One connection as its owner describes it to the peer (see the record drawing in SyncWireFormat).
public struct SyncRecord: Equatable, Sendable {
    public enum Change: UInt8, Sendable, CaseIterable {
        case created = 1
        case stateChanged = 2
        /// Still alive: pushes the replica's expiry out (long idle flows).
        case refreshed = 3
        case removed = 4
    }

    public var change: Change
    public var state: ConnectionState
    public var transport: TransportProtocol
    public var flags: UInt8
    /// The three addresses share one family: a record is made from one table entry, and the
    /// wire has no layout that mixes them.
    public var clientAddress: IPAddress
    public var virtualAddress: IPAddress
    public var clientPort: UInt16
    public var virtualPort: UInt16
    public var realServerAddress: IPAddress
    public var realServerPort: UInt16
    /// Milliseconds until the entry expires on the sender, at the time of sending.
    public var remainingLifetime: UInt32

    public init(change: Change, state: ConnectionState, transport: TransportProtocol, flags: UInt8 = 0,
                clientAddress: IPAddress, clientPort: UInt16, virtualAddress: IPAddress, virtualPort: UInt16,
                realServerAddress: IPAddress, realServerPort: UInt16, remainingLifetime: UInt32) {
        self.change = change
        self.state = state
        self.transport = transport
        self.flags = flags
        self.clientAddress = clientAddress
        self.virtualAddress = virtualAddress
        self.clientPort = clientPort
        self.virtualPort = virtualPort
        self.realServerAddress = realServerAddress
        self.realServerPort = realServerPort
        self.remainingLifetime = remainingLifetime
    }

    public init(change: Change, state: ConnectionState, transport: TransportProtocol, flags: UInt8 = 0,
                clientAddress: IPv4Address, clientPort: UInt16, virtualAddress: IPv4Address, virtualPort: UInt16,
                realServerAddress: IPv4Address, realServerPort: UInt16, remainingLifetime: UInt32) {
        self.init(change: change, state: state, transport: transport, flags: flags, clientAddress: .v4(clientAddress), clientPort: clientPort,
                  virtualAddress: .v4(virtualAddress), virtualPort: virtualPort, realServerAddress: .v4(realServerAddress),
                  realServerPort: realServerPort, remainingLifetime: remainingLifetime)
    }

    /// Bytes the record takes on the wire: 32 for IPv4, 68 for IPv6.
    public var wireLength: Int { clientAddress.isIPv6 ? SyncWireFormat.ipv6RecordLength : SyncWireFormat.recordLength }
}

/// The fixed header fields of a datagram (magic, version, kind and length are the codec's).
public struct SyncHeader: Equatable, Sendable {
    public var nodeID: UInt8
    public var flags: UInt8
    /// Drawn at random at each start: a peer that hears another one (and sees it answer its
    /// challenge) knows the sender restarted. Random, so a clock stepped back changes nothing.
    public var incarnation: UInt64
    /// Per datagram, increasing within an incarnation: the replay window's number.
    public var sequence: UInt64
    public var sentAt: UInt64

    public init(nodeID: UInt8, flags: UInt8 = 0, incarnation: UInt64, sequence: UInt64, sentAt: UInt64) {
        self.nodeID = nodeID
        self.flags = flags
        self.incarnation = incarnation
        self.sequence = sequence
        self.sentAt = sentAt
    }
}

/// What a bucket handover message asks or announces.
public enum OwnershipAction: UInt8, Sendable, CaseIterable {
    /// "I am ready to take these buckets": the returner, caught up, asks for its share back.
    case request = 1
    /// "I no longer accept these buckets": the current owner let go; the receiver takes them.
    case released = 2
    /// "I accept these buckets now": the new owner confirms, ending the handover.
    case taken = 3
}

/// A datagram's body, by kind.
public enum SyncBody: Equatable, Sendable {
    case deltas(dataSequence: UInt64, records: [SyncRecord])
    /// `challenge`: the sender's current nonce, for the receiver to echo; `echo`: the challenge
    /// of the latest authentic heartbeat the sender heard (see the handshake in SyncWireFormat).
    case heartbeat(HeartbeatAnnouncement, challenge: UInt64, echo: UInt64)
    case ack(dataSequence: UInt64)
    case nack(missing: [ClosedRange<UInt64>])
    case snapshotRequest(requestID: UInt64)
    /// Part of the sender's whole table, answering `requestID`. Chunks share the data sequence
    /// numbers of deltas, so the same NACK and retransmission make the snapshot reliable.
    case snapshotChunk(requestID: UInt64, dataSequence: UInt64, index: UInt32, isLast: Bool, records: [SyncRecord])
    /// `highestDataSequence`: the last data sequence the sender had sent when it said this;
    /// `clientNextHop`: the MAC its client frames come from (zero when it has seen none).
    case ownership(version: UInt64, highestDataSequence: UInt64, action: OwnershipAction, clientNextHop: MACAddress,
                   ranges: [ClosedRange<UInt16>])
    /// The sender's whole view of its checked real servers, in parts of at most
    /// `SyncWireFormat.healthReportsPerMessage` sharing one `version` (a newer view has a
    /// higher one).
    case health(version: UInt64, reports: [ServerHealthReport])

    public var kind: SyncMessageKind {
        switch self {
        case .deltas: .deltas
        case .heartbeat: .heartbeat
        case .ack: .ack
        case .nack: .nack
        case .snapshotRequest: .snapshotRequest
        case .snapshotChunk: .snapshotChunk
        case .ownership: .ownership
        case .health: .health
        }
    }
}

/// A whole datagram, as the codec reads and writes it.
public struct SyncDatagram: Equatable, Sendable {
    public var header: SyncHeader
    public var body: SyncBody

    public init(header: SyncHeader, body: SyncBody) {
        self.header = header
        self.body = body
    }
}
