import CDirectorShim
import DirectorWire
#if canImport(Glibc)
import Glibc
#endif

/// A UDP socket of the pair (the sync channel's, or the liveness channel's), bound to this
/// dispatcher's crossover address and connected to the peer's: the kernel itself then drops
/// datagrams from any other source. Bound without SO_REUSEADDR, so no other process can bind the
/// same port and take the peer's datagrams, and to the crossover device (SO_BINDTODEVICE), so a
/// datagram that arrives on another interface with the peer's address never reaches it. Non-blocking; large buffers so a snapshot burst is
/// not lost to a full queue; marked as network control (DSCP CS6) so heartbeats go ahead of bulk
/// traffic if the crossover link is shared.
public struct SyncSocket: ~Copyable {
    public let descriptor: Int32
    private let peer: sockaddr_in

    public init(local: IPv4Address, peer: IPv4Address, port: UInt16, device: String) throws(SystemCallError) {
        let context = "opening the sync socket on \(local):\(port) (\(device))"
        let fd = try SystemCall.check("socket", context) { socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do {
            try SystemCall.check("setsockopt(SO_BINDTODEVICE)", context) {
                setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, device, socklen_t(device.utf8.count))
            }
            try SystemCall.setOption(fd, level: SOL_SOCKET, name: SO_RCVBUFFORCE, Int32(8 << 20), context)
            try SystemCall.setOption(fd, level: SOL_SOCKET, name: SO_SNDBUFFORCE, Int32(8 << 20), context)
            try SystemCall.setOption(fd, level: Int32(IPPROTO_IP), name: IP_TOS, Int32(0xC0), context)
            try SystemCall.setOption(fd, level: SOL_SOCKET, name: SO_PRIORITY, Int32(6), context)
            var address = sockaddr_in(local, port)
            try SystemCall.check("bind", context) {
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
            }
            var destination = sockaddr_in(peer, port)
            try SystemCall.check("connect", context + " (to the peer at \(peer):\(port))") {
                withUnsafePointer(to: &destination) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
            }
        } catch {
            close(fd)
            throw error
        }
        descriptor = fd
        self.peer = sockaddr_in(peer, port)
    }

    deinit { close(descriptor) }


    /// Sends one datagram to the peer. False if the kernel refused it (link down, queue full).
    ///
    /// While the peer's port is unreachable (a killed peer whose host still answers), each
    /// datagram brings back an ICMP error that a connected UDP socket reports on the next call,
    /// which then sends nothing. That error belongs to the earlier datagram: it is taken and this
    /// one sent again, so a dead peer does not halve the heartbeats (and with them the XDP lease).
    public func send(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { buffer in
            for _ in 0..<2 {
                if Glibc.send(descriptor, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT)) == buffer.count { return true }
                if errno != ECONNREFUSED { return false }
            }
            return false
        }
    }

    public enum Arrival {
        case datagram([UInt8])
        /// From an address or port other than the peer's sync socket.
        case foreign
        case none
    }

    /// The next waiting datagram, if any. A pending error (ECONNREFUSED after the peer's port was
    /// unreachable) is read and dropped: the next call goes on with the queue.
    public func receive(into buffer: inout [UInt8]) -> Arrival {
        var source = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        var count = -1
        for _ in 0..<2 {
            count = buffer.withUnsafeMutableBytes { bytes in
                withUnsafeMutablePointer(to: &source) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        recvfrom(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT), $0, &length)
                    }
                }
            }
            if count >= 0 || director_errno() != ECONNREFUSED { break }
        }
        guard count >= 0 else { return .none }
        guard source.sin_addr.s_addr == peer.sin_addr.s_addr, source.sin_port == peer.sin_port else { return .foreign }
        return .datagram(Array(buffer[0..<count]))
    }

    /// Waits until a datagram is waiting or `timeoutNanoseconds` passed.
    public func wait(timeoutNanoseconds: UInt64) {
        _ = director_wait_readable(descriptor, timeoutNanoseconds)
    }
}

extension sockaddr_in {
    /// An IPv4 socket address, in network byte order.
    init(_ address: IPv4Address, _ port: UInt16) {
        self.init()
        sin_family = sa_family_t(AF_INET)
        sin_port = port.bigEndian
        sin_addr.s_addr = address.rawValue.bigEndian
    }
}
