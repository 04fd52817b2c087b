/// Turns a client's TCP segment, in place, into the reset the virtual address answers it with
/// (RFC 9293 §3.10.7.1: to a segment with ACK, a RST whose sequence is that acknowledgment;
/// without ACK, a RST+ACK acknowledging the segment). What the director sends when the real
/// server of an established connection failed its health check and its service resets such
/// connections: the client learns at once and reconnects, instead of retransmitting into a
/// server that is gone.
public enum TCPReset {
    static let headerLengths = IPv4Header.minimumLength + TCPHeader.minimumLength

    /// Rewrites `frame` (which holds `flow`) into the reset, from `mac`; returns its length.
    public static func answer(_ flow: IPv4Flow, in frame: inout MutableRawSpan, from mac: MACAddress) -> Int {
        let original = OriginalSegment(frame.bytes, transportOffset: flow.transportOffset, end: flow.networkOffset + flow.packetLength,
                                       flags: flow.tcpFlags, sourcePort: flow.sourcePort, destinationPort: flow.destinationPort)

        frame.storeMACAddress(flow.sourceMAC, at: EthernetHeader.destinationOffset)
        frame.storeMACAddress(mac, at: EthernetHeader.sourceOffset)
        // A header without options: the reset's layout does not depend on the segment's.
        let ip = flow.networkOffset
        frame.storeBigEndian(UInt16(0x4500), at: ip)
        frame.storeBigEndian(UInt16(headerLengths), at: ip + 2)
        frame.storeBigEndian(UInt16(0), at: ip + 4)
        frame.storeBigEndian(UInt16(0x4000), at: ip + 6)
        frame.storeBigEndian(UInt16(64) << 8 | UInt16(TransportProtocol.tcp.rawValue), at: ip + 8)
        frame.storeBigEndian(UInt16(0), at: ip + 10)
        frame.storeBigEndian(flow.destination.rawValue, at: ip + 12)
        frame.storeBigEndian(flow.source.rawValue, at: ip + 16)
        frame.storeBigEndian(InternetChecksum.checksum(frame.bytes.extracting(ip..<ip + IPv4Header.minimumLength)), at: ip + 10)

        let segment = ip + IPv4Header.minimumLength
        // The pseudo-header: both addresses, the protocol, the segment's length.
        let pseudo = (flow.destination.rawValue >> 16) + (flow.destination.rawValue & 0xFFFF) + (flow.source.rawValue >> 16)
            + (flow.source.rawValue & 0xFFFF) + UInt32(TransportProtocol.tcp.rawValue) + UInt32(TCPHeader.minimumLength)
        writeSegment(&frame, at: segment, answering: original, pseudoHeaderSum: pseudo)
        return segment + TCPHeader.minimumLength
    }

    /// The IPv6 form: a fixed header without extension headers (whatever the segment had), hop
    /// limit 64, then the same segment.
    public static func answer(_ flow: IPv6Flow, in frame: inout MutableRawSpan, from mac: MACAddress) -> Int {
        let original = OriginalSegment(frame.bytes, transportOffset: flow.transportOffset, end: flow.networkOffset + flow.packetLength,
                                       flags: flow.tcpFlags, sourcePort: flow.sourcePort, destinationPort: flow.destinationPort)
        frame.storeMACAddress(flow.sourceMAC, at: EthernetHeader.destinationOffset)
        frame.storeMACAddress(mac, at: EthernetHeader.sourceOffset)
        let ip = flow.networkOffset
        frame.storeBigEndian(UInt32(0x6000_0000), at: ip)
        frame.storeBigEndian(UInt16(TCPHeader.minimumLength), at: ip + IPv6Header.payloadLengthOffset)
        frame.storeBigEndian(UInt16(TransportProtocol.tcp.rawValue) << 8 | 64, at: ip + IPv6Header.nextHeaderOffset)
        frame.storeIPv6Address(flow.destination, at: ip + IPv6Header.sourceOffset)
        frame.storeIPv6Address(flow.source, at: ip + IPv6Header.destinationOffset)
        let segment = ip + IPv6Header.length
        let pseudo = InternetChecksum.pseudoHeaderSum(source: flow.destination, destination: flow.source,
                                                      length: UInt32(TCPHeader.minimumLength), nextHeader: TransportProtocol.tcp.rawValue)
        writeSegment(&frame, at: segment, answering: original, pseudoHeaderSum: pseudo)
        return segment + TCPHeader.minimumLength
    }

    /// What the reset answers, read before the frame is overwritten.
    struct OriginalSegment {
        var sequence: UInt32
        var acknowledgment: UInt32
        /// Sequence space the segment took: its payload, and one each for SYN and FIN.
        var consumed: UInt32
        var hasACK: Bool
        var sourcePort: UInt16
        var destinationPort: UInt16

        init(_ frame: RawSpan, transportOffset tcp: Int, end: Int, flags: TCPFlags, sourcePort: UInt16, destinationPort: UInt16) {
            sequence = frame.bigEndianUInt32(at: tcp + 4)
            acknowledgment = frame.bigEndianUInt32(at: tcp + 8)
            let payload = end - tcp - Int(frame.byte(at: tcp + 12) >> 4) * 4
            consumed = UInt32(truncatingIfNeeded: max(0, payload)) &+ (flags.contains(.syn) ? 1 : 0) &+ (flags.contains(.fin) ? 1 : 0)
            hasACK = flags.contains(.ack)
            self.sourcePort = sourcePort
            self.destinationPort = destinationPort
        }
    }

    /// The reset's TCP header at `segment`, ports swapped, checksummed over `pseudoHeaderSum`.
    static func writeSegment(_ frame: inout MutableRawSpan, at segment: Int, answering original: OriginalSegment, pseudoHeaderSum: UInt32) {
        frame.storeBigEndian(original.destinationPort, at: segment)
        frame.storeBigEndian(original.sourcePort, at: segment + 2)
        frame.storeBigEndian(original.hasACK ? original.acknowledgment : 0, at: segment + 4)
        frame.storeBigEndian(original.hasACK ? 0 : original.sequence &+ original.consumed, at: segment + 8)
        let flags: TCPFlags = original.hasACK ? [.rst] : [.rst, .ack]
        frame.storeBigEndian(UInt16(5) << 12 | UInt16(flags.rawValue), at: segment + 12)
        frame.storeBigEndian(UInt32(0), at: segment + 14)   // window 0, checksum 0 until computed
        frame.storeBigEndian(UInt16(0), at: segment + 18)
        let checksum = InternetChecksum.checksum(frame.bytes.extracting(segment..<segment + TCPHeader.minimumLength), initial: pseudoHeaderSum)
        frame.storeBigEndian(checksum, at: segment + 16)
    }
}
