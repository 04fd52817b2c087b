/// The Internet checksum (RFC 1071) and its incremental update (RFC 1624, eqn. 3).
public enum InternetChecksum {
    /// One's-complement sum of 16-bit big-endian words, folded; not yet complemented.
    public static func sum(_ bytes: RawSpan, initial: UInt32 = 0) -> UInt32 {
        var total = UInt64(initial)
        var offset = 0
        while offset + 1 < bytes.byteCount {
            total &+= UInt64(bytes.bigEndianUInt16(at: offset))
            offset += 2
        }
        if offset < bytes.byteCount { total &+= UInt64(bytes.byte(at: offset)) << 8 }
        while total >> 16 != 0 { total = (total & 0xFFFF) &+ (total >> 16) }
        return UInt32(total)
    }

    /// The checksum field value for `bytes` (whose checksum field must read as zero).
    public static func checksum(_ bytes: RawSpan, initial: UInt32 = 0) -> UInt16 {
        ~UInt16(truncatingIfNeeded: sum(bytes, initial: initial))
    }

    /// Completes a checksum that the sender left partial for offload: the field already holds the
    /// folded pseudo-header sum, so the final value is the complement of the sum from `start`
    /// to the end of the packet (as the kernel's skb_checksum_help does).
    public static func complete(_ frame: inout MutableRawSpan, start: Int, fieldOffset: Int, end: Int) {
        guard start >= 0, start + fieldOffset + 2 <= end, end <= frame.byteCount else { return }
        let value = checksum(frame.bytes.extracting(start..<end))
        frame.storeBigEndian(value == 0 && fieldOffset == UDPHeader.checksumOffset ? 0xFFFF : value, at: start + fieldOffset)
    }

    /// The sum of the IPv6 pseudo-header (RFC 8200 §8.1) that TCP, UDP and ICMPv6 checksums cover.
    public static func pseudoHeaderSum(source: IPv6Address, destination: IPv6Address, length: UInt32, nextHeader: UInt8) -> UInt32 {
        @inline(__always) func words(_ half: UInt64) -> UInt64 {
            (half >> 48) &+ ((half >> 32) & 0xFFFF) &+ ((half >> 16) & 0xFFFF) &+ (half & 0xFFFF)
        }
        var total = words(source.high) &+ words(source.low) &+ words(destination.high) &+ words(destination.low)
        total &+= UInt64(length >> 16) &+ UInt64(length & 0xFFFF) &+ UInt64(nextHeader)
        while total >> 16 != 0 { total = (total & 0xFFFF) &+ (total >> 16) }
        return UInt32(total)
    }

    /// RFC 1624: HC' = ~(~HC + ~m + m'), for a 16-bit field changing from `old` to `new`.
    @inlinable
    public static func updated(_ checksum: UInt16, replacing old: UInt16, with new: UInt16) -> UInt16 {
        var sum = UInt32(~checksum) &+ UInt32(~old) &+ UInt32(new)
        sum = (sum & 0xFFFF) &+ (sum >> 16)
        sum = (sum & 0xFFFF) &+ (sum >> 16)
        return ~UInt16(truncatingIfNeeded: sum)
    }

    /// The same for a 32-bit field (an address), as two 16-bit halves.
    @inlinable
    public static func updated(_ checksum: UInt16, replacing old: UInt32, with new: UInt32) -> UInt16 {
        let high = updated(checksum, replacing: UInt16(truncatingIfNeeded: old >> 16), with: UInt16(truncatingIfNeeded: new >> 16))
        return updated(high, replacing: UInt16(truncatingIfNeeded: old), with: UInt16(truncatingIfNeeded: new))
    }

    /// The same for a 128-bit field (an IPv6 address), as eight 16-bit words.
    @inlinable
    public static func updated(_ checksum: UInt16, replacing old: IPv6Address, with new: IPv6Address) -> UInt16 {
        let (o0, o1, o2, o3) = old.words, (n0, n1, n2, n3) = new.words
        var result = updated(checksum, replacing: o0, with: n0)
        result = updated(result, replacing: o1, with: n1)
        result = updated(result, replacing: o2, with: n2)
        return updated(result, replacing: o3, with: n3)
    }
}
