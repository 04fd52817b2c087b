import CDirectorShim
import DirectorWire
#if canImport(Glibc)
import Glibc
#endif

/// What the director needs to know about a network interface, read once at start.
public struct NetworkInterface: Sendable, CustomStringConvertible {
    public let name: String
    public let index: Int32
    public let mac: MACAddress
    /// The interface's first IPv4 address, if it has one (ARP requests for real servers use it).
    public let ipv4Address: IPv4Address?

    /// Looks the interface up by name (if_nametoindex, SIOCGIFHWADDR, SIOCGIFADDR).
    public init(named name: String) throws(SystemCallError) {
        guard name.utf8.count < Int(IFNAMSIZ) else {
            throw SystemCallError(call: "if_nametoindex", context: "looking up interface \(name) (name too long)", errno: ENAMETOOLONG)
        }
        let index = if_nametoindex(name)
        guard index != 0 else {
            throw SystemCallError(call: "if_nametoindex", context: "looking up interface \(name)", errno: director_errno())
        }
        self.name = name
        self.index = Int32(index)
        let fd = try SystemCall.check("socket", "querying interface \(name)") { socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        defer { close(fd) }
        var request = NetworkInterface.request(for: name)
        try SystemCall.check("ioctl(SIOCGIFHWADDR)", "reading the MAC address of \(name)") { ioctl(fd, UInt(SIOCGIFHWADDR), &request) }
        mac = withUnsafeBytes(of: request.ifr_ifru.ifru_hwaddr.sa_data) { bytes in
            MACAddress(rawValue: bytes.prefix(6).reduce(0) { $0 << 8 | UInt64($1) })
        }
        request = NetworkInterface.request(for: name)
        request.ifr_ifru.ifru_addr.sa_family = sa_family_t(AF_INET)
        if ioctl(fd, UInt(SIOCGIFADDR), &request) == 0 {
            ipv4Address = withUnsafeBytes(of: request.ifr_ifru.ifru_addr) { bytes in
                IPv4Address(rawValue: UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
            }
        } else {
            ipv4Address = nil
        }
    }

    /// The name of the interface that holds `address` (getifaddrs), or nil if none does: the
    /// crossover link is configured by its addresses, and its sockets are bound to its device.
    public static func name(holding address: IPv4Address) -> String? {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return nil }
        defer { freeifaddrs(list) }
        var cursor = list
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let socketAddress = entry.pointee.ifa_addr, socketAddress.pointee.sa_family == sa_family_t(AF_INET) else { continue }
            let held = socketAddress.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
            if held == address.rawValue, let name = entry.pointee.ifa_name { return String(cString: name) }
        }
        return nil
    }

    /// The link-local IPv6 address (fe80::/10) of the interface `name` now (getifaddrs), if it
    /// has one: Neighbor Solicitations for real servers are sent from it.
    public static func ipv6LinkLocalAddress(of name: String) -> IPv6Address? {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return nil }
        defer { freeifaddrs(list) }
        var cursor = list
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let socketAddress = entry.pointee.ifa_addr, socketAddress.pointee.sa_family == sa_family_t(AF_INET6),
                  let entryName = entry.pointee.ifa_name, String(cString: entryName) == name else { continue }
            let address = socketAddress.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                withUnsafeBytes(of: pointer.pointee.sin6_addr) { bytes in
                    IPv6Address(high: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                                low: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
                }
            }
            if address.high >> 54 == 0x3FA { return address }
        }
        return nil
    }

    /// Whether the interface is up and has its carrier now (SIOCGIFFLAGS: IFF_UP and
    /// IFF_RUNNING), asked through `probe`, any datagram socket of the interface's namespace.
    /// False too when it cannot be read (the interface is gone).
    public func isRunning(probe: Int32) -> Bool {
        var request = NetworkInterface.request(for: name)
        guard ioctl(probe, UInt(SIOCGIFFLAGS), &request) == 0 else { return false }
        let flags = Int32(request.ifr_ifru.ifru_flags)
        return flags & Int32(IFF_UP) != 0 && flags & Int32(IFF_RUNNING) != 0
    }

    private static func request(for name: String) -> ifreq {
        var request = ifreq()
        withUnsafeMutableBytes(of: &request.ifr_ifrn.ifrn_name) { buffer in
            for (offset, byte) in name.utf8.enumerated() { buffer[offset] = byte }
        }
        return request
    }

    public var description: String { "\(name) (index \(index), \(mac)\(ipv4Address.map { ", \($0)" } ?? ""))" }
}
