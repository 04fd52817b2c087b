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
        let tcp = flow.transportOffset
        let sequence = frame.bytes.bigEndianUInt32(at: tcp + 4)
        let acknowledgment = frame.bytes.bigEndianUInt32(at: tcp + 8)
        let tcpHeaderLength = Int(frame.bytes.byte(at: tcp + 12) >> 4) * 4
        let payload = flow.networkOffset + flow.packetLength - tcp - tcpHeaderLength
        let hasACK = flow.tcpFlags.contains(.ack)
        let consumed = UInt32(truncatingIfNeeded: max(0, payload)) &+ (flow.tcpFlags.contains(.syn) ? 1 : 0) &+ (flow.tcpFlags.contains(.fin) ? 1 : 0)

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
        frame.storeBigEndian(flow.destinationPort, at: segment)
        frame.storeBigEndian(flow.sourcePort, at: segment + 2)
        frame.storeBigEndian(hasACK ? acknowledgment : 0, at: segment + 4)
        frame.storeBigEndian(hasACK ? 0 : sequence &+ consumed, at: segment + 8)
        let flags: TCPFlags = hasACK ? [.rst] : [.rst, .ack]
        frame.storeBigEndian(UInt16(5) << 12 | UInt16(flags.rawValue), at: segment + 12)
        frame.storeBigEndian(UInt32(0), at: segment + 14)   // window 0, checksum 0 until computed
        frame.storeBigEndian(UInt16(0), at: segment + 18)
        // The pseudo-header: both addresses, the protocol, the segment's length.
        let pseudo = (flow.destination.rawValue >> 16) + (flow.destination.rawValue & 0xFFFF) + (flow.source.rawValue >> 16)
            + (flow.source.rawValue & 0xFFFF) + UInt32(TransportProtocol.tcp.rawValue) + UInt32(TCPHeader.minimumLength)
        let checksum = InternetChecksum.checksum(frame.bytes.extracting(segment..<segment + TCPHeader.minimumLength), initial: pseudo)
        frame.storeBigEndian(checksum, at: segment + 16)
        return segment + TCPHeader.minimumLength
    }
}
