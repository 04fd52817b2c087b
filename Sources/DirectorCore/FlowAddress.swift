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
}

extension IPv4Address: FlowAddress {
    public static var zero: IPv4Address { IPv4Address(rawValue: 0) }

    /// Both addresses side by side: distinct pairs stay distinct.
    @inlinable @inline(__always)
    public static func tableWord(client: IPv4Address, virtual: IPv4Address) -> UInt64 {
        UInt64(client.rawValue) << 32 | UInt64(virtual.rawValue)
    }

    @inlinable @inline(__always)
    public var sourceHashWord: UInt32 { rawValue }
}

extension IPv6Address: FlowAddress {
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
}
