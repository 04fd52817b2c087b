/// The shape of a worker's receive ring, and what it buys: how many frames and how much time it
/// absorbs while its worker is away (descheduled, stalled behind softirq work, stopped).
///
/// Two formats, chosen by measurement (README, "The receive ring"):
/// - `tpacketV3` (the default): the kernel fills blocks and hands a block over when it is full
///   or when its retire timer fires (1 ms at the least). One wake-up per block, the cheapest per
///   frame, but a frame waits for its block: up to the timer at moderate rates.
/// - `tpacketV2`: the kernel hands over each frame as it is written. A frame is seen at once
///   (tens of microseconds through the director), at a few percent more CPU per frame.
///
/// At moderate rates a TPACKET_V3 block retires on its timer, not full, so a ring of N blocks
/// holds about N timer periods of traffic whatever its size in bytes: its time, not its bytes,
/// is what protects a worker that is kept off its CPU.
public struct ReceiveRingGeometry: Sendable, Equatable {
    public enum Format: String, Sendable, CaseIterable {
        case tpacketV3 = "tpacket_v3"
        case tpacketV2 = "tpacket_v2"
    }

    public var format: Format
    /// Bytes of one block: a power of two, a whole number of pages.
    public var blockSize: UInt32
    public var blockCount: UInt32
    /// TPACKET_V2: bytes of one frame's slot (header and frame); at least 1,600 so a full
    /// 1,518-byte frame fits after the kernel's 66 bytes of header. TPACKET_V3 packs frames
    /// tightly and ignores it beyond the kernel's own checks.
    public var frameSize: UInt32
    /// TPACKET_V3: a block is handed over when full or after this many milliseconds.
    public var retireTimeoutMilliseconds: UInt32

    /// The default: 1,024 blocks of 32 KiB, 32 MiB a worker. On its 1 ms timer it absorbs about
    /// a second without a reader below ~200 k small frames/s, and 230 ms at 1 M frames/s.
    public static let standard = ReceiveRingGeometry(format: .tpacketV3, blockSize: 32 << 10, blockCount: 1024,
                                                      frameSize: 2048, retireTimeoutMilliseconds: 1)
    /// The low-latency choice: 65,536 frame slots of 2 KiB (128 MiB a worker), 650 ms at 100 k frames/s.
    public static let lowLatency = ReceiveRingGeometry(format: .tpacketV2, blockSize: 64 << 10, blockCount: 2048,
                                                        frameSize: 2048, retireTimeoutMilliseconds: 1)

    public init(format: Format, blockSize: UInt32, blockCount: UInt32, frameSize: UInt32, retireTimeoutMilliseconds: UInt32) {
        self.format = format
        self.blockSize = blockSize
        self.blockCount = blockCount
        self.frameSize = frameSize
        self.retireTimeoutMilliseconds = retireTimeoutMilliseconds
    }

    /// The memory the ring maps (shared with the kernel, locked when RLIMIT_MEMLOCK allows).
    public var byteCount: Int { Int(blockSize) * Int(blockCount) }

    public var framesPerBlock: UInt32 { blockSize / frameSize }

    /// TPACKET_V2 frame slots in the whole ring.
    public var frameCount: UInt32 { framesPerBlock * blockCount }

    // Where the kernel puts a frame (net/packet/af_packet.c, tpacket_rcv): after the format's
    // header and a sockaddr_ll, aligned so the network header lands on a 16-byte boundary.
    static let alignment = 16
    static func aligned(_ value: Int) -> Int { (value + alignment - 1) / alignment * alignment }
    /// Offset of the Ethernet header in a frame's slot: TPACKET_ALIGN(hdrlen + 16) - 14.
    var frameDataOffset: Int {
        let headerLength = format == .tpacketV3 ? 48 + 20 : 32 + 20
        return ReceiveRingGeometry.aligned(headerLength + 16) - 14
    }
    /// A TPACKET_V3 block starts with its 48-byte descriptor.
    static let blockDescriptorLength = 48

    /// Frames of `frameLength` bytes (as on the wire, without FCS) the ring holds.
    public func framesHeld(frameLength: Int) -> Int {
        switch format {
        case .tpacketV3:
            let slot = ReceiveRingGeometry.aligned(frameDataOffset + frameLength)
            return (Int(blockSize) - ReceiveRingGeometry.blockDescriptorLength) / slot * Int(blockCount)
        case .tpacketV2:
            return frameDataOffset + frameLength <= Int(frameSize) ? Int(frameCount) : 0
        }
    }

    /// How long the ring absorbs `framesPerSecond` frames of `frameLength` bytes with nobody
    /// reading it, seconds. A TPACKET_V3 block is closed when full or on its timer, whichever
    /// comes first, so at low rates each block lasts one timer period.
    public func absorbs(framesPerSecond: Double, frameLength: Int) -> Double {
        guard framesPerSecond > 0 else { return .infinity }
        switch format {
        case .tpacketV3:
            let perBlock = Double(framesHeld(frameLength: frameLength)) / Double(blockCount)
            let blockLifetime = min(perBlock / framesPerSecond, Double(retireTimeoutMilliseconds) / 1000)
            return blockLifetime * Double(blockCount)
        case .tpacketV2:
            return Double(framesHeld(frameLength: frameLength)) / framesPerSecond
        }
    }

    /// What a problem with this geometry is, if any (the kernel would refuse it, or full-size
    /// frames would not fit).
    public var problem: String? {
        let page: UInt32 = 4096
        guard blockSize >= page, blockSize % page == 0, blockSize & (blockSize - 1) == 0 else {
            return "block_size must be a power of two of at least 4096 bytes, got \(blockSize)"
        }
        guard blockSize <= 1 << 26 else { return "block_size must be at most 64 MiB, got \(blockSize)" }
        guard blockCount >= 2 else { return "block_count must be at least 2, got \(blockCount)" }
        guard byteCount <= 1 << 34 else { return "the ring (block_size × block_count) must be at most 16 GiB, got \(byteCount) bytes" }
        switch format {
        case .tpacketV3:
            guard (1...1000).contains(retireTimeoutMilliseconds) else {
                return "retire_timeout_ms must be from 1 to 1000, got \(retireTimeoutMilliseconds)"
            }
            guard framesHeld(frameLength: ReceiveRingGeometry.largestFrame) >= Int(blockCount) else {
                return "block_size \(blockSize) cannot hold a full-size frame"
            }
        case .tpacketV2:
            guard frameSize % UInt32(ReceiveRingGeometry.alignment) == 0, frameDataOffset + ReceiveRingGeometry.largestFrame <= Int(frameSize) else {
                return "frame_size must be a multiple of 16 of at least \(ReceiveRingGeometry.aligned(frameDataOffset + ReceiveRingGeometry.largestFrame)) (a full 1,518-byte frame and the kernel's header), got \(frameSize)"
            }
            guard frameSize <= blockSize else { return "frame_size \(frameSize) must not exceed block_size \(blockSize)" }
        }
        return nil
    }

    /// A full Ethernet frame with an 802.1Q tag, without FCS.
    public static let largestFrame = 1518
    /// The smallest Ethernet frame without FCS.
    public static let smallestFrame = 60

    /// One line for the start-up log and `director stats`: memory, frames and the time it buys.
    public var summary: String {
        func mebibytes(_ bytes: Int) -> String { bytes >= 1 << 20 ? "\(bytes >> 20) MiB" : "\(bytes >> 10) KiB" }
        func milliseconds(_ seconds: Double) -> String { seconds.isFinite ? "\(Int((seconds * 1000).rounded())) ms" : "∞" }
        let small = framesHeld(frameLength: ReceiveRingGeometry.smallestFrame)
        let large = framesHeld(frameLength: ReceiveRingGeometry.largestFrame)
        let shape = format == .tpacketV3
            ? "\(blockCount) blocks × \(mebibytes(Int(blockSize))), retired after \(retireTimeoutMilliseconds) ms"
            : "\(frameCount) frame slots × \(frameSize) B"
        return "\(format.rawValue), \(shape) = \(mebibytes(byteCount)); holds \(small) small or \(large) full-size frames; "
            + "absorbs \(milliseconds(absorbs(framesPerSecond: 100_000, frameLength: ReceiveRingGeometry.smallestFrame))) without a reader "
            + "at 100 k small frames/s, \(milliseconds(absorbs(framesPerSecond: 1_000_000, frameLength: ReceiveRingGeometry.smallestFrame))) at 1 M/s"
    }
}
