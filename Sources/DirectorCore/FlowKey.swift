import DirectorWire

/// A connection's identity as the director sees it on the way in: client endpoint, virtual
/// endpoint, protocol. (In DR the real server's reply never passes the director.)
public struct FlowKey: Hashable, Sendable, CustomStringConvertible {
    public var clientAddress: IPv4Address
    public var virtualAddress: IPv4Address
    public var clientPort: UInt16
    public var virtualPort: UInt16
    public var transport: TransportProtocol

    public init(clientAddress: IPv4Address, clientPort: UInt16, virtualAddress: IPv4Address, virtualPort: UInt16, transport: TransportProtocol) {
        self.clientAddress = clientAddress
        self.virtualAddress = virtualAddress
        self.clientPort = clientPort
        self.virtualPort = virtualPort
        self.transport = transport
    }

    public init(_ flow: IPv4Flow) {
        self.init(clientAddress: flow.source, clientPort: flow.sourcePort, virtualAddress: flow.destination,
                  virtualPort: flow.destinationPort, transport: flow.transport)
    }

    /// Hash of the whole key, for the slot in a table shard. (The shard itself was chosen by the
    /// client endpoint's bucket; this spreads the flows of one bucket over the shard.)
    @inlinable @inline(__always)
    public var tableHash: UInt32 {
        var x = UInt64(clientAddress.rawValue) << 32 | UInt64(virtualAddress.rawValue)
        x ^= (UInt64(clientPort) << 24 | UInt64(virtualPort) << 8 | UInt64(transport.rawValue)) &* 0x9E37_79B9_7F4A_7C15
        // splitmix64's finaliser
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        x ^= x >> 31
        return UInt32(truncatingIfNeeded: x)
    }

    public var description: String {
        "\(transport) \(clientAddress):\(clientPort) -> \(virtualAddress):\(virtualPort)"
    }
}
