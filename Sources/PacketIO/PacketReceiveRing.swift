import CDirectorShim
import DirectorCore
import DirectorWire
#if canImport(Glibc)
import Glibc
#endif

/// One worker's receive ring on the front interface (TPACKET_V3 blocks or TPACKET_V2 frames,
/// see `ReceiveRingGeometry`), a member of the director's PACKET_FANOUT group. The ring memory
/// is shared with the kernel and owned by this value: raw pointers never leave it; frames are
/// lent out as `MutableRawSpan`s for the length of a call.
///
/// Setup follows the kernel's required order: version → ring → mmap → bind → join fan-out.
public struct PacketReceiveRing: ~Copyable {
    private let mapping: PacketSocketMapping
    private let ring: UnsafeMutableRawPointer
    public let geometry: ReceiveRingGeometry
    /// TPACKET_V3: the block to read next. TPACKET_V2: the frame slot to read next.
    private var cursor: UInt32 = 0

    /// The most TPACKET_V2 frames one drain walks: the worker flushes its transmit ring and does
    /// its housekeeping between bursts, as it does between TPACKET_V3 blocks.
    static let framesPerBurst = 256

    public var socket: Int32 { mapping.socket }

    public init(interface: NetworkInterface, geometry: ReceiveRingGeometry = .standard,
                fanoutGroup: UInt16, fanoutProgram: [sock_filter]?, ownership: BucketOwnership? = nil,
                filter: [sock_filter]? = nil) throws(SystemCallError) {
        let context = "setting up a \(geometry.format.rawValue) receive ring on \(interface.name)"
        var mapping = try PacketSocketMapping(protocolNumber: PacketProtocol.all, context)
        // The filter goes on before bind: no frame of another dispatcher's bucket ever gets in.
        if let ownership { try OwnershipFilter.attach(ownership, to: mapping.socket) }
        if let filter {
            try filter.withUnsafeBufferPointer { (buffer) throws(SystemCallError) in
                let program = sock_fprog(len: UInt16(buffer.count), filter: UnsafeMutablePointer(mutating: buffer.baseAddress))
                try mapping.setOption(level: SOL_SOCKET, name: SO_ATTACH_FILTER, program, context + " (filter)")
            }
        }
        switch geometry.format {
        case .tpacketV3:
            try mapping.setOption(level: SOL_PACKET, name: PACKET_VERSION, Int32(TPACKET_V3.rawValue), context)
            var request = tpacket_req3()
            request.tp_block_size = geometry.blockSize
            request.tp_block_nr = geometry.blockCount
            request.tp_frame_size = geometry.frameSize
            request.tp_frame_nr = geometry.frameCount
            request.tp_retire_blk_tov = geometry.retireTimeoutMilliseconds
            try mapping.setOption(level: SOL_PACKET, name: PACKET_RX_RING, request, context)
        case .tpacketV2:
            try mapping.setOption(level: SOL_PACKET, name: PACKET_VERSION, Int32(TPACKET_V2.rawValue), context)
            var request = tpacket_req()
            request.tp_block_size = geometry.blockSize
            request.tp_block_nr = geometry.blockCount
            request.tp_frame_size = geometry.frameSize
            request.tp_frame_nr = geometry.frameCount
            try mapping.setOption(level: SOL_PACKET, name: PACKET_RX_RING, request, context)
        }
        let memory = try mapping.map(byteCount: geometry.byteCount, context)
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

    // MARK: - Ring memory

    @inline(__always)
    private func block(_ index: UInt32) -> UnsafeMutablePointer<tpacket_block_desc> {
        (ring + Int(index) * Int(geometry.blockSize)).assumingMemoryBound(to: tpacket_block_desc.self)
    }

    /// TPACKET_V2: frame slot `index`; slots never straddle blocks.
    @inline(__always)
    private func frameSlot(_ index: UInt32) -> UnsafeMutablePointer<tpacket2_hdr> {
        let perBlock = geometry.framesPerBlock
        let offset = Int(index / perBlock) * Int(geometry.blockSize) + Int(index % perBlock) * Int(geometry.frameSize)
        return (ring + offset).assumingMemoryBound(to: tpacket2_hdr.self)
    }

    /// Whether the next block (TPACKET_V3) or frame (TPACKET_V2) belongs to user space.
    @inline(__always)
    private var nextIsReady: Bool {
        switch geometry.format {
        case .tpacketV3: director_rx_block_status(block(cursor)) & UInt32(TP_STATUS_USER) != 0
        case .tpacketV2: director_rx_frame_status(frameSlot(cursor)) & UInt32(TP_STATUS_USER) != 0
        }
    }

    // MARK: - Waiting

    /// The outcome of a wait.
    public enum Readiness: Equatable, Sendable {
        /// Frames are ready to drain.
        case ready
        /// The timeout passed (or only the other descriptor fired).
        case idle
        /// The socket reported an error, read and cleared here (ENETDOWN: the interface went
        /// down; the kernel re-attaches the socket when it comes back up).
        case failed(errno: Int32)
    }

    /// Waits up to `timeoutMilliseconds` for frames.
    public func waitForFrames(timeoutMilliseconds: Int32) -> Readiness {
        var ignored = false
        return waitForFrames(timeoutMilliseconds: timeoutMilliseconds, orReadable: -1, readable: &ignored)
    }

    /// Whether frames are ready to drain now (no system call).
    public var hasFrames: Bool { nextIsReady }

    /// Waits up to `timeoutMilliseconds` for frames, or for descriptor `other` to become
    /// readable (the worker's wake-up call); `readable` tells whether it did, so the caller reads
    /// it only then. `alsoWatching` is a further descriptor that ends the wait (a second ring's
    /// socket; the caller asks that ring itself). A pending socket error is read (which clears
    /// it), so a socket whose interface went down does not make every later poll return at once.
    public func waitForFrames(timeoutMilliseconds: Int32, orReadable other: Int32, readable: inout Bool,
                              alsoWatching extra: Int32 = -1) -> Readiness {
        readable = false
        if nextIsReady { return .ready }
        // Unused slots carry fd -1, which poll(2) skips.
        var descriptors = (pollfd(fd: socket, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: other, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: extra, events: Int16(POLLIN), revents: 0))
        _ = withUnsafeMutableBytes(of: &descriptors) { buffer in
            poll(buffer.baseAddress!.assumingMemoryBound(to: pollfd.self), 3, timeoutMilliseconds)
        }
        readable = other >= 0 && descriptors.1.revents & Int16(POLLIN) != 0
        // The other ring's socket error (its interface went down) is read here too, or every
        // later poll would return at once; that ring's frames resume when the interface is back.
        if extra >= 0 && descriptors.2.revents & Int16(POLLERR) != 0 {
            var code: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(extra, SOL_SOCKET, SO_ERROR, &code, &length)
        }
        if nextIsReady { return .ready }
        if descriptors.0.revents & Int16(POLLERR) != 0 {
            var code: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(socket, SOL_SOCKET, SO_ERROR, &code, &length)
            if code != 0 { return .failed(errno: code) }
        }
        return .idle
    }

    // MARK: - Draining

    /// What the ring's header says about a frame beside its bytes.
    public struct FrameMetadata {
        /// The transport checksum is still partial (TP_STATUS_CSUMNOTREADY: the sender left it
        /// to offload).
        public var checksumPending: Bool
        /// The 802.1Q tag the kernel moved out of the frame (TP_STATUS_VLAN_VALID), or `.none`.
        /// The kernel does so before any packet socket sees a tagged frame, so this is where a
        /// tag is, not in the bytes.
        public var vlanTag: VLANTag

        @inline(__always)
        init(status: UInt32, tci: UInt16, tpid: UInt16) {
            checksumPending = status & UInt32(TP_STATUS_CSUMNOTREADY) != 0
            guard status & UInt32(TP_STATUS_VLAN_VALID) != 0 else {
                vlanTag = .none
                return
            }
            let identifier = status & UInt32(TP_STATUS_VLAN_TPID_VALID) != 0 && tpid != 0 ? tpid : EtherType.vlan
            vlanTag = VLANTag(protocolIdentifier: identifier, controlInformation: tci)
        }
    }

    /// Walks the frames the kernel has handed over, in place, and hands them back: one block
    /// (TPACKET_V3) or up to `framesPerBurst` frames (TPACKET_V2). `body` gets each frame and
    /// what the ring's header says about it; `lookahead` gets the frame after it first, to
    /// prefetch what that one will need. Returns the number of frames walked.
    @inline(__always)
    public mutating func drainBurst(lookahead: (RawSpan) -> Void = { _ in },
                                    _ body: (inout MutableRawSpan, FrameMetadata) -> Void) -> Int {
        switch geometry.format {
        case .tpacketV3:
            return walkBlock(lookahead: lookahead) { span, header in
                body(&span, FrameMetadata(status: header.pointee.tp_status, tci: UInt16(truncatingIfNeeded: header.pointee.hv1.tp_vlan_tci),
                                          tpid: header.pointee.hv1.tp_vlan_tpid))
            }
        case .tpacketV2:
            return walkFrames(lookahead: lookahead) { span, header in
                body(&span, FrameMetadata(status: header.pointee.tp_status, tci: header.pointee.tp_vlan_tci, tpid: header.pointee.tp_vlan_tpid))
            }
        }
    }

    /// The same walk for a receiver that wants to know when each frame arrived: the kernel's
    /// receive time stamp (CLOCK_REALTIME nanoseconds).
    @inline(__always)
    public mutating func drainTimestampedBurst(_ body: (RawSpan, _ arrivalNanoseconds: UInt64) -> Void) -> Int {
        switch geometry.format {
        case .tpacketV3:
            return walkBlock { span, header in
                body(span.bytes, UInt64(header.pointee.tp_sec) * 1_000_000_000 + UInt64(header.pointee.tp_nsec))
            }
        case .tpacketV2:
            return walkFrames { span, header in
                body(span.bytes, UInt64(header.pointee.tp_sec) * 1_000_000_000 + UInt64(header.pointee.tp_nsec))
            }
        }
    }

    /// TPACKET_V3: the current block, if the kernel has retired it.
    @inline(__always)
    private mutating func walkBlock(lookahead: (RawSpan) -> Void = { _ in },
                                    _ body: (inout MutableRawSpan, UnsafeMutablePointer<tpacket3_hdr>) -> Void) -> Int {
        let descriptor = block(cursor)
        guard director_rx_block_status(descriptor) & UInt32(TP_STATUS_USER) != 0 else { return 0 }
        let count = Int(director_rx_block_packet_count(descriptor))
        let blockEnd = UnsafeMutableRawPointer(descriptor) + Int(geometry.blockSize)
        var header = (UnsafeMutableRawPointer(descriptor) + Int(director_rx_block_first_offset(descriptor)))
        for index in 0..<count {
            let frame = header.assumingMemoryBound(to: tpacket3_hdr.self)
            let nextOffset = Int(frame.pointee.tp_next_offset)
            if index + 1 < count && nextOffset != 0,
               let following = bytes(of: (header + nextOffset).assumingMemoryBound(to: tpacket3_hdr.self), before: blockEnd) {
                lookahead(UnsafeRawBufferPointer(following).bytes)
            }
            if let bytes = bytes(of: frame, before: blockEnd) {
                var span = bytes.mutableBytes
                body(&span, frame)
            }
            if nextOffset == 0 { break }
            header += nextOffset
        }
        director_rx_block_release(descriptor)
        cursor = (cursor + 1) % geometry.blockCount
        return count
    }

    /// TPACKET_V2: the frames ready from the cursor on, up to `framesPerBurst`, each handed back
    /// as soon as it is done.
    @inline(__always)
    private mutating func walkFrames(lookahead: (RawSpan) -> Void = { _ in },
                                     _ body: (inout MutableRawSpan, UnsafeMutablePointer<tpacket2_hdr>) -> Void) -> Int {
        let slots = geometry.frameCount
        var walked = 0
        var slot = frameSlot(cursor)
        while walked < PacketReceiveRing.framesPerBurst, director_rx_frame_status(slot) & UInt32(TP_STATUS_USER) != 0 {
            let nextIndex = cursor + 1 == slots ? 0 : cursor + 1
            let next = frameSlot(nextIndex)
            if director_rx_frame_status(next) & UInt32(TP_STATUS_USER) != 0, let following = bytes(of: next) {
                lookahead(UnsafeRawBufferPointer(following).bytes)
            }
            if let bytes = bytes(of: slot) {
                var span = bytes.mutableBytes
                body(&span, slot)
            }
            director_rx_frame_release(slot)
            cursor = nextIndex
            slot = next
            walked += 1
        }
        return walked
    }

    /// A TPACKET_V3 frame's bytes, if they lie inside its block (the kernel guarantees it; it is
    /// checked anyway).
    @inline(__always)
    private func bytes(of frame: UnsafeMutablePointer<tpacket3_hdr>, before blockEnd: UnsafeMutableRawPointer) -> UnsafeMutableRawBufferPointer? {
        let start = UnsafeMutableRawPointer(frame) + Int(frame.pointee.tp_mac)
        let length = Int(frame.pointee.tp_snaplen)
        guard start + length <= blockEnd else { return nil }
        return UnsafeMutableRawBufferPointer(start: start, count: length)
    }

    /// A TPACKET_V2 frame's bytes, if they lie inside its slot.
    @inline(__always)
    private func bytes(of slot: UnsafeMutablePointer<tpacket2_hdr>) -> UnsafeMutableRawBufferPointer? {
        let start = UnsafeMutableRawPointer(slot) + Int(slot.pointee.tp_mac)
        let length = Int(slot.pointee.tp_snaplen)
        guard start + length <= UnsafeMutableRawPointer(slot) + Int(geometry.frameSize) else { return nil }
        return UnsafeMutableRawBufferPointer(start: start, count: length)
    }

    // MARK: - Beside the frames

    /// Sends one frame out of this socket's interface with an ordinary send(2): for the rare
    /// frames that go back out of the front (ARP replies), which do not justify a second TX ring.
    /// Static, taking the socket, so a worker can send while it is walking this ring.
    public static func send(_ bytes: RawSpan, on socket: Int32, vlanTag: VLANTag = .none) -> Bool {
        guard vlanTag.isPresent, bytes.byteCount >= VLANTag.offset else {
            return bytes.withUnsafeBytes { buffer in Glibc.send(socket, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT)) == buffer.count }
        }
        // The tag goes back in: the frame answers one that came tagged (an ARP request).
        let length = bytes.byteCount + VLANTag.length
        return withUnsafeTemporaryAllocation(byteCount: length, alignment: 8) { tagged in
            bytes.withUnsafeBytes { VLANTag.insert(vlanTag, copying: $0, into: tagged.baseAddress!) }
            return Glibc.send(socket, tagged.baseAddress, length, Int32(MSG_DONTWAIT)) == length
        }
    }

    /// Makes the interface accept frames sent to `mac` as well as to its own address
    /// (PACKET_ADD_MEMBERSHIP, PACKET_MR_UNICAST): a shared gateway MAC on a NIC that filters
    /// by destination. The membership lasts as long as the socket.
    public func acceptFrames(to mac: MACAddress, on interface: NetworkInterface) throws(SystemCallError) {
        try PacketReceiveRing.addMembership(of: mac, to: socket, on: interface)
    }

    /// PACKET_ADD_MEMBERSHIP of `mac` for `socket`: PACKET_MR_MULTICAST for a group address (an
    /// IPv6 VIP's solicited-node group, which a NIC filtering multicast would otherwise drop),
    /// PACKET_MR_UNICAST for another. The membership lasts as long as the socket.
    public static func addMembership(of mac: MACAddress, to socket: Int32, on interface: NetworkInterface) throws(SystemCallError) {
        var request = packet_mreq()
        request.mr_ifindex = interface.index
        request.mr_type = UInt16(mac.isGroup ? PACKET_MR_MULTICAST : PACKET_MR_UNICAST)
        request.mr_alen = 6
        withUnsafeMutableBytes(of: &request.mr_address) { bytes in
            for index in 0..<6 { bytes[index] = UInt8(truncatingIfNeeded: mac.rawValue >> (40 - 8 * UInt64(index))) }
        }
        try SystemCall.setOption(socket, level: SOL_PACKET, name: PACKET_ADD_MEMBERSHIP, request,
                                 "accepting frames to \(mac) on \(interface.name)")
    }

    /// The kernel's count of frames it dropped because this ring was full (PACKET_STATISTICS;
    /// reading resets the kernel's counters, so the caller sums).
    public func takeDropCount() -> UInt64 {
        var stats = tpacket_stats_v3()
        var length = socklen_t(MemoryLayout<tpacket_stats_v3>.size)
        guard getsockopt(socket, SOL_PACKET, PACKET_STATISTICS, &stats, &length) == 0 else { return 0 }
        return UInt64(stats.tp_drops)
    }
}
