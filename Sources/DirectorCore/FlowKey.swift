import DirectorWire

/// A connection's identity as the director sees it on the way in: client endpoint, virtual
/// endpoint, protocol. (In DR the real server's reply never passes the director.)
public struct FlowKey<Address: FlowAddress>: Hashable, Sendable, CustomStringConvertible {
    public var clientAddress: Address
    public var virtualAddress: Address
    public var clientPort: UInt16
    public var virtualPort: UInt16
    public var transport: TransportProtocol

    @inlinable
    public init(clientAddress: Address, clientPort: UInt16, virtualAddress: Address, virtualPort: UInt16, transport: TransportProtocol) {
        self.clientAddress = clientAddress
        self.virtualAddress = virtualAddress
        self.clientPort = clientPort
        self.virtualPort = virtualPort
        self.transport = transport
    }

    /// Hash of the whole key, for the slot in a table shard. (The shard itself was chosen by the
    /// client endpoint's bucket; this spreads the flows of one bucket over the shard.)
    @inlinable @inline(__always)
    public var tableHash: UInt32 {
        var x = Address.tableWord(client: clientAddress, virtual: virtualAddress)
        x ^= (UInt64(clientPort) << 24 | UInt64(virtualPort) << 8 | UInt64(transport.rawValue)) &* 0x9E37_79B9_7F4A_7C15
        // splitmix64's finaliser
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        x ^= x >> 31
        return UInt32(truncatingIfNeeded: x)
    }

    public var description: String {
        "\(transport) \(Address.self == IPv6Address.self ? "[\(clientAddress)]" : "\(clientAddress)"):\(clientPort) -> "
            + "\(Address.self == IPv6Address.self ? "[\(virtualAddress)]" : "\(virtualAddress)"):\(virtualPort)"
    }
}
