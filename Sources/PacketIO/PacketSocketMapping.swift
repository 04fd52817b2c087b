import CDirectorShim
#if canImport(Glibc)
import Glibc
#endif

/// A packet socket and the ring memory it shares with the kernel, owned together: `deinit`
/// unmaps the ring and closes the socket. A ring under construction holds one of these, so a
/// setup step that throws leaves nothing open behind it.
struct PacketSocketMapping: ~Copyable {
    let socket: Int32
    private(set) var memory: UnsafeMutableRawPointer?
    private(set) var byteCount = 0

    /// socket(AF_PACKET, SOCK_RAW, protocol).
    init(protocolNumber: UInt16, _ context: String) throws(SystemCallError) {
        socket = try SystemCall.packetSocket(protocolNumber: protocolNumber, context)
    }

    func setOption<Value: BitwiseCopyable>(level: Int32, name: Int32, _ value: Value, _ context: String) throws(SystemCallError) {
        try SystemCall.setOption(socket, level: level, name: name, value, context)
    }

    func bind(interfaceIndex: Int32, protocolNumber: UInt16, _ context: String) throws(SystemCallError) {
        try SystemCall.bindPacketSocket(socket, interfaceIndex: interfaceIndex, protocolNumber: protocolNumber, context)
    }

    /// mmap(2) of the ring the kernel set up for this socket (PACKET_RX_RING / PACKET_TX_RING).
    mutating func map(byteCount: Int, _ context: String) throws(SystemCallError) -> UnsafeMutableRawPointer {
        let memory = try SystemCall.mapRing(socket, byteCount: byteCount, context)
        self.memory = memory
        self.byteCount = byteCount
        return memory
    }

    deinit {
        if let memory { munmap(memory, byteCount) }
        close(socket)
    }
}
