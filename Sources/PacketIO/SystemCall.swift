import CDirectorShim
#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which call, what it was doing, and errno.
public struct SystemCallError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let context: String
    public let errno: Int32

    public init(call: String, context: String, errno: Int32) {
        self.call = call
        self.context = context
        self.errno = errno
    }

    public var description: String {
        "\(call) failed while \(context): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Every system call of the packet I/O layer goes through here once: errno is read at once,
/// EINTR is retried, failures become `SystemCallError`s that say what was being done.
@usableFromInline
enum SystemCall {
    @discardableResult @usableFromInline
    static func check<T: BinaryInteger>(_ call: String, _ context: @autoclosure () -> String, _ body: () -> T) throws(SystemCallError) -> T {
        while true {
            let result = body()
            if result >= 0 { return result }
            let code = director_errno()
            if code == EINTR { continue }
            throw SystemCallError(call: call, context: context(), errno: code)
        }
    }

    /// setsockopt(2) with a value of any plain type.
    static func setOption<Value: BitwiseCopyable>(_ fd: Int32, level: Int32, name: Int32, _ value: Value, _ context: String) throws(SystemCallError) {
        var value = value
        try check("setsockopt", context) {
            setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Value>.size))
        }
    }

    /// bind(2) of a packet socket to an interface and protocol (0: transmit only, receive nothing).
    static func bindPacketSocket(_ fd: Int32, interfaceIndex: Int32, protocolNumber: UInt16, _ context: String) throws(SystemCallError) {
        var address = sockaddr_ll()
        address.sll_family = UInt16(AF_PACKET)
        address.sll_protocol = protocolNumber.bigEndian
        address.sll_ifindex = interfaceIndex
        try check("bind", context) {
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_ll>.size)) }
            }
        }
    }

    /// mmap(2) of a packet ring, shared with the kernel.
    static func mapRing(_ fd: Int32, byteCount: Int, _ context: String) throws(SystemCallError) -> UnsafeMutableRawPointer {
        guard let memory = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED | MAP_POPULATE, fd, 0),
              memory != MAP_FAILED else {
            // MAP_LOCKED can fail under a low RLIMIT_MEMLOCK; the ring works without it.
            guard let fallback = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), fallback != MAP_FAILED else {
                throw SystemCallError(call: "mmap", context: context, errno: director_errno())
            }
            return fallback
        }
        return memory
    }

    static func packetSocket(protocolNumber: UInt16, _ context: String) throws(SystemCallError) -> Int32 {
        try check("socket", context) { socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(protocolNumber.bigEndian)) }
    }
}

/// Protocol numbers of packet sockets (linux/if_ether.h).
public enum PacketProtocol {
    /// Every frame: a receive socket must use it, since an ETH_P_IP socket only sees frames after
    /// the netdev ingress hook, where the director hides its frames from the host stack.
    public static let all = UInt16(ETH_P_ALL)
    /// No frames: a transmit-only socket.
    public static let none: UInt16 = 0
}

extension SystemCall {
    /// Hands `body` each frame `socket` receives for `timeoutMilliseconds`, until `body` says
    /// it has all it waited for (returns true) or the time is up: the answers of an address
    /// resolution round (ARP, Neighbor Discovery).
    static func receiveFrames(on socket: Int32, forMilliseconds timeoutMilliseconds: Int, _ body: (RawSpan) -> Bool) {
        let deadline = director_monotonic_nanoseconds() + UInt64(timeoutMilliseconds) * 1_000_000
        var buffer = [UInt8](repeating: 0, count: 2048)
        while true {
            let now = director_monotonic_nanoseconds()
            guard now < deadline else { return }
            var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, Int32((deadline - now) / 1_000_000) + 1) > 0 else { return }
            let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            guard count > 0 else { continue }
            if buffer.withUnsafeBytes({ body(UnsafeRawBufferPointer(rebasing: $0[0..<count]).bytes) }) { return }
        }
    }
}
