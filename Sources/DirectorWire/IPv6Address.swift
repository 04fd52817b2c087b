/// An IPv6 address as two 64-bit halves in host byte order (`high` holds the first eight octets),
/// so it compares and hashes as two machine words and a connection key stays a plain value.
public struct IPv6Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    @inlinable public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// From eight 16-bit groups, first group first.
    public init(groups: [UInt16]) {
        precondition(groups.count == 8, "an IPv6 address has eight groups")
        high = groups[0..<4].reduce(0) { $0 << 16 | UInt64($1) }
        low = groups[4..<8].reduce(0) { $0 << 16 | UInt64($1) }
    }

    /// Parses the text forms of RFC 4291 §2.2: eight groups of up to four hex digits, one `::`
    /// for a run of zero groups, and a dotted-quad IPv4 address in the last 32 bits. No zone
    /// (`%eth0`), no prefix length; nil for anything else.
    public init?(_ text: String) {
        guard !text.isEmpty, text.count <= 45, text.allSatisfy(\.isASCII) else { return nil }
        let halves = text.split(separator: "::", omittingEmptySubsequences: false).map(String.init)
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String, allowsIPv4: Bool) -> [UInt16]? {
            guard !part.isEmpty else { return [] }
            var result: [UInt16] = []
            let fields = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, field) in fields.enumerated() {
                if allowsIPv4, index == fields.count - 1, field.contains(".") {
                    guard let v4 = IPv4Address(String(field)) else { return nil }
                    result += [UInt16(v4.rawValue >> 16), UInt16(v4.rawValue & 0xFFFF)]
                } else {
                    // Hex digits only: the integer initialiser would also take a sign ("+1").
                    guard (1...4).contains(field.count), field.allSatisfy(\.isHexDigit), let group = UInt16(field, radix: 16) else { return nil }
                    result.append(group)
                }
            }
            return result
        }
        if halves.count == 1 {
            guard let all = groups(halves[0], allowsIPv4: true), all.count == 8 else { return nil }
            self.init(groups: all)
        } else {
            guard let head = groups(halves[0], allowsIPv4: false), let tail = groups(halves[1], allowsIPv4: true),
                  head.count + tail.count <= 7 else { return nil }
            self.init(groups: head + [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail)
        }
    }

    public var groups: [UInt16] {
        (0..<8).map { UInt16(truncatingIfNeeded: ($0 < 4 ? high : low) >> UInt64(48 - 16 * ($0 % 4))) }
    }

    /// The four 32-bit words, first word first (what the client bucket folds, see `ClientBucket`).
    @inlinable @inline(__always)
    public var words: (UInt32, UInt32, UInt32, UInt32) {
        (UInt32(truncatingIfNeeded: high >> 32), UInt32(truncatingIfNeeded: high),
         UInt32(truncatingIfNeeded: low >> 32), UInt32(truncatingIfNeeded: low))
    }

    public var octets: [UInt8] {
        (0..<16).map { UInt8(truncatingIfNeeded: ($0 < 8 ? high : low) >> UInt64(56 - 8 * ($0 % 8))) }
    }

    @inlinable public static var zero: IPv6Address { IPv6Address(high: 0, low: 0) }

    /// Multicast (ff00::/8).
    public var isMulticast: Bool { high >> 56 == 0xFF }

    /// The solicited-node multicast address a Neighbor Solicitation for this address is sent to
    /// (RFC 4291 §2.7.1): ff02::1:ff00:0/104 and the address's low 24 bits.
    public var solicitedNodeMulticast: IPv6Address {
        IPv6Address(high: 0xFF02_0000_0000_0000, low: 0x0000_0001_FF00_0000 | (low & 0xFF_FFFF))
    }

    /// The Ethernet group address an IPv6 multicast address maps to (RFC 2464 §7): 33:33 and its
    /// low 32 bits.
    public var multicastMAC: MACAddress { MACAddress(rawValue: 0x3333_0000_0000 | (low & 0xFFFF_FFFF)) }

    public static func < (lhs: IPv6Address, rhs: IPv6Address) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }

    /// The canonical text form (RFC 5952): lower-case hex, no leading zeros, the longest run of
    /// two or more zero groups (the first of equal runs) written `::`.
    public var description: String {
        let groups = self.groups
        var bestStart = -1, bestLength = 0, runStart = -1
        for index in 0...8 {
            if index < 8, groups[index] == 0 {
                if runStart < 0 { runStart = index }
            } else if runStart >= 0 {
                if index - runStart > bestLength { (bestStart, bestLength) = (runStart, index - runStart) }
                runStart = -1
            }
        }
        let hex = { (range: Range<Int>) in groups[range].map { String($0, radix: 16) }.joined(separator: ":") }
        guard bestLength >= 2 else { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }
}
