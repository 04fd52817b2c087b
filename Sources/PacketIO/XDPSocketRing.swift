import CDirectorShim
import DirectorWire
#if canImport(Glibc)
import Glibc
#endif

/// The receive side of an AF_XDP socket, in copy mode (veth's only mode, and any driver's without
/// zero-copy): the other receive ring beside TPACKET_V3 that `director-bench rings` measures.
///
/// The UMEM is memory of fixed-size frames registered with the kernel. This side lends the kernel
/// empty frames through the fill ring; the XDP program on the interface (`SocketRedirectProgram`)
/// redirects a frame to the socket, the kernel copies it into one of those frames and hands it
/// back through the receive ring. No socket buffer is made for it.
///
/// Every frame of the UMEM is in exactly one place: the fill ring, the kernel's hands, the receive
/// ring, or a `drainBurst` call. The fill ring has room for all of them, so a frame read is handed
/// back at once, in the same burst. Setup follows the kernel's order: UMEM → ring sizes → mmap →
/// fill → bind. The completion ring (transmit only) must exist all the same.
public struct XDPSocketRing: ~Copyable {
    public let socket: Int32
    public let interface: NetworkInterface
    public let queue: UInt32
    /// Bytes per UMEM frame: 2048 or 4096 (the sizes the kernel takes in aligned mode everywhere).
    public let frameSize: Int
    private let umem: UnsafeMutableRawPointer
    private let umemByteCount: Int
    private let fill: XDPRingMapping
    private let completion: XDPRingMapping
    private let receive: XDPRingMapping
    /// This side's cached copies of the indexes it alone moves.
    private var receiveConsumer: UInt32 = 0
    private var fillProducer: UInt32

    /// Binds a socket to `queue` of `interface` with `frameCount` frames of `frameSize` bytes (the
    /// fill ring as large, the receive ring half that: both powers of two).
    public init(interface: NetworkInterface, queue: UInt32 = 0, frameCount: Int = 4096, frameSize: Int = 2048) throws(SystemCallError) {
        precondition(frameCount >= 2 && frameCount.nonzeroBitCount == 1 && (frameSize == 2048 || frameSize == 4096))
        let context = "setting up an AF_XDP socket on \(interface.name) queue \(queue)"
        // Everything into locals first: a noncopyable value is either wholly made or not at all.
        let fd = try SystemCall.check("socket", context) { Glibc.socket(AF_XDP, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        var built: [(UnsafeMutableRawPointer, Int)] = []
        var finished = false
        defer {
            if !finished {
                for (address, length) in built { munmap(address, length) }
                close(fd)
            }
        }

        let umemByteCount = frameCount * frameSize
        guard let umem = mmap(nil, umemByteCount, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0),
              umem != MAP_FAILED else {
            throw SystemCallError(call: "mmap", context: context + " (UMEM)", errno: director_errno())
        }
        built.append((umem, umemByteCount))
        var registration = xdp_umem_reg()
        registration.addr = UInt64(UInt(bitPattern: umem))
        registration.len = UInt64(umemByteCount)
        registration.chunk_size = UInt32(frameSize)
        try SystemCall.setOption(fd, level: SOL_XDP, name: XDP_UMEM_REG, registration, context + " (UMEM)")

        let receiveSize = frameCount / 2
        try SystemCall.setOption(fd, level: SOL_XDP, name: XDP_UMEM_FILL_RING, Int32(frameCount), context + " (fill ring)")
        try SystemCall.setOption(fd, level: SOL_XDP, name: XDP_UMEM_COMPLETION_RING, Int32(receiveSize), context + " (completion ring)")
        try SystemCall.setOption(fd, level: SOL_XDP, name: XDP_RX_RING, Int32(receiveSize), context + " (receive ring)")
        var offsets = xdp_mmap_offsets()
        var length = socklen_t(MemoryLayout<xdp_mmap_offsets>.size)
        try SystemCall.check("getsockopt", context + " (ring offsets)") { getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, &offsets, &length) }

        let fill = try XDPRingMapping(fd, offsets.fr, size: frameCount, descriptorSize: MemoryLayout<UInt64>.size,
                                      pageOffset: Int(XDP_UMEM_PGOFF_FILL_RING), context + " (fill ring)")
        built.append((fill.base, fill.length))
        let completion = try XDPRingMapping(fd, offsets.cr, size: receiveSize, descriptorSize: MemoryLayout<UInt64>.size,
                                            pageOffset: Int(XDP_UMEM_PGOFF_COMPLETION_RING), context + " (completion ring)")
        built.append((completion.base, completion.length))
        let receive = try XDPRingMapping(fd, offsets.rx, size: receiveSize, descriptorSize: MemoryLayout<xdp_desc>.size,
                                         pageOffset: Int(XDP_PGOFF_RX_RING), context + " (receive ring)")
        built.append((receive.base, receive.length))

        // Every frame to the kernel before the first can arrive.
        for index in 0..<frameCount {
            fill.descriptors.storeBytes(of: UInt64(index * frameSize), toByteOffset: index * MemoryLayout<UInt64>.size, as: UInt64.self)
        }
        director_store_release_u32(fill.producer, UInt32(frameCount))

        var address = sockaddr_xdp()
        address.sxdp_family = UInt16(AF_XDP)
        address.sxdp_flags = UInt16(XDP_COPY)
        address.sxdp_ifindex = UInt32(interface.index)
        address.sxdp_queue_id = queue
        try SystemCall.check("bind", context) {
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_xdp>.size)) }
            }
        }
        finished = true
        socket = fd
        self.interface = interface
        self.queue = queue
        self.frameSize = frameSize
        self.umem = umem
        self.umemByteCount = umemByteCount
        self.fill = fill
        self.completion = completion
        self.receive = receive
        fillProducer = UInt32(frameCount)
    }

    deinit {
        for mapping in [fill, completion, receive] { munmap(mapping.base, mapping.length) }
        munmap(umem, umemByteCount)
        close(socket)
    }

    /// Whether the kernel has handed over frames not read yet.
    public var hasFrames: Bool { director_load_acquire_u32(receive.producer) != receiveConsumer }

    /// Waits up to `timeoutMilliseconds` for frames; true if some are there.
    public func waitForFrames(timeoutMilliseconds: Int32) -> Bool {
        if hasFrames { return true }
        var request = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        return poll(&request, 1, timeoutMilliseconds) > 0 && hasFrames
    }

    /// Walks up to `limit` frames the kernel has handed over, in place, and hands each frame back
    /// to the kernel through the fill ring. Returns the number of frames walked.
    @inline(__always)
    public mutating func drainBurst(limit: Int = 256, _ body: (RawSpan) -> Void) -> Int {
        let available = Int(director_load_acquire_u32(receive.producer) &- receiveConsumer)
        let count = min(available, limit)
        guard count > 0 else { return 0 }
        let chunkMask = ~UInt64(frameSize - 1)
        for step in 0..<UInt32(count) {
            let slot = Int((receiveConsumer &+ step) & receive.mask)
            let descriptor = receive.descriptors.load(fromByteOffset: slot * MemoryLayout<xdp_desc>.size, as: xdp_desc.self)
            body(UnsafeRawBufferPointer(start: umem + Int(descriptor.addr), count: Int(descriptor.len)).bytes)
            let fillSlot = Int(fillProducer & fill.mask)
            fill.descriptors.storeBytes(of: descriptor.addr & chunkMask, toByteOffset: fillSlot * MemoryLayout<UInt64>.size, as: UInt64.self)
            fillProducer &+= 1
        }
        receiveConsumer &+= UInt32(count)
        director_store_release_u32(receive.consumer, receiveConsumer)
        director_store_release_u32(fill.producer, fillProducer)
        return count
    }

    /// What the kernel could not deliver to the socket, since it was bound.
    public struct Drops: Sendable, Equatable, Codable {
        /// The receive ring was full: this side did not read fast enough.
        public var receiveRingFull: UInt64
        /// No empty frame was on the fill ring.
        public var fillRingEmpty: UInt64
        /// Anything else (a frame longer than a UMEM frame, say).
        public var other: UInt64

        public init(receiveRingFull: UInt64, fillRingEmpty: UInt64, other: UInt64) {
            self.receiveRingFull = receiveRingFull
            self.fillRingEmpty = fillRingEmpty
            self.other = other
        }

        public var total: UInt64 { receiveRingFull + fillRingEmpty + other }
    }

    public func drops() throws(SystemCallError) -> Drops {
        var statistics = xdp_statistics()
        var length = socklen_t(MemoryLayout<xdp_statistics>.size)
        try SystemCall.check("getsockopt", "reading the AF_XDP socket's statistics on \(interface.name)") {
            getsockopt(socket, SOL_XDP, XDP_STATISTICS, &statistics, &length)
        }
        // The kernel counts a frame that found the fill ring empty twice, as empty and as
        // dropped; `other` is what `rx_dropped` counts beyond that.
        let fillRingEmpty = statistics.rx_fill_ring_empty_descs
        return Drops(receiveRingFull: statistics.rx_ring_full, fillRingEmpty: fillRingEmpty,
                     other: statistics.rx_dropped - min(statistics.rx_dropped, fillRingEmpty))
    }
}

/// One of an AF_XDP socket's rings, mapped: its producer and consumer words and its descriptors.
struct XDPRingMapping {
    let base: UnsafeMutableRawPointer
    let length: Int
    let producer: UnsafeMutablePointer<UInt32>
    let consumer: UnsafeMutablePointer<UInt32>
    let descriptors: UnsafeMutableRawPointer
    let mask: UInt32

    init(_ socket: Int32, _ offsets: xdp_ring_offset, size: Int, descriptorSize: Int, pageOffset: Int, _ context: String) throws(SystemCallError) {
        length = Int(offsets.desc) + size * descriptorSize
        guard let mapped = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, socket, pageOffset), mapped != MAP_FAILED else {
            throw SystemCallError(call: "mmap", context: context, errno: director_errno())
        }
        base = mapped
        producer = (mapped + Int(offsets.producer)).assumingMemoryBound(to: UInt32.self)
        consumer = (mapped + Int(offsets.consumer)).assumingMemoryBound(to: UInt32.self)
        descriptors = mapped + Int(offsets.desc)
        mask = UInt32(size - 1)
    }
}
