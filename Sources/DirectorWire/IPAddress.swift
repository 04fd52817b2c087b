/// An address of either family, for the control plane: services, real servers, health checks,
/// configuration and reports. The data path never holds one; it works on `IPv4Address` or
/// `IPv6Address` directly, chosen by the parser.
public enum IPAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    case v4(IPv4Address)
    case v6(IPv6Address)

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text; nil for anything else.
    public init?(_ text: String) {
        if let address = IPv4Address(text) {
            self = .v4(address)
        } else if let address = IPv6Address(text) {
            self = .v6(address)
        } else {
            return nil
        }
    }

    public var isIPv6: Bool {
        if case .v6 = self { true } else { false }
    }

    public var v4: IPv4Address? {
        if case .v4(let address) = self { address } else { nil }
    }

    public var v6: IPv6Address? {
        if case .v6(let address) = self { address } else { nil }
    }

    /// Whether a VIP or a real server may have it: not unspecified, loopback, multicast, broadcast,
    /// IPv6 link-local (which names no interface here) or IPv4-mapped (never on the wire,
    /// RFC 4291 §2.5.5.2).
    public var isPlausibleHostAddress: Bool {
        switch self {
        case .v4(let address):
            let first = address.rawValue >> 24
            return first != 0 && first != 127 && first < 224
        case .v6(let address):
            let high = address.high, low = address.low
            if address.isMulticast || high >> 54 == 0x3FA { return false }
            return !(high == 0 && (low <= 1 || low >> 32 == 0xFFFF))
        }
    }

    public var description: String {
        switch self {
        case .v4(let address): address.description
        case .v6(let address): address.description
        }
    }

    /// With its port, as URLs and `ipvsadm` write it: `198.18.0.1:80`, `[2001:db8::1]:80`.
    public func description(port: UInt16) -> String {
        switch self {
        case .v4(let address): "\(address):\(port)"
        case .v6(let address): "[\(address)]:\(port)"
        }
    }

    /// IPv4 addresses sort before IPv6 ones; within a family, by value.
    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        switch (lhs, rhs) {
        case let (.v4(left), .v4(right)): left < right
        case let (.v6(left), .v6(right)): left < right
        case (.v4, .v6): true
        case (.v6, .v4): false
        }
    }

    /// Whether `lhs` is the IPv4 address `rhs`.
    public static func == (lhs: IPAddress, rhs: IPv4Address) -> Bool { lhs == .v4(rhs) }
    public static func == (lhs: IPv4Address, rhs: IPAddress) -> Bool { .v4(lhs) == rhs }
    /// Whether `lhs` is the IPv6 address `rhs`.
    public static func == (lhs: IPAddress, rhs: IPv6Address) -> Bool { lhs == .v6(rhs) }
    public static func == (lhs: IPv6Address, rhs: IPAddress) -> Bool { .v6(lhs) == rhs }
}
