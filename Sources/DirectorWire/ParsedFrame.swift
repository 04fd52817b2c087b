/// What the parser found in a frame. Every case is a plain value: parsing allocates nothing.
public enum ParsedFrame: Sendable, Equatable {
    /// An IPv4 TCP or UDP packet with its flow identity.
    case ipv4(IPv4Flow)
    /// An Ethernet/IPv4 ARP request or reply.
    case arp(ARPMessage)
    /// An ICMP error (destination unreachable, fragmentation needed, time exceeded) about a TCP
    /// or UDP packet, whose quoted headers say which flow it is about.
    case icmpError(ICMPError)
    /// An IPv6 TCP or UDP packet (or the first fragment of one) with its flow identity.
    case ipv6(IPv6Flow)
    /// An ICMPv6 error (destination unreachable, packet too big, time exceeded) about a TCP or
    /// UDP packet.
    case icmpv6Error(ICMPv6Error)
    /// A Neighbor Solicitation (IPv6's "who has?", RFC 4861 §4.3).
    case neighborSolicitation(NeighborSolicitation)
    /// Well-formed, but nothing the director handles (other EtherTypes, other ICMP…).
    case passedOver(PassOverReason)
    /// Broken: counted by reason and dropped.
    case malformed(MalformedReason)
}

/// The fields of an IPv4 TCP/UDP frame the data path needs, in host byte order.
public struct IPv4Flow: Sendable, Equatable {
    public var destinationMAC: MACAddress
    public var sourceMAC: MACAddress
    /// The VLAN ID of an in-frame 802.1Q tag, if there was one.
    public var vlanID: UInt16?
    /// Offset of the IPv4 header in the frame.
    public var networkOffset: Int
    /// Offset of the TCP/UDP header in the frame.
    public var transportOffset: Int
    public var source: IPv4Address
    public var destination: IPv4Address
    public var transport: TransportProtocol
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    /// TCP control bits; empty for UDP.
    public var tcpFlags: TCPFlags
    /// Bytes of the IPv4 packet (its total length); the frame may carry Ethernet padding after it.
    public var packetLength: Int
    public var timeToLive: UInt8
}

/// The fields of an IPv6 TCP/UDP frame the data path needs, in host byte order.
public struct IPv6Flow: Sendable, Equatable {
    public var destinationMAC: MACAddress
    public var sourceMAC: MACAddress
    public var vlanID: UInt16?
    /// Offset of the IPv6 header in the frame.
    public var networkOffset: Int
    /// Offset of the TCP/UDP header, after any extension headers.
    public var transportOffset: Int
    public var source: IPv6Address
    public var destination: IPv6Address
    public var transport: TransportProtocol
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var tcpFlags: TCPFlags
    /// Bytes of the IPv6 packet: the fixed header and its payload length.
    public var packetLength: Int
    public var hopLimit: UInt8
    /// The first fragment of a larger packet (a Fragment header with offset 0 and more to come).
    public var isFirstFragment: Bool
}

/// An ICMPv6 error about a TCP or UDP packet (RFC 4443): where its parts are, and the quoted
/// packet's addresses and ports. Only a quoted packet whose TCP or UDP header follows its fixed
/// header directly is understood (no extension headers in the quote).
///
/// Kept small: `ParsedFrame` is as large as its largest case, and every frame's parse returns
/// one; past about 128 bytes the copy becomes a `memcpy` call per frame (callgrind: 58
/// instructions a frame). So offsets are stored in 16 bits and the outer addresses are not
/// stored (`outerSource(in:)` reads them when needed).
public struct ICMPv6Error: Sendable, Equatable {
    public var destinationMAC: MACAddress
    public var sourceMAC: MACAddress
    public var vlanID: UInt16?
    public var type: UInt8
    public var code: UInt8
    public var quotedTransport: TransportProtocol
    public var quotedSourcePort: UInt16
    public var quotedDestinationPort: UInt16
    public var quotedSource: IPv6Address
    public var quotedDestination: IPv6Address
    private var storedNetworkOffset: UInt16
    private var storedICMPOffset: UInt16
    private var storedQuotedOffset: UInt16
    private var storedPacketLength: UInt32

    public init(destinationMAC: MACAddress, sourceMAC: MACAddress, vlanID: UInt16?, networkOffset: Int, icmpOffset: Int, packetLength: Int,
                type: UInt8, code: UInt8, quotedOffset: Int, quotedSource: IPv6Address, quotedDestination: IPv6Address,
                quotedTransport: TransportProtocol, quotedSourcePort: UInt16, quotedDestinationPort: UInt16) {
        self.destinationMAC = destinationMAC
        self.sourceMAC = sourceMAC
        self.vlanID = vlanID
        self.type = type
        self.code = code
        self.quotedTransport = quotedTransport
        self.quotedSourcePort = quotedSourcePort
        self.quotedDestinationPort = quotedDestinationPort
        self.quotedSource = quotedSource
        self.quotedDestination = quotedDestination
        storedNetworkOffset = UInt16(truncatingIfNeeded: networkOffset)
        storedICMPOffset = UInt16(truncatingIfNeeded: icmpOffset)
        storedQuotedOffset = UInt16(truncatingIfNeeded: quotedOffset)
        storedPacketLength = UInt32(truncatingIfNeeded: packetLength)
    }

    /// Offset of the outer IPv6 header.
    public var networkOffset: Int { Int(storedNetworkOffset) }
    /// Offset of the ICMPv6 header.
    public var icmpOffset: Int { Int(storedICMPOffset) }
    /// Bytes of the outer IPv6 packet.
    public var packetLength: Int { Int(storedPacketLength) }
    /// Offset of the quoted IPv6 header.
    public var quotedOffset: Int { Int(storedQuotedOffset) }
    /// Offset of the quoted transport header (its ports).
    public var quotedTransportOffset: Int { quotedOffset + IPv6Header.length }

    public func outerSource(in frame: RawSpan) -> IPv6Address { frame.ipv6Address(at: networkOffset + IPv6Header.sourceOffset) }
    public func outerDestination(in frame: RawSpan) -> IPv6Address { frame.ipv6Address(at: networkOffset + IPv6Header.destinationOffset) }
}

/// A Neighbor Solicitation (RFC 4861 §4.3) that passed the checks of §7.1.1: hop limit 255,
/// code 0, at least 24 bytes, options of non-zero length.
public struct NeighborSolicitation: Sendable, Equatable {
    public var destinationMAC: MACAddress
    public var sourceMAC: MACAddress
    public var vlanID: UInt16?
    /// `::` for duplicate address detection.
    public var source: IPv6Address
    public var destination: IPv6Address
    public var target: IPv6Address
    /// The Source Link-Layer Address option, if the solicitation carries one.
    public var sourceLinkLayerAddress: MACAddress?
}

/// An ICMP error message about a TCP or UDP packet (RFC 792; RFC 1191 for "fragmentation
/// needed"): the outer packet's fields, and the quoted packet's addresses and ports, which it
/// carries at least up to its ports (RFC 792's 64 bits of data).
public struct ICMPError: Sendable, Equatable {
    public var destinationMAC: MACAddress
    public var sourceMAC: MACAddress
    public var vlanID: UInt16?
    /// Offset of the outer IPv4 header in the frame.
    public var networkOffset: Int
    /// Offset of the ICMP header.
    public var icmpOffset: Int
    /// Bytes of the outer IPv4 packet.
    public var packetLength: Int
    public var source: IPv4Address
    public var destination: IPv4Address
    public var type: UInt8
    public var code: UInt8
    /// Offset of the quoted IPv4 header.
    public var quotedOffset: Int
    /// Offset of the quoted transport header (its ports).
    public var quotedTransportOffset: Int
    public var quotedSource: IPv4Address
    public var quotedDestination: IPv4Address
    public var quotedTransport: TransportProtocol
    public var quotedSourcePort: UInt16
    public var quotedDestinationPort: UInt16
}

/// An ARP message for Ethernet and IPv4 (RFC 826).
public struct ARPMessage: Sendable, Equatable {
    public enum Operation: UInt16, Sendable { case request = 1, reply = 2 }
    public var operation: Operation
    public var destinationMAC: MACAddress
    public var vlanID: UInt16?
    public var senderMAC: MACAddress
    public var senderAddress: IPv4Address
    public var targetMAC: MACAddress
    public var targetAddress: IPv4Address
}

/// Frames that are well formed but not the director's business. Counted, then left alone.
public enum PassOverReason: Int, CaseIterable, Sendable {
    case ipv6
    case otherEtherType
    case otherIPProtocol
    case unsupportedARP

    public var name: String {
        switch self {
        case .ipv6: "ipv6"
        case .otherEtherType: "other_ethertype"
        case .otherIPProtocol: "other_ip_protocol"
        case .unsupportedARP: "unsupported_arp"
        }
    }
}

/// Every way a frame from the wire can be broken. Each is a counter; none is a crash.
public enum MalformedReason: Int, CaseIterable, Sendable {
    case truncatedEthernet
    case truncatedVLANTag
    case truncatedIPv4Header
    case badIPVersion
    case badIPv4HeaderLength
    case totalLengthBeyondFrame
    case totalLengthBelowHeader
    case fragment
    case truncatedTCPHeader
    case badTCPDataOffset
    case truncatedUDPHeader
    case badUDPLength
    case truncatedARP
    /// An ICMP error too short for its header and the quoted header and ports.
    case truncatedICMPError
    case truncatedIPv6Header
    /// An IPv6 extension header that runs past the packet's end.
    case truncatedExtensionHeader
    /// More IPv6 extension headers than `IPv6Header.extensionHeaderLimit` before the transport
    /// header (the kernel filter walks as many, no more).
    case tooManyExtensionHeaders
    /// A Neighbor Discovery message that fails RFC 4861's validity checks.
    case invalidNeighborDiscovery

    public var name: String {
        switch self {
        case .truncatedEthernet: "truncated_ethernet"
        case .truncatedVLANTag: "truncated_vlan_tag"
        case .truncatedIPv4Header: "truncated_ipv4_header"
        case .badIPVersion: "bad_ip_version"
        case .badIPv4HeaderLength: "bad_ipv4_header_length"
        case .totalLengthBeyondFrame: "total_length_beyond_frame"
        case .totalLengthBelowHeader: "total_length_below_header"
        case .fragment: "fragment"
        case .truncatedTCPHeader: "truncated_tcp_header"
        case .badTCPDataOffset: "bad_tcp_data_offset"
        case .truncatedUDPHeader: "truncated_udp_header"
        case .badUDPLength: "bad_udp_length"
        case .truncatedARP: "truncated_arp"
        case .truncatedICMPError: "truncated_icmp_error"
        case .truncatedIPv6Header: "truncated_ipv6_header"
        case .truncatedExtensionHeader: "truncated_extension_header"
        case .tooManyExtensionHeaders: "too_many_extension_headers"
        case .invalidNeighborDiscovery: "invalid_neighbor_discovery"
        }
    }
}
