/// Parses a frame from the wire, outermost header first. Each step checks that the bytes it is
/// about to read are there before reading them; what does not fit becomes a `MalformedReason`.
public enum FrameParser {
    public static func parse(_ frame: RawSpan) -> ParsedFrame {
        guard frame.byteCount >= EthernetHeader.length else { return .malformed(.truncatedEthernet) }
        let destinationMAC = frame.macAddress(at: EthernetHeader.destinationOffset)
        let sourceMAC = frame.macAddress(at: EthernetHeader.sourceOffset)
        var etherType = frame.bigEndianUInt16(at: EthernetHeader.etherTypeOffset)
        var networkOffset = EthernetHeader.length
        var vlanID: UInt16? = nil

        // One 802.1Q tag is understood; a frame cut inside it is broken, not "other".
        if etherType == EtherType.vlan {
            guard frame.byteCount >= networkOffset + EthernetHeader.vlanTagLength else {
                return .malformed(.truncatedVLANTag)
            }
            vlanID = frame.bigEndianUInt16(at: networkOffset) & 0x0FFF
            etherType = frame.bigEndianUInt16(at: networkOffset + 2)
            networkOffset += EthernetHeader.vlanTagLength
        }

        switch etherType {
        case EtherType.ipv4:
            return parseIPv4(frame, networkOffset: networkOffset, destinationMAC: destinationMAC,
                             sourceMAC: sourceMAC, vlanID: vlanID)
        case EtherType.arp:
            return ARPCodec.parse(frame, offset: networkOffset, destinationMAC: destinationMAC, vlanID: vlanID)
        case EtherType.ipv6:
            return parseIPv6(frame, networkOffset: networkOffset, destinationMAC: destinationMAC,
                             sourceMAC: sourceMAC, vlanID: vlanID)
        default:
            return .passedOver(.otherEtherType)
        }
    }

    /// Whether `flow`'s segment or datagram carries payload after its transport header. Not part
    /// of `parse`: only a connection that has not proven itself yet asks (see
    /// `ConnectionEntry.isProven`), and every other frame would pay for the answer.
    public static func carriesPayload(_ flow: IPv4Flow, in frame: RawSpan) -> Bool {
        let transportLength = flow.networkOffset + flow.packetLength - flow.transportOffset
        guard case .tcp = flow.transport else { return transportLength > UDPHeader.length }
        return transportLength > Int(frame.byte(at: flow.transportOffset + TCPHeader.dataOffsetOffset) >> 4) * 4
    }

    @inline(__always)
    static func parseIPv4(
        _ frame: RawSpan, networkOffset: Int, destinationMAC: MACAddress, sourceMAC: MACAddress, vlanID: UInt16?
    ) -> ParsedFrame {
        let available = frame.byteCount - networkOffset
        guard available >= IPv4Header.minimumLength else { return .malformed(.truncatedIPv4Header) }
        let versionAndLength = frame.byte(at: networkOffset)
        guard versionAndLength >> 4 == 4 else { return .malformed(.badIPVersion) }
        let headerLength = Int(versionAndLength & 0x0F) * 4
        guard headerLength >= IPv4Header.minimumLength else { return .malformed(.badIPv4HeaderLength) }
        guard headerLength <= available else { return .malformed(.truncatedIPv4Header) }
        let totalLength = Int(frame.bigEndianUInt16(at: networkOffset + IPv4Header.totalLengthOffset))
        guard totalLength >= headerLength else { return .malformed(.totalLengthBelowHeader) }
        guard totalLength <= available else { return .malformed(.totalLengthBeyondFrame) }
        // Any fragment — first (MF set) or later (offset ≠ 0) — lacks a complete transport header
        // in at least one piece, so none can be scheduled consistently: drop them all.
        let flagsAndOffset = frame.bigEndianUInt16(at: networkOffset + IPv4Header.flagsAndFragmentOffset)
        guard flagsAndOffset & (IPv4Header.moreFragmentsBit | IPv4Header.fragmentOffsetMask) == 0 else {
            return .malformed(.fragment)
        }
        let protocolNumber = frame.byte(at: networkOffset + IPv4Header.protocolOffset)
        let source = IPv4Address(rawValue: frame.bigEndianUInt32(at: networkOffset + IPv4Header.sourceOffset))
        let destination = IPv4Address(rawValue: frame.bigEndianUInt32(at: networkOffset + IPv4Header.destinationOffset))
        let transportOffset = networkOffset + headerLength
        let transportLength = totalLength - headerLength

        var flow = IPv4Flow(
            destinationMAC: destinationMAC, sourceMAC: sourceMAC, vlanID: vlanID,
            networkOffset: networkOffset, transportOffset: transportOffset,
            source: source, destination: destination, transport: .tcp,
            sourcePort: 0, destinationPort: 0, tcpFlags: [], packetLength: totalLength,
            timeToLive: frame.byte(at: networkOffset + IPv4Header.ttlOffset))

        switch protocolNumber {
        case TransportProtocol.tcp.rawValue:
            guard transportLength >= TCPHeader.minimumLength else { return .malformed(.truncatedTCPHeader) }
            let dataOffset = Int(frame.byte(at: transportOffset + TCPHeader.dataOffsetOffset) >> 4) * 4
            guard dataOffset >= TCPHeader.minimumLength, dataOffset <= transportLength else {
                return .malformed(.badTCPDataOffset)
            }
            flow.sourcePort = frame.bigEndianUInt16(at: transportOffset)
            flow.destinationPort = frame.bigEndianUInt16(at: transportOffset + 2)
            flow.tcpFlags = TCPFlags(rawValue: frame.byte(at: transportOffset + TCPHeader.flagsOffset) & 0x3F)
        case TransportProtocol.udp.rawValue:
            guard transportLength >= UDPHeader.length else { return .malformed(.truncatedUDPHeader) }
            let udpLength = Int(frame.bigEndianUInt16(at: transportOffset + UDPHeader.lengthOffset))
            guard udpLength >= UDPHeader.length, udpLength <= transportLength else { return .malformed(.badUDPLength) }
            flow.transport = .udp
            flow.sourcePort = frame.bigEndianUInt16(at: transportOffset)
            flow.destinationPort = frame.bigEndianUInt16(at: transportOffset + 2)
        case ICMPHeader.protocolNumber:
            return parseICMPError(frame, flow, transportLength: transportLength)
        default:
            return .passedOver(.otherIPProtocol)
        }
        return .ipv4(flow)
    }

    /// ICMP: only errors about a TCP or UDP packet concern the director (they belong to its
    /// flows); everything else ICMP is passed over like any other protocol.
    static func parseICMPError(_ frame: RawSpan, _ outer: IPv4Flow, transportLength: Int) -> ParsedFrame {
        let icmp = outer.transportOffset
        // Only an error's shape is checked: other ICMP is not the director's business, whole or not.
        guard transportLength >= 1 else { return .passedOver(.otherIPProtocol) }
        let type = frame.byte(at: icmp)
        guard type == ICMPHeader.destinationUnreachable || type == ICMPHeader.timeExceeded else { return .passedOver(.otherIPProtocol) }
        guard transportLength >= ICMPHeader.length else { return .malformed(.truncatedICMPError) }
        let quoted = icmp + ICMPHeader.length
        let quotedAvailable = transportLength - ICMPHeader.length
        guard quotedAvailable >= IPv4Header.minimumLength else { return .malformed(.truncatedICMPError) }
        let versionAndLength = frame.byte(at: quoted)
        let quotedHeaderLength = Int(versionAndLength & 0x0F) * 4
        guard versionAndLength >> 4 == 4, quotedHeaderLength >= IPv4Header.minimumLength else { return .passedOver(.otherIPProtocol) }
        // The ports: the first four bytes after the quoted header.
        guard quotedAvailable >= quotedHeaderLength + 4 else { return .malformed(.truncatedICMPError) }
        let transport: TransportProtocol
        switch frame.byte(at: quoted + IPv4Header.protocolOffset) {
        case TransportProtocol.tcp.rawValue: transport = .tcp
        case TransportProtocol.udp.rawValue: transport = .udp
        default: return .passedOver(.otherIPProtocol)
        }
        let ports = quoted + quotedHeaderLength
        return .icmpError(ICMPError(
            destinationMAC: outer.destinationMAC, sourceMAC: outer.sourceMAC, vlanID: outer.vlanID,
            networkOffset: outer.networkOffset, icmpOffset: icmp, packetLength: outer.packetLength,
            source: outer.source, destination: outer.destination, type: type, code: frame.byte(at: icmp + 1),
            quotedOffset: quoted, quotedTransportOffset: ports,
            quotedSource: IPv4Address(rawValue: frame.bigEndianUInt32(at: quoted + IPv4Header.sourceOffset)),
            quotedDestination: IPv4Address(rawValue: frame.bigEndianUInt32(at: quoted + IPv4Header.destinationOffset)),
            quotedTransport: transport,
            quotedSourcePort: frame.bigEndianUInt16(at: ports), quotedDestinationPort: frame.bigEndianUInt16(at: ports + 2)))
    }
}

/// IPv4 header layout (RFC 791).
public enum IPv4Header {
    public static let minimumLength = 20
    public static let totalLengthOffset = 2
    public static let identificationOffset = 4
    public static let flagsAndFragmentOffset = 6
    public static let ttlOffset = 8
    public static let protocolOffset = 9
    public static let checksumOffset = 10
    public static let sourceOffset = 12
    public static let destinationOffset = 16
    public static let moreFragmentsBit: UInt16 = 0x2000
    public static let dontFragmentBit: UInt16 = 0x4000
    public static let fragmentOffsetMask: UInt16 = 0x1FFF
}

/// TCP header layout (RFC 9293).
public enum TCPHeader {
    public static let minimumLength = 20
    public static let sequenceOffset = 4
    public static let acknowledgmentOffset = 8
    public static let dataOffsetOffset = 12
    public static let flagsOffset = 13
    public static let windowOffset = 14
    public static let checksumOffset = 16
}

/// ICMP header layout (RFC 792): type, code, checksum, four bytes that depend on the type
/// (the next hop's MTU for "fragmentation needed"), then the quoted packet of an error.
public enum ICMPHeader {
    public static let protocolNumber: UInt8 = 1
    public static let length = 8
    public static let checksumOffset = 2
    public static let destinationUnreachable: UInt8 = 3
    public static let timeExceeded: UInt8 = 11
    /// Destination unreachable, code 4: the packet was too big for the next hop (RFC 1191).
    public static let fragmentationNeeded: UInt8 = 4
}

/// UDP header layout (RFC 768).
public enum UDPHeader {
    public static let length = 8
    public static let lengthOffset = 4
    public static let checksumOffset = 6
}
