import DirectorWire

/// An address family's address, as connection keys, tables and schedulers use it. The data path
/// is generic over it and specialised for each family: no existential, no branch on the family
/// per frame once the parser has chosen.
public protocol FlowAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    static var zero: Self { get }
    /// 64 bits of the address for the table hash (`FlowKey.tableHash`): a client's address and
    /// the VIP's are combined into one word before the finaliser.
    static func tableWord(client: Self, virtual: Self) -> UInt64
    /// 32 bits of the address for the source-hash scheduler.
    var sourceHashWord: UInt32 { get }
    /// The whole address as two words, for indexes that compare plain integers (an IPv4
    /// address in the second, the first zero).
    var indexWords: (first: UInt64, second: UInt64) { get }

    // What the pipeline asks of its family's half of the services and the sink: the generic
    // steps call these, and each family answers from its own index or overload.

    /// The position of the service of this family at `address`:`port`, if there is one.
    static func findService(in services: ServiceTable, address: Self, port: UInt16, transport: TransportProtocol) -> Int?
    /// The address and port NAT rewrites a flow of `realServerID` to.
    static func translatedDestination(in services: ServiceTable, of realServerID: UInt16) -> (address: Self, port: UInt16)
    /// The NAT service and real server whose translated endpoint is `address`:`port` (a reply's source).
    static func findReplySource(in services: ServiceTable, address: Self, port: UInt16,
                                transport: TransportProtocol) -> (service: Int, server: UInt16)?
    /// The VIP and port of the service at `position` (of this family).
    static func virtualEndpoint(in services: ServiceTable, ofService position: Int) -> (address: Self, port: UInt16)
    /// The address as the control plane and the sync wire name it.
    var ipAddress: IPAddress { get }
    /// `address` if it is of this family.
    static func of(_ address: IPAddress) -> Self?
    /// Hands `change` to the sink's overload for this family.
    static func report<Sink: ConnectionChangeSink & ~Copyable>(_ change: ConnectionChange<Self>, to sink: inout Sink)
    /// The address as the XDP fast path keys it; nil for a family the program does not forward.
    var fastPathAddress: IPv4Address? { get }
}

extension IPv4Address: FlowAddress {
    public static var zero: IPv4Address { IPv4Address(rawValue: 0) }
    public var ipAddress: IPAddress { .v4(self) }
    public static func of(_ address: IPAddress) -> IPv4Address? { address.v4 }
    @inlinable public var fastPathAddress: IPv4Address? { self }

    /// Both addresses side by side: distinct pairs stay distinct.
    @inlinable @inline(__always)
    public static func tableWord(client: IPv4Address, virtual: IPv4Address) -> UInt64 {
        UInt64(client.rawValue) << 32 | UInt64(virtual.rawValue)
    }

    @inlinable @inline(__always)
    public var sourceHashWord: UInt32 { rawValue }

    @inlinable @inline(__always)
    public var indexWords: (first: UInt64, second: UInt64) { (0, UInt64(rawValue)) }

    @inlinable @inline(__always)
    public static func findService(in services: ServiceTable, address: IPv4Address, port: UInt16, transport: TransportProtocol) -> Int? {
        services.find(address: address, port: port, transport: transport)
    }

    @inlinable @inline(__always)
    public static func translatedDestination(in services: ServiceTable, of realServerID: UInt16) -> (address: IPv4Address, port: UInt16) {
        services.translatedDestination(realServerID)
    }

    @inlinable @inline(__always)
    public static func findReplySource(in services: ServiceTable, address: IPv4Address, port: UInt16,
                                       transport: TransportProtocol) -> (service: Int, server: UInt16)? {
        services.findReplySource(address: address, port: port, transport: transport)
    }

    @inlinable @inline(__always)
    public static func virtualEndpoint(in services: ServiceTable, ofService position: Int) -> (address: IPv4Address, port: UInt16) {
        services.virtualEndpoint(ofService: position)
    }

    @inlinable @inline(__always)
    public static func report<Sink: ConnectionChangeSink & ~Copyable>(_ change: ConnectionChange<IPv4Address>, to sink: inout Sink) {
        sink.record(change)
    }
}

extension IPv6Address: FlowAddress {
    public var ipAddress: IPAddress { .v6(self) }
    public static func of(_ address: IPAddress) -> IPv6Address? { address.v6 }
    /// IPv6 flows stay on the ring: the program parses IPv4 only.
    @inlinable public var fastPathAddress: IPv4Address? { nil }

    /// Each address folded to 64 bits (a multiply of one half, xor the other: for a fixed upper
    /// half, distinct lower halves stay distinct, so clients of one /64 cannot collide on
    /// purpose), the VIP's rotated so that it does not cancel the client's.
    @inlinable @inline(__always)
    public static func tableWord(client: IPv6Address, virtual: IPv6Address) -> UInt64 {
        let clientWord = client.high &* 0x9E37_79B9_7F4A_7C15 ^ client.low
        let virtualWord = virtual.high &* 0xC2B2_AE3D_27D4_EB4F ^ virtual.low
        return clientWord ^ (virtualWord << 32 | virtualWord >> 32)
    }

    @inlinable @inline(__always)
    public var sourceHashWord: UInt32 { ClientBucket.fold(self) }

    @inlinable @inline(__always)
    public var indexWords: (first: UInt64, second: UInt64) { (high, low) }

    @inlinable @inline(__always)
    public static func findService(in services: ServiceTable, address: IPv6Address, port: UInt16, transport: TransportProtocol) -> Int? {
        services.find(address: address, port: port, transport: transport)
    }

    @inlinable @inline(__always)
    public static func translatedDestination(in services: ServiceTable, of realServerID: UInt16) -> (address: IPv6Address, port: UInt16) {
        services.translatedDestination6(realServerID)
    }

    @inlinable @inline(__always)
    public static func findReplySource(in services: ServiceTable, address: IPv6Address, port: UInt16,
                                       transport: TransportProtocol) -> (service: Int, server: UInt16)? {
        services.findReplySource(address: address, port: port, transport: transport)
    }

    @inlinable @inline(__always)
    public static func virtualEndpoint(in services: ServiceTable, ofService position: Int) -> (address: IPv6Address, port: UInt16) {
        services.virtualEndpoint6(ofService: position)
    }

    @inlinable @inline(__always)
    public static func report<Sink: ConnectionChangeSink & ~Copyable>(_ change: ConnectionChange<IPv6Address>, to sink: inout Sink) {
        sink.record(change)
    }
}
