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
///
/// An IPv6 address is first folded into 32 bits, then goes through the same function:
///
///     a = w0;  a = a * 0x9E3779B1 ^ w1;  a = a * 0x9E3779B1 ^ w2;  a = a * 0x9E3779B1 ^ w3
///
/// with w0…w3 its four 32-bit words, first word first. Each step is a bijection of `a` (the
/// multiplier is odd), so any two addresses that differ in one word fold differently; and an
/// address whose first 96 bits are zero folds to its last word, so ::198.18.1.10 shares
/// 198.18.1.10's bucket.
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

    @inlinable @inline(__always)
    public static func fold(_ address: IPv6Address) -> UInt32 {
        let words = address.words
        var a = words.0
        a = a &* portMultiplier ^ words.1
        a = a &* portMultiplier ^ words.2
        a = a &* portMultiplier ^ words.3
        return a
    }

    @inlinable @inline(__always)
    public static func hash(address: IPv6Address, port: UInt16) -> UInt32 {
        hash(address: IPv4Address(rawValue: fold(address)), port: port)
    }

    @inlinable @inline(__always)
    public static func bucket(address: IPv6Address, port: UInt16, bucketCount: UInt32) -> UInt32 {
        hash(address: address, port: port) & (bucketCount &- 1)
    }

    /// The bucket among `bucketCount` (a power of two).
    @inlinable @inline(__always)
    public static func bucket(address: IPv4Address, port: UInt16, bucketCount: UInt32) -> UInt32 {
        hash(address: address, port: port) & (bucketCount &- 1)
    }
}
