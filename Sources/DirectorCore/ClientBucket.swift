import DirectorWire

/// The bucket of a flow: a hash of its *client* endpoint (address and port) only.
///
/// Everything that must agree about who handles a flow uses this one function: the fan-out that
/// picks the worker (and so the table shard), the kernel filter that decides which dispatcher
/// owns the flow, and the peer dispatcher. The client endpoint is the source on the way in and
/// the destination on a NAT reply, so both directions of a flow land in the same bucket.
///
/// It is built only from 32-bit multiply, xor and shift so that a classic-BPF program can compute
/// exactly the same value in the kernel (`FanoutProgram`):
///
///     x = address ^ (port * 0x9E3779B1)
///     x ^= x >> 16;  x *= 0x7FEB352D
///     x ^= x >> 15;  x *= 0x846CA68B
///     x ^= x >> 16
///
/// (the finaliser is Chris Wellons' "lowbias32" integer hash: every input bit moves every output bit).
public enum ClientBucket {
    public static let portMultiplier: UInt32 = 0x9E37_79B1
    public static let firstMultiplier: UInt32 = 0x7FEB_352D
    public static let secondMultiplier: UInt32 = 0x846C_A68B

    @inlinable @inline(__always)
    public static func hash(address: IPv4Address, port: UInt16) -> UInt32 {
        var x = address.rawValue ^ (UInt32(port) &* portMultiplier)
        x ^= x >> 16
        x &*= firstMultiplier
        x ^= x >> 15
        x &*= secondMultiplier
        x ^= x >> 16
        return x
    }

    /// The bucket among `bucketCount` (a power of two).
    @inlinable @inline(__always)
    public static func bucket(address: IPv4Address, port: UInt16, bucketCount: UInt32) -> UInt32 {
        hash(address: address, port: port) & (bucketCount &- 1)
    }
}
