import DirectorWire

/// Writes the frames of a `TrafficPlan`, one at a time, into a buffer of its own: a template per
/// frame kind, then the flow's client address and port, the TCP sequence number, the stamp, and
/// both checksums. Nothing is allocated per frame, so the generator's cost stays the kernel's.
public struct FrameSynthesizer {
    public let plan: TrafficPlan
    private var scratch: [UInt8]
    /// By `FrameKind.rawValue`; only the kinds the plan sends (the others would not be this long).
    private let templates: [[UInt8]]
    private let payloadLength: Int

    public init(plan: TrafficPlan) {
        self.plan = plan
        payloadLength = plan.effectiveFrameLength - plan.headerLength
        let base = PacketBuilder().ethernet(from: plan.sourceMAC, to: plan.destinationMAC).ipv4(from: plan.firstClient, to: plan.destination)
            .payload([UInt8](repeating: 0, count: payloadLength))
        func tcp(_ flags: TCPFlags) -> [UInt8] {
            base.tcp(sourcePort: TrafficPlan.firstPort, destinationPort: plan.destinationPort, flags: flags, sequence: 0, acknowledgment: 1).build()
        }
        templates = FrameKind.allCases.map { kind in
            guard (kind == .datagram) == (plan.pattern == .udp) else { return [] }
            switch kind {
            case .syn: return tcp(.syn)
            case .data: return tcp([.ack, .psh])
            case .fin: return tcp([.fin, .ack])
            case .datagram: return base.udp(sourcePort: TrafficPlan.firstPort, destinationPort: plan.destinationPort).build()
            case .ack:
                return PacketBuilder().ethernet(from: plan.sourceMAC, to: plan.destinationMAC).ipv4(from: plan.firstClient, to: plan.destination)
                    .tcp(sourcePort: TrafficPlan.firstPort, destinationPort: plan.destinationPort, flags: .ack, sequence: 1, acknowledgment: 1).build()
            }
        }
        scratch = [UInt8](repeating: 0, count: plan.effectiveFrameLength)
    }

    /// Frame `n` of the plan, stamped with `time` (CLOCK_REALTIME ns), lent to `body`. A bare
    /// ACK is headers only: no stamp (a byte of data would make it a conversation).
    public mutating func withFrame<Result>(_ n: UInt64, time: UInt64, _ body: (RawSpan) -> Result) -> Result {
        let (flow, packet, kind) = plan.frame(n)
        let (address, port) = plan.client(of: flow)
        let payloadLength = self.payloadLength, destination = plan.destination, stamp = plan.headerLength
        let template = templates[kind.rawValue]
        return scratch.withUnsafeMutableBytes { buffer in
            template.withUnsafeBytes { buffer.copyMemory(from: $0) }
            var bytes = buffer.mutableBytes
            let ip = 14, transport = 34, length = template.count
            bytes.storeBigEndian(address.rawValue, at: ip + IPv4Header.sourceOffset)
            bytes.storeBigEndian(port, at: transport)
            if kind != .datagram && kind != .ack {
                // A byte stream's sequence numbers: the SYN takes one, each segment its payload.
                let sequence = kind == .syn ? 0 : 1 &+ (packet &- 1) &* UInt32(payloadLength)
                bytes.storeBigEndian(sequence, at: transport + TCPHeader.sequenceOffset)
            }
            if kind != .ack {
                bytes.storeBigEndian(packet, at: stamp)
                bytes.storeBigEndian(UInt32(truncatingIfNeeded: time >> 32), at: stamp + 4)
                bytes.storeBigEndian(UInt32(truncatingIfNeeded: time), at: stamp + 8)
            }

            bytes.storeBigEndian(UInt16(0), at: ip + IPv4Header.checksumOffset)
            bytes.storeBigEndian(InternetChecksum.checksum(bytes.bytes.extracting(ip..<transport)), at: ip + IPv4Header.checksumOffset)
            let checksumField = transport + (kind == .datagram ? UDPHeader.checksumOffset : TCPHeader.checksumOffset)
            bytes.storeBigEndian(UInt16(0), at: checksumField)
            let pseudoHeader = (address.rawValue >> 16) + (address.rawValue & 0xFFFF) + (destination.rawValue >> 16)
                + (destination.rawValue & 0xFFFF) + UInt32(kind == .datagram ? 17 : 6) + UInt32(length - transport)
            var checksum = InternetChecksum.checksum(bytes.bytes.extracting(transport..<length), initial: pseudoHeader)
            if kind == .datagram && checksum == 0 { checksum = 0xFFFF }
            bytes.storeBigEndian(checksum, at: checksumField)
            return body(bytes.bytes.extracting(0..<length))
        }
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
