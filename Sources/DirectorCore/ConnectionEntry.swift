import DirectorWire

/// One slot of a connection table. For IPv4, 32 bytes, two to a cache line:
///
///      0               4               8       10      12  13  14  15
///     +---------------+---------------+-------+-------+---+---+---+---+
///     | client addr   | virtual addr  | cport | vport |pro|sta|flg|epo|
///     +-------+-------+---------------+-------+-------+---+---+---+---+
///     | rs id |synced | key hash      | expires at (ms, monotonic)    |
///     +-------+-------+---------------+-------------------------------+
///     16      18      20              24                              32
///
/// For IPv6 the same fields with 16-byte addresses: 56 bytes (the two addresses take 24 bytes
/// more), in a table of their own so that IPv4 connections keep their 32.
public struct ConnectionEntry<Address: FlowAddress>: Sendable, Equatable {
    public var clientAddress: Address
    public var virtualAddress: Address
    public var clientPort: UInt16
    public var virtualPort: UInt16
    @usableFromInline var transportNumber: UInt8
    @usableFromInline var stateNumber: UInt8
    @usableFromInline var flags: UInt8
    /// For a replica: the resync epoch in which the peer last wrote it (see `Forwarder.apply`).
    /// For an own entry in the XDP fast path: the flush generation it was offered under
    /// (`fastPathGeneration`); an entry is one or the other, never both.
    public var replicaEpoch: UInt8 = 0
    /// The real server, by the stable id the control plane gave it (see `ServiceTable`).
    public var realServerID: UInt16
    /// When the peer last heard of this entry, in whole seconds of the monotonic clock (mod
    /// 2^16): the forwarder sends a refresh once half the entry's timeout has passed since.
    public var syncedAtSeconds: UInt16 = 0
    /// `FlowKey.tableHash`, kept so that moving an entry never rehashes it.
    public var keyHash: UInt32
    /// Monotonic milliseconds at which the entry expires unless refreshed.
    public var expiresAt: UInt64

    @usableFromInline static var occupiedFlag: UInt8 { 1 }
    /// Set on entries copied from the peer dispatcher (used by connection sync).
    @usableFromInline static var replicaFlag: UInt8 { 2 }
    /// Set once the client has shown a real conversation (see `isProven`).
    @usableFromInline static var provenFlag: UInt8 { 4 }
    /// Set while the XDP fast path has been offered the flow (see `isOffloaded`).
    @usableFromInline static var offloadedFlag: UInt8 { 8 }

    @inlinable
    public init(key: FlowKey<Address>, keyHash: UInt32, state: ConnectionState, realServerID: UInt16, expiresAt: UInt64, isReplica: Bool = false) {
        clientAddress = key.clientAddress
        virtualAddress = key.virtualAddress
        clientPort = key.clientPort
        virtualPort = key.virtualPort
        transportNumber = key.transport.rawValue
        stateNumber = state.rawValue
        flags = ConnectionEntry.occupiedFlag | (isReplica ? ConnectionEntry.replicaFlag : 0)
        self.realServerID = realServerID
        self.keyHash = keyHash
        self.expiresAt = expiresAt
    }

    @inlinable
    public var state: ConnectionState {
        get { ConnectionState(rawValue: stateNumber) ?? .none }
        set { stateNumber = newValue.rawValue }
    }

    @inlinable
    public var isOccupied: Bool { flags & ConnectionEntry.occupiedFlag != 0 }
    /// A copy of the peer dispatcher's connection, kept so this one can carry the flow if the
    /// peer fails or hands the bucket over. It turns live when a packet of the flow arrives here.
    @inlinable
    public var isReplica: Bool {
        get { flags & ConnectionEntry.replicaFlag != 0 }
        set { flags = newValue ? flags | ConnectionEntry.replicaFlag : flags & ~ConnectionEntry.replicaFlag }
    }

    /// Whether the client has shown that the connection is real: data after the handshake
    /// (TCP) or a second datagram (UDP). A DR director never sees the server's answers, so two
    /// forged frames (a SYN, then an ACK) make an ESTABLISHED entry; until it is proven it keeps
    /// the SYN_RECV timeout and a new flow may take its place in a full shard (`ConnectionTable`).
    @inlinable
    public var isProven: Bool {
        get { flags & ConnectionEntry.provenFlag != 0 }
        set { flags = newValue ? flags | ConnectionEntry.provenFlag : flags & ~ConnectionEntry.provenFlag }
    }

    /// Whether the worker has offered the flow to the XDP fast path, which then forwards its
    /// frames without the ring: the entry's expiry is then a time to ask the program when it last
    /// saw the flow, and its end must take the flow out of the program's map.
    @inlinable
    public var isOffloaded: Bool {
        get { flags & ConnectionEntry.offloadedFlag != 0 }
        set { flags = newValue ? flags | ConnectionEntry.offloadedFlag : flags & ~ConnectionEntry.offloadedFlag }
    }

    /// The low byte of the fast path generation an offloaded entry was offered under (it shares
    /// the replica epoch's byte: a replica is never offloaded). Enough to tell that a flush came
    /// since; the program itself compares all 32 bits.
    @inlinable
    public var fastPathGeneration: UInt8 {
        get { replicaEpoch }
        set { replicaEpoch = newValue }
    }

    @inlinable
    public var key: FlowKey<Address> {
        FlowKey(clientAddress: clientAddress, clientPort: clientPort, virtualAddress: virtualAddress,
                virtualPort: virtualPort, transport: TransportProtocol(rawValue: transportNumber) ?? .tcp)
    }

    @inlinable @inline(__always)
    func matches(_ key: FlowKey<Address>) -> Bool {
        clientAddress == key.clientAddress && clientPort == key.clientPort
            && virtualAddress == key.virtualAddress && virtualPort == key.virtualPort
            && transportNumber == key.transport.rawValue
    }
}
