import CDirectorShim
import DirectorCore
import DirectorWire
#if canImport(Glibc)
import Glibc
#endif

/// Geometry of a TPACKET_V2 transmit ring.
public struct TransmitRingGeometry: Sendable {
    public var frameSize: UInt32 = 2048
    /// A worker hands on a whole receive block before it flushes, and a 256 KiB block holds up to
    /// ~1,600 minimum-size frames, more than 1,024 slots; a slot is free again only when the
    /// kernel frees the frame's buffer (on veth, once the receiving side has taken it). When the
    /// receiving side cannot keep up at all, any size fills (`drop_transmit_ring_full`).
    public var frameCount: UInt32 = 4096
    public var blockSize: UInt32 = 1 << 16
    public init() {}
}

/// One worker's transmit ring on the back interface.
///
/// Why this method (measured, see README "Transmit"): a TPACKET TX ring with PACKET_VNET_HDR set
/// and the virtio header's `hdr_len` equal to the frame length makes the kernel build one linear
/// packet buffer per frame instead of a page-fragment buffer it later copies again; that cost
/// ~1.6 µs per frame here against ~2.2 µs for a plain ring and ~2.1 µs for sendmmsg.
/// PACKET_QDISC_BYPASS skips the qdisc layer: the director does its own batching.
///
/// The socket is bound with protocol 0, so it receives nothing.
public struct PacketTransmitRing: ~Copyable {
    public let usesVirtioHeader: Bool
    private let mapping: PacketSocketMapping
    private let ring: UnsafeMutableRawPointer
    private let geometry: TransmitRingGeometry
    private let framesPerBlock: UInt32
    private var nextFrame: UInt32 = 0
    private var pending = 0
    private let dataOffset = Int(director_tx_data_offset())
    static let virtioHeaderLength = MemoryLayout<virtio_net_hdr>.size

    public var socket: Int32 { mapping.socket }

    public init(interface: NetworkInterface, geometry: TransmitRingGeometry = TransmitRingGeometry(), useVirtioHeader: Bool = true) throws(SystemCallError) {
        let context = "setting up a transmit ring on \(interface.name)"
        var mapping = try PacketSocketMapping(protocolNumber: PacketProtocol.none, context)
        try mapping.setOption(level: SOL_PACKET, name: PACKET_VERSION, Int32(TPACKET_V2.rawValue), context)
        var virtio = false
        if useVirtioHeader {
            do {
                try mapping.setOption(level: SOL_PACKET, name: PACKET_VNET_HDR, Int32(1), context)
                virtio = true
            } catch {}
        }
        try mapping.setOption(level: SOL_PACKET, name: PACKET_QDISC_BYPASS, Int32(1), context)
        // Frames in flight are bounded by the send buffer, not the ring: at the default
        // (wmem_default, ~208 KiB) only a few hundred are, and a burst stalls. Size it for the
        // whole ring; SO_SNDBUFFORCE (root) ignores wmem_max, SO_SNDBUF is the fallback.
        let sendBuffer = Int32(clamping: Int(geometry.frameCount) * Int(geometry.frameSize) * 2)
        do {
            try mapping.setOption(level: SOL_SOCKET, name: SO_SNDBUFFORCE, sendBuffer, context)
        } catch {
            try? mapping.setOption(level: SOL_SOCKET, name: SO_SNDBUF, sendBuffer, context)
        }
        var request = tpacket_req()
        request.tp_block_size = geometry.blockSize
        request.tp_frame_size = geometry.frameSize
        request.tp_block_nr = geometry.frameCount / (geometry.blockSize / geometry.frameSize)
        request.tp_frame_nr = geometry.frameCount
        try mapping.setOption(level: SOL_PACKET, name: PACKET_TX_RING, request, context)
        let memory = try mapping.map(byteCount: Int(geometry.blockSize) * Int(request.tp_block_nr), context)
        try mapping.bind(interfaceIndex: interface.index, protocolNumber: PacketProtocol.none, context)
        self.mapping = mapping
        ring = memory
        usesVirtioHeader = virtio
        self.geometry = geometry
        framesPerBlock = geometry.blockSize / geometry.frameSize
    }

    @inline(__always)
    private func frame(_ index: UInt32) -> UnsafeMutablePointer<tpacket2_hdr> {
        let block = index / framesPerBlock, within = index % framesPerBlock
        return (ring + Int(block) * Int(geometry.blockSize) + Int(within) * Int(geometry.frameSize))
            .assumingMemoryBound(to: tpacket2_hdr.self)
    }

    /// The largest frame a slot holds.
    public var maximumFrameLength: Int {
        Int(geometry.frameSize) - dataOffset - (usesVirtioHeader ? PacketTransmitRing.virtioHeaderLength : 0)
    }

    /// Copies a frame into the next free slot. False when the ring is full even after a flush
    /// (the kernel has not sent the frames queued before), or the frame is too large.
    ///
    /// `pendingChecksum` is set for a frame whose transport checksum the original sender left for
    /// offload: with the virtio header the kernel is asked to complete it (NEEDS_CSUM), without
    /// one the ring completes it in the slot. The frame it was given is never written.
    @inline(__always)
    public mutating func enqueue(_ bytes: RawSpan, pendingChecksum: TransportChecksum? = nil, vlanTag: VLANTag = .none) -> Bool {
        let tagLength = vlanTag.isPresent && bytes.byteCount >= VLANTag.offset ? VLANTag.length : 0
        guard bytes.byteCount + tagLength <= maximumFrameLength else { return false }
        var slot = frame(nextFrame)
        var status = director_tx_frame_status(slot)
        if status != UInt32(TP_STATUS_AVAILABLE) && status != UInt32(TP_STATUS_WRONG_FORMAT) {
            flush()
            status = director_tx_frame_status(slot)
            guard status == UInt32(TP_STATUS_AVAILABLE) || status == UInt32(TP_STATUS_WRONG_FORMAT) else { return false }
        }
        slot = frame(nextFrame)
        var data = UnsafeMutableRawPointer(slot) + dataOffset
        let frameLength = bytes.byteCount + tagLength
        // The tag sits before the IP header: the checksum's place moves with it.
        let checksum = pendingChecksum.map { TransportChecksum(start: $0.start + tagLength, fieldOffset: $0.fieldOffset, end: $0.end + tagLength) }
        var length = frameLength
        if usesVirtioHeader {
            // flags 0, gso NONE; hdr_len = the whole frame, so the kernel copies it into the
            // packet buffer's linear part (see the type's comment).
            // struct virtio_net_hdr, little-endian: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset.
            data.initializeMemory(as: UInt8.self, repeating: 0, count: PacketTransmitRing.virtioHeaderLength)
            data.storeBytes(of: UInt16(frameLength).littleEndian, toByteOffset: 2, as: UInt16.self)
            if let checksum {
                data.storeBytes(of: UInt8(VIRTIO_NET_HDR_F_NEEDS_CSUM), toByteOffset: 0, as: UInt8.self)
                data.storeBytes(of: UInt16(checksum.start).littleEndian, toByteOffset: 6, as: UInt16.self)
                data.storeBytes(of: UInt16(checksum.fieldOffset).littleEndian, toByteOffset: 8, as: UInt16.self)
            }
            data += PacketTransmitRing.virtioHeaderLength
            length += PacketTransmitRing.virtioHeaderLength
        }
        if tagLength == 0 {
            bytes.withUnsafeBytes { source in data.copyMemory(from: source.baseAddress!, byteCount: source.count) }
        } else {
            bytes.withUnsafeBytes { source in VLANTag.insert(vlanTag, copying: source, into: data) }
        }
        if let checksum, !usesVirtioHeader {
            var copy = UnsafeMutableRawBufferPointer(start: data, count: frameLength).mutableBytes
            InternetChecksum.complete(&copy, start: checksum.start, fieldOffset: checksum.fieldOffset, end: checksum.end)
        }
        director_tx_frame_publish(slot, UInt32(length))
        nextFrame = nextFrame + 1 == geometry.frameCount ? 0 : nextFrame + 1
        pending += 1
        return true
    }

    /// Whether frames wait for a `flush`.
    public var hasPending: Bool { pending > 0 }

    /// Asks the kernel to send every published frame: one send(2) per burst, not per frame.
    /// Returns errno when the kernel refused (ENETDOWN while the interface is down, ENOBUFS or
    /// EAGAIN when the device queue or send buffer is full): the frames stay published and the
    /// next flush tries again.
    @discardableResult
    public mutating func flush() -> Int32? {
        guard pending > 0 else { return nil }
        if send(mapping.socket, nil, 0, Int32(MSG_DONTWAIT)) < 0 { return director_errno() }
        pending = 0
        return nil
    }
}
