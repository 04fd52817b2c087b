import DirectorWire

/// Writes the frames of a `TrafficPlan`, one at a time, into a buffer of its own: a template per
/// frame kind, then the flow's client address and port, the TCP sequence number, the stamp, and
/// both checksums. Nothing is allocated per frame, so the generator's cost stays the kernel's.
public final class FrameSynthesizer {
    public let plan: TrafficPlan
    private let scratch: UnsafeMutableRawBufferPointer
    private let templates: [FrameKind: [UInt8]]
    private let length: Int
    private let payloadLength: Int

    public init(plan: TrafficPlan) {
        self.plan = plan
        length = plan.effectiveFrameLength
        payloadLength = length - plan.headerLength
        let payload = [UInt8](repeating: 0, count: payloadLength)
        let base = PacketBuilder().ethernet(from: plan.sourceMAC, to: plan.destinationMAC).ipv4(from: plan.firstClient, to: plan.destination)
            .payload(payload)
        func tcp(_ flags: TCPFlags) -> [UInt8] {
            base.tcp(sourcePort: TrafficPlan.firstPort, destinationPort: plan.destinationPort, flags: flags, sequence: 0, acknowledgment: 1).build()
        }
        templates = [.syn: tcp(.syn), .data: tcp([.ack, .psh]), .fin: tcp([.fin, .ack]),
                     .datagram: base.udp(sourcePort: TrafficPlan.firstPort, destinationPort: plan.destinationPort).build()]
        scratch = .allocate(byteCount: 2048, alignment: 64)
        scratch.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit { scratch.deallocate() }

    /// Frame `n` of the plan, stamped with `time` (CLOCK_REALTIME ns). The bytes stay valid until
    /// the next call.
    public func frame(_ n: UInt64, time: UInt64) -> UnsafeRawBufferPointer {
        let (flow, packet, kind) = plan.frame(n)
        let (address, port) = plan.client(of: flow)
        templates[kind]!.withUnsafeBytes { scratch.copyMemory(from: $0) }
        var bytes = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<length]).mutableBytes
        let ip = 14, transport = 34, stamp = plan.headerLength
        bytes.storeBigEndian(address.rawValue, at: ip + IPv4Header.sourceOffset)
        bytes.storeBigEndian(port, at: transport)
        if kind != .datagram {
            // A byte stream's sequence numbers: the SYN takes one, each segment its payload.
            let sequence = kind == .syn ? 0 : 1 &+ (packet &- 1) &* UInt32(payloadLength)
            bytes.storeBigEndian(sequence, at: transport + 4)
        }
        bytes.storeBigEndian(packet, at: stamp)
        bytes.storeBigEndian(UInt32(truncatingIfNeeded: time >> 32), at: stamp + 4)
        bytes.storeBigEndian(UInt32(truncatingIfNeeded: time), at: stamp + 8)

        bytes.storeBigEndian(UInt16(0), at: ip + IPv4Header.checksumOffset)
        bytes.storeBigEndian(InternetChecksum.checksum(bytes.bytes.extracting(ip..<transport)), at: ip + IPv4Header.checksumOffset)
        let checksumField = transport + (kind == .datagram ? UDPHeader.checksumOffset : TCPHeader.checksumOffset)
        bytes.storeBigEndian(UInt16(0), at: checksumField)
        let segmentLength = length - transport
        let pseudoHeader = (address.rawValue >> 16) + (address.rawValue & 0xFFFF) + (plan.destination.rawValue >> 16)
            + (plan.destination.rawValue & 0xFFFF) + UInt32(kind == .datagram ? 17 : 6) + UInt32(segmentLength)
        var checksum = InternetChecksum.checksum(bytes.bytes.extracting(transport..<length), initial: pseudoHeader)
        if kind == .datagram && checksum == 0 { checksum = 0xFFFF }
        bytes.storeBigEndian(checksum, at: checksumField)
        return UnsafeRawBufferPointer(rebasing: scratch[0..<length])
    }
}

/// The stamp a frame of a plan carries after its headers.
public struct FrameStamp: Sendable, Equatable {
    public var packet: UInt32
    public var sentAt: UInt64

    /// Reads the stamp at `offset` (a plan's header length), if the frame is long enough.
    public init?(_ frame: RawSpan, at offset: Int) {
        guard frame.byteCount >= offset + TrafficPlan.stampLength else { return nil }
        packet = frame.bigEndianUInt32(at: offset)
        sentAt = UInt64(frame.bigEndianUInt32(at: offset + 4)) << 32 | UInt64(frame.bigEndianUInt32(at: offset + 8))
    }
}
