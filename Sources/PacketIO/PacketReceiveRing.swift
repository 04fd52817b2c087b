import CDirectorShim
import DirectorCore
#if canImport(Glibc)
import Glibc
#endif

/// Geometry of a TPACKET_V3 receive ring.
public struct ReceiveRingGeometry: Sendable {
    public var blockSize: UInt32 = 1 << 18          // 256 KiB: ~180 full-size frames a block
    public var blockCount: UInt32 = 32              // 8 MiB per worker
    public var frameSize: UInt32 = 2048
    /// A block is handed to user space when full or after this many milliseconds, whichever is
    /// first: it bounds the latency a quiet link adds.
    public var retireTimeoutMilliseconds: UInt32 = 1
    public init() {}
}

/// One worker's TPACKET_V3 receive ring on the front interface, a member of the director's
/// PACKET_FANOUT group. The ring memory is shared with the kernel and owned by this value: raw
/// pointers never leave it; frames are lent out as `MutableRawSpan`s for the length of a call.
///
/// Setup follows the kernel's required order: version → ring → mmap → bind → join fan-out.
public struct PacketReceiveRing: ~Copyable {
    private let mapping: PacketSocketMapping
    private let ring: UnsafeMutableRawPointer
    private let geometry: ReceiveRingGeometry
    private var currentBlock: UInt32 = 0

    public var socket: Int32 { mapping.socket }

    public init(interface: NetworkInterface, geometry: ReceiveRingGeometry = ReceiveRingGeometry(),
                fanoutGroup: UInt16, fanoutProgram: [sock_filter]?, ownership: BucketOwnership? = nil) throws(SystemCallError) {
        let context = "setting up a receive ring on \(interface.name)"
        var mapping = try PacketSocketMapping(protocolNumber: PacketProtocol.all, context)
        // The filter goes on before bind: no frame of another dispatcher's bucket ever gets in.
        if let ownership { try OwnershipFilter.attach(ownership, to: mapping.socket) }
        try mapping.setOption(level: SOL_PACKET, name: PACKET_VERSION, Int32(TPACKET_V3.rawValue), context)
        var request = tpacket_req3()
        request.tp_block_size = geometry.blockSize
        request.tp_block_nr = geometry.blockCount
        request.tp_frame_size = geometry.frameSize
        request.tp_frame_nr = geometry.blockSize / geometry.frameSize * geometry.blockCount
        request.tp_retire_blk_tov = geometry.retireTimeoutMilliseconds
        try mapping.setOption(level: SOL_PACKET, name: PACKET_RX_RING, request, context)
        let memory = try mapping.map(byteCount: Int(geometry.blockSize) * Int(geometry.blockCount), context)
        // Frames this host sends (our own transmissions) are not input.
        try mapping.setOption(level: SOL_PACKET, name: PACKET_IGNORE_OUTGOING, Int32(1), context)
        try mapping.bind(interfaceIndex: interface.index, protocolNumber: PacketProtocol.all, context)
        if let fanoutProgram {
            let mode = UInt32(PACKET_FANOUT_CBPF)
            try mapping.setOption(level: SOL_PACKET, name: PACKET_FANOUT, UInt32(fanoutGroup) | mode << 16,
                                  context + " (joining fan-out group \(fanoutGroup))")
            try fanoutProgram.withUnsafeBufferPointer { (instructions) throws(SystemCallError) in
                let program = sock_fprog(len: UInt16(instructions.count), filter: UnsafeMutablePointer(mutating: instructions.baseAddress))
                try mapping.setOption(level: SOL_PACKET, name: PACKET_FANOUT_DATA, program, context + " (fan-out program)")
            }
        }
        // Stored properties only once nothing can throw any more (a ~Copyable value is either
        // whole or not at all).
        self.mapping = mapping
        ring = memory
        self.geometry = geometry
    }

    @inline(__always)
    private func block(_ index: UInt32) -> UnsafeMutablePointer<tpacket_block_desc> {
        (ring + Int(index) * Int(geometry.blockSize)).assumingMemoryBound(to: tpacket_block_desc.self)
    }

    /// Waits up to `timeoutMilliseconds` for the next block to belong to user space.
    public func waitForBlock(timeoutMilliseconds: Int32) -> Bool {
        var ignored = false
        return waitForBlock(timeoutMilliseconds: timeoutMilliseconds, orReadable: -1, readable: &ignored)
    }

    /// Waits up to `timeoutMilliseconds` for the next block to belong to user space, or for
    /// descriptor `other` to become readable (the worker's wake-up call); `readable` tells
    /// whether it did, so the caller reads it only then.
    public func waitForBlock(timeoutMilliseconds: Int32, orReadable other: Int32, readable: inout Bool) -> Bool {
        readable = false
        if director_rx_block_status(block(currentBlock)) & UInt32(TP_STATUS_USER) != 0 { return true }
        var descriptors = (pollfd(fd: socket, events: Int16(POLLIN | POLLERR), revents: 0),
                           pollfd(fd: other, events: Int16(POLLIN), revents: 0))
        _ = withUnsafeMutableBytes(of: &descriptors) { buffer in
            poll(buffer.baseAddress!.assumingMemoryBound(to: pollfd.self), other >= 0 ? 2 : 1, timeoutMilliseconds)
        }
        readable = other >= 0 && descriptors.1.revents & Int16(POLLIN) != 0
        return director_rx_block_status(block(currentBlock)) & UInt32(TP_STATUS_USER) != 0
    }

    /// Walks the frames of the current block in place, if the kernel has handed it over, then
    /// returns the block to the kernel. `body` gets each frame and whether its transport
    /// checksum is still partial (TP_STATUS_CSUMNOTREADY: the sender left it to offload);
    /// `lookahead` gets the frame after it first, to prefetch what that one will need.
    /// Returns the number of frames walked.
    @inline(__always)
    public mutating func drainBlock(lookahead: (RawSpan) -> Void = { _ in },
                                    _ body: (inout MutableRawSpan, _ checksumPending: Bool) -> Void) -> Int {
        walkBlock(lookahead: lookahead) { span, header in body(&span, header.pointee.tp_status & UInt32(TP_STATUS_CSUMNOTREADY) != 0) }
    }

    /// The same walk for a receiver that wants to know when each frame arrived: the kernel's
    /// receive time stamp (CLOCK_REALTIME nanoseconds).
    @inline(__always)
    public mutating func drainTimestampedBlock(_ body: (RawSpan, _ arrivalNanoseconds: UInt64) -> Void) -> Int {
        walkBlock { span, header in
            body(span.bytes, UInt64(header.pointee.tp_sec) * 1_000_000_000 + UInt64(header.pointee.tp_nsec))
        }
    }

    @inline(__always)
    private mutating func walkBlock(lookahead: (RawSpan) -> Void = { _ in },
                                    _ body: (inout MutableRawSpan, UnsafeMutablePointer<tpacket3_hdr>) -> Void) -> Int {
        let descriptor = block(currentBlock)
        guard director_rx_block_status(descriptor) & UInt32(TP_STATUS_USER) != 0 else { return 0 }
        let count = Int(director_rx_block_packet_count(descriptor))
        let blockEnd = UnsafeMutableRawPointer(descriptor) + Int(geometry.blockSize)
        var header = (UnsafeMutableRawPointer(descriptor) + Int(director_rx_block_first_offset(descriptor)))
        for index in 0..<count {
            let frame = header.assumingMemoryBound(to: tpacket3_hdr.self)
            let nextOffset = Int(frame.pointee.tp_next_offset)
            if index + 1 < count && nextOffset != 0, let following = bytes(at: header + nextOffset, before: blockEnd) {
                lookahead(UnsafeRawBufferPointer(following).bytes)
            }
            if let bytes = bytes(at: header, before: blockEnd) {
                var span = bytes.mutableBytes
                body(&span, frame)
            }
            if nextOffset == 0 { break }
            header += nextOffset
        }
        director_rx_block_release(descriptor)
        currentBlock = (currentBlock + 1) % geometry.blockCount
        return count
    }

    /// The frame whose tpacket3_hdr is at `header`, if it lies inside its block (the kernel
    /// guarantees it; it is checked anyway).
    @inline(__always)
    private func bytes(at header: UnsafeMutableRawPointer, before blockEnd: UnsafeMutableRawPointer) -> UnsafeMutableRawBufferPointer? {
        let frame = header.assumingMemoryBound(to: tpacket3_hdr.self)
        let start = header + Int(frame.pointee.tp_mac)
        let length = Int(frame.pointee.tp_snaplen)
        guard start + length <= blockEnd else { return nil }
        return UnsafeMutableRawBufferPointer(start: start, count: length)
    }

    /// Sends one frame out of this socket's interface with an ordinary send(2): for the rare
    /// frames that go back out of the front (ARP replies), which do not justify a second TX ring.
    /// Static, taking the socket, so a worker can send while it is walking this ring's block.
    public static func send(_ bytes: RawSpan, on socket: Int32) -> Bool {
        bytes.withUnsafeBytes { buffer in Glibc.send(socket, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT)) == buffer.count }
    }

    /// The kernel's count of frames it dropped because this ring was full (PACKET_STATISTICS;
    /// reading resets the kernel's counters).
    public func takeDropCount() -> UInt64 {
        var stats = tpacket_stats_v3()
        var length = socklen_t(MemoryLayout<tpacket_stats_v3>.size)
        guard getsockopt(socket, SOL_PACKET, PACKET_STATISTICS, &stats, &length) == 0 else { return 0 }
        return UInt64(stats.tp_drops)
    }
}
