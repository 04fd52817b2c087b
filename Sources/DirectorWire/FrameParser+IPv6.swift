extension FrameParser {
    /// IPv6 (RFC 8200): the fixed header, then at most `IPv6Header.extensionHeaderLimit`
    /// extension headers (hop-by-hop options, routing, destination options, fragment) to the
    /// transport header. The kernel filter walks the same headers with the same bound, so both
    /// agree on every frame's client endpoint.
    ///
    /// A first fragment (offset 0) whose transport header is whole is a flow's frame like any
    /// other; a later fragment carries no ports, so it can be neither scheduled nor matched to a
    /// connection: it is dropped and counted (`fragment`), as IPv4 fragments are.
    ///
    /// Not inlined into `parse`: the IPv4 path does not pay for this one's registers and stack.
    @inline(never)
    static func parseIPv6(
        _ frame: RawSpan, networkOffset: Int, destinationMAC: MACAddress, sourceMAC: MACAddress, vlanID: UInt16?
    ) -> ParsedFrame {
        let available = frame.byteCount - networkOffset
        guard available >= IPv6Header.length else { return .malformed(.truncatedIPv6Header) }
        guard frame.byte(at: networkOffset) >> 4 == 6 else { return .malformed(.badIPVersion) }
        let packetLength = IPv6Header.length + Int(frame.bigEndianUInt16(at: networkOffset + IPv6Header.payloadLengthOffset))
        guard packetLength <= available else { return .malformed(.totalLengthBeyondFrame) }
        let packetEnd = networkOffset + packetLength
        var nextHeader = frame.byte(at: networkOffset + IPv6Header.nextHeaderOffset)
        var offset = networkOffset + IPv6Header.length
        var isFirstFragment = false
        var hasFragmentHeader = false
        var walked = 0
        while IPv6Header.isExtensionHeader(nextHeader) {
            guard walked < IPv6Header.extensionHeaderLimit else { return .malformed(.tooManyExtensionHeaders) }
            walked += 1
            guard packetEnd - offset >= 8 else { return .malformed(.truncatedExtensionHeader) }
            if nextHeader == IPv6Header.fragment {
                let offsetAndFlags = frame.bigEndianUInt16(at: offset + 2)
                guard offsetAndFlags & IPv6Header.fragmentOffsetMask == 0 else { return .malformed(.fragment) }
                isFirstFragment = isFirstFragment || offsetAndFlags & IPv6Header.moreFragmentsBit != 0
                hasFragmentHeader = true
                nextHeader = frame.byte(at: offset)
                offset += 8
            } else {
                let length = (Int(frame.byte(at: offset + 1)) + 1) * 8
                guard packetEnd - offset >= length else { return .malformed(.truncatedExtensionHeader) }
                nextHeader = frame.byte(at: offset)
                offset += length
            }
        }
        let transportLength = packetEnd - offset
        let source = frame.ipv6Address(at: networkOffset + IPv6Header.sourceOffset)
        let destination = frame.ipv6Address(at: networkOffset + IPv6Header.destinationOffset)
        var flow = IPv6Flow(
            destinationMAC: destinationMAC, sourceMAC: sourceMAC, vlanID: vlanID,
            networkOffset: networkOffset, transportOffset: offset, source: source, destination: destination,
            transport: .tcp, sourcePort: 0, destinationPort: 0, tcpFlags: [], packetLength: packetLength,
            hopLimit: frame.byte(at: networkOffset + IPv6Header.hopLimitOffset), isFirstFragment: isFirstFragment)

        switch nextHeader {
        case TransportProtocol.tcp.rawValue:
            guard transportLength >= TCPHeader.minimumLength else { return .malformed(.truncatedTCPHeader) }
            let dataOffset = Int(frame.byte(at: offset + TCPHeader.dataOffsetOffset) >> 4) * 4
            guard dataOffset >= TCPHeader.minimumLength, dataOffset <= transportLength else { return .malformed(.badTCPDataOffset) }
            flow.sourcePort = frame.bigEndianUInt16(at: offset)
            flow.destinationPort = frame.bigEndianUInt16(at: offset + 2)
            flow.tcpFlags = TCPFlags(rawValue: frame.byte(at: offset + TCPHeader.flagsOffset) & 0x3F)
        case TransportProtocol.udp.rawValue:
            guard transportLength >= UDPHeader.length else { return .malformed(.truncatedUDPHeader) }
            // A first fragment holds only part of the datagram its UDP length counts.
            let udpLength = Int(frame.bigEndianUInt16(at: offset + UDPHeader.lengthOffset))
            guard udpLength >= UDPHeader.length, isFirstFragment || udpLength <= transportLength else { return .malformed(.badUDPLength) }
            flow.transport = .udp
            flow.sourcePort = frame.bigEndianUInt16(at: offset)
            flow.destinationPort = frame.bigEndianUInt16(at: offset + 2)
        // ICMPv6 in a fragment (even an atomic one) is not read: the quote may be cut, and
        // Neighbor Discovery in a fragment is to be ignored (RFC 6980).
        case ICMPv6Header.protocolNumber where !hasFragmentHeader:
            return parseICMPv6(frame, flow, transportLength: transportLength)
        default:
            return .passedOver(.otherIPProtocol)
        }
        return .ipv6(flow)
    }

    /// ICMPv6: errors about a TCP or UDP packet (they belong to its flow), and Neighbor
    /// Solicitations (for the VIPs and the NAT gateway). Everything else is passed over.
    static func parseICMPv6(_ frame: RawSpan, _ outer: IPv6Flow, transportLength: Int) -> ParsedFrame {
        let icmp = outer.transportOffset
        guard transportLength >= 1 else { return .passedOver(.otherIPProtocol) }
        let type = frame.byte(at: icmp)
        switch type {
        case ICMPv6Header.neighborSolicitation:
            return parseNeighborSolicitation(frame, outer, length: transportLength)
        case ICMPv6Header.destinationUnreachable, ICMPv6Header.packetTooBig, ICMPv6Header.timeExceeded:
            break
        default:
            return .passedOver(.otherIPProtocol)
        }
        guard transportLength >= ICMPv6Header.length + IPv6Header.length + 4 else { return .malformed(.truncatedICMPError) }
        let quoted = icmp + ICMPv6Header.length
        guard frame.byte(at: quoted) >> 4 == 6 else { return .passedOver(.otherIPProtocol) }
        let transport: TransportProtocol
        switch frame.byte(at: quoted + IPv6Header.nextHeaderOffset) {
        case TransportProtocol.tcp.rawValue: transport = .tcp
        case TransportProtocol.udp.rawValue: transport = .udp
        default: return .passedOver(.otherIPProtocol)
        }
        let ports = quoted + IPv6Header.length
        return .icmpv6Error(ICMPv6Error(
            destinationMAC: outer.destinationMAC, sourceMAC: outer.sourceMAC, vlanID: outer.vlanID,
            networkOffset: outer.networkOffset, icmpOffset: icmp, packetLength: outer.packetLength,
            type: type, code: frame.byte(at: icmp + 1), quotedOffset: quoted,
            quotedSource: frame.ipv6Address(at: quoted + IPv6Header.sourceOffset),
            quotedDestination: frame.ipv6Address(at: quoted + IPv6Header.destinationOffset),
            quotedTransport: transport,
            quotedSourcePort: frame.bigEndianUInt16(at: ports), quotedDestinationPort: frame.bigEndianUInt16(at: ports + 2)))
    }

    /// RFC 4861 §7.1.1: a solicitation from off-link (hop limit below 255), with a code, too short,
    /// with a wrong checksum, for a multicast target, or with an option of length zero is
    /// invalid; so is one from `::` (duplicate address detection) that carries a source
    /// link-layer address or is not sent to the target's solicited-node address.
    static func parseNeighborSolicitation(_ frame: RawSpan, _ outer: IPv6Flow, length: Int) -> ParsedFrame {
        let icmp = outer.transportOffset
        guard outer.hopLimit == 255, length >= NeighborDiscovery.solicitationLength, frame.byte(at: icmp + 1) == 0 else {
            return .malformed(.invalidNeighborDiscovery)
        }
        // Rare frames, so the whole message is summed: the pseudo-header and the message make
        // all ones when the checksum is right.
        let pseudo = InternetChecksum.pseudoHeaderSum(source: outer.source, destination: outer.destination, length: UInt32(length),
                                                      nextHeader: ICMPv6Header.protocolNumber)
        guard InternetChecksum.sum(frame.extracting(icmp..<(icmp + length)), initial: pseudo) == 0xFFFF else {
            return .malformed(.invalidNeighborDiscovery)
        }
        let target = frame.ipv6Address(at: icmp + NeighborDiscovery.targetOffset)
        guard !target.isMulticast else { return .malformed(.invalidNeighborDiscovery) }
        var linkLayer: MACAddress?
        var option = icmp + NeighborDiscovery.solicitationLength
        let end = icmp + length
        // Each option is at least 8 bytes, so the walk ends within the packet's length.
        while end - option >= 2 {
            let optionLength = Int(frame.byte(at: option + 1)) * 8
            guard optionLength > 0, end - option >= optionLength else { return .malformed(.invalidNeighborDiscovery) }
            if frame.byte(at: option) == NeighborDiscovery.sourceLinkLayerOption, optionLength >= 8 {
                linkLayer = frame.macAddress(at: option + 2)
            }
            option += optionLength
        }
        let fromUnspecified = outer.source == .zero
        guard !(fromUnspecified && linkLayer != nil) else { return .malformed(.invalidNeighborDiscovery) }
        guard !fromUnspecified || outer.destination == target.solicitedNodeMulticast else { return .malformed(.invalidNeighborDiscovery) }
        return .neighborSolicitation(NeighborSolicitation(
            destinationMAC: outer.destinationMAC, sourceMAC: outer.sourceMAC, vlanID: outer.vlanID,
            source: outer.source, destination: outer.destination, target: target, sourceLinkLayerAddress: linkLayer))
    }
}

/// IPv6 fixed header layout (RFC 8200 §3) and the extension headers the director walks.
public enum IPv6Header {
    public static let length = 40
    public static let payloadLengthOffset = 4
    public static let nextHeaderOffset = 6
    public static let hopLimitOffset = 7
    public static let sourceOffset = 8
    public static let destinationOffset = 24

    public static let hopByHopOptions: UInt8 = 0
    public static let routing: UInt8 = 43
    public static let fragment: UInt8 = 44
    public static let destinationOptions: UInt8 = 60
    /// Fragment header: offset (13 bits, in 8-byte units) and the M flag, in its third and fourth bytes.
    public static let fragmentOffsetMask: UInt16 = 0xFFF8
    public static let moreFragmentsBit: UInt16 = 0x0001

    /// Extension headers walked before the transport header, at most: enough for every header
    /// RFC 8200 §4.1 recommends at most once each before an upper layer, and a bound the kernel
    /// filter's unrolled walk shares.
    public static let extensionHeaderLimit = 4

    @inlinable @inline(__always)
    public static func isExtensionHeader(_ number: UInt8) -> Bool {
        number == hopByHopOptions || number == routing || number == fragment || number == destinationOptions
    }
}

/// ICMPv6 header layout (RFC 4443): type, code, checksum, four bytes that depend on the type (the
/// MTU of "packet too big"), then the quoted packet of an error.
public enum ICMPv6Header {
    public static let protocolNumber: UInt8 = 58
    public static let length = 8
    public static let checksumOffset = 2
    public static let destinationUnreachable: UInt8 = 1
    public static let packetTooBig: UInt8 = 2
    public static let timeExceeded: UInt8 = 3
    public static let neighborSolicitation: UInt8 = 135
    public static let neighborAdvertisement: UInt8 = 136
}
