// Big-endian field access over spans. Every read is bounds-checked by RawSpan itself; the parsers
// still check lengths first so that a short frame becomes a counted drop, not a trap.

extension RawSpan {
    @inlinable @inline(__always)
    public func bigEndianUInt16(at offset: Int) -> UInt16 {
        UInt16(bigEndian: unsafeLoadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inlinable @inline(__always)
    public func bigEndianUInt32(at offset: Int) -> UInt32 {
        UInt32(bigEndian: unsafeLoadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inlinable @inline(__always)
    public func bigEndianUInt64(at offset: Int) -> UInt64 {
        UInt64(bigEndian: unsafeLoadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    @inlinable @inline(__always)
    public func byte(at offset: Int) -> UInt8 {
        unsafeLoad(fromByteOffset: offset, as: UInt8.self)
    }

    /// A 128-bit IPv6 address stored at `offset`.
    @inlinable @inline(__always)
    public func ipv6Address(at offset: Int) -> IPv6Address {
        IPv6Address(high: bigEndianUInt64(at: offset), low: bigEndianUInt64(at: offset + 8))
    }

    /// A 48-bit MAC address stored at `offset`.
    @inlinable @inline(__always)
    public func macAddress(at offset: Int) -> MACAddress {
        MACAddress(rawValue: UInt64(bigEndianUInt16(at: offset)) << 32 | UInt64(bigEndianUInt32(at: offset + 2)))
    }
}

extension MutableRawSpan {
    @inlinable @inline(__always)
    public mutating func storeBigEndian(_ value: UInt16, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self)
    }

    @inlinable @inline(__always)
    public mutating func storeBigEndian(_ value: UInt32, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self)
    }

    @inlinable @inline(__always)
    public mutating func storeBigEndian(_ value: UInt64, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt64.self)
    }

    @inlinable @inline(__always)
    public mutating func storeIPv6Address(_ address: IPv6Address, at offset: Int) {
        storeBigEndian(address.high, at: offset)
        storeBigEndian(address.low, at: offset + 8)
    }

    @inlinable @inline(__always)
    public mutating func storeMACAddress(_ address: MACAddress, at offset: Int) {
        storeBigEndian(UInt16(truncatingIfNeeded: address.rawValue >> 32), at: offset)
        storeBigEndian(UInt32(truncatingIfNeeded: address.rawValue), at: offset + 2)
    }

    @inlinable @inline(__always)
    public func bigEndianUInt16(at offset: Int) -> UInt16 {
        UInt16(bigEndian: unsafeLoadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
}
