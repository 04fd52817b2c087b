/// Neighbor Discovery for IPv6 (RFC 4861), the part a director needs: answering a solicitation
/// for a virtual address (or the NAT gateway's) with an advertisement, and announcing one
/// unsolicited when it takes the address over, as ARP replies and gratuitous ARP do for IPv4.
public enum NeighborDiscovery {
    /// ICMPv6 header (4 bytes), reserved or flags (4), target address (16).
    public static let solicitationLength = 24
    public static let targetOffset = 8
    public static let sourceLinkLayerOption: UInt8 = 1
    public static let targetLinkLayerOption: UInt8 = 2
    /// An advertisement with its Target Link-Layer Address option (8 bytes).
    public static let advertisementLength = 32
    /// The hop limit every Neighbor Discovery message is sent with and must arrive with.
    public static let hopLimit: UInt8 = 255
    public static let allNodes = IPv6Address(high: 0xFF02_0000_0000_0000, low: 1)

    /// Advertisement flags (RFC 4861 §4.4): router, solicited, override.
    public static let solicitedFlag: UInt32 = 0x4000_0000
    public static let overrideFlag: UInt32 = 0x2000_0000

    /// Bytes an advertisement frame needs.
    public static func advertisementFrameLength(vlanID: UInt16?) -> Int {
        EthernetHeader.length(vlanID: vlanID) + IPv6Header.length + advertisementLength
    }

    /// Writes the advertisement "`target` is at `mac`" into `frame` and returns its length, or nil
    /// if it does not fit. Override is always set: the address moves between the directors of a
    /// pair, and a neighbour must take the new MAC at once. An answer to a solicitation from
    /// `::` (duplicate address detection) goes to all nodes, not solicited (§7.2.4).
    public static func writeAdvertisement(
        into frame: inout MutableRawSpan, ethernetDestination: MACAddress, ethernetSource: MACAddress, vlanID: UInt16?,
        source: IPv6Address, destination: IPv6Address, target: IPv6Address, mac: MACAddress, solicited: Bool
    ) -> Int? {
        let total = advertisementFrameLength(vlanID: vlanID)
        guard frame.byteCount >= total else { return nil }
        let network = EthernetHeader.write(into: &frame, destination: ethernetDestination, source: ethernetSource, vlanID: vlanID,
                                           etherType: EtherType.ipv6)
        frame.storeBigEndian(UInt32(0x6000_0000), at: network)
        frame.storeBigEndian(UInt16(advertisementLength), at: network + IPv6Header.payloadLengthOffset)
        frame.storeBytes(of: ICMPv6Header.protocolNumber, toByteOffset: network + IPv6Header.nextHeaderOffset, as: UInt8.self)
        frame.storeBytes(of: hopLimit, toByteOffset: network + IPv6Header.hopLimitOffset, as: UInt8.self)
        frame.storeIPv6Address(source, at: network + IPv6Header.sourceOffset)
        frame.storeIPv6Address(destination, at: network + IPv6Header.destinationOffset)
        let icmp = network + IPv6Header.length
        frame.storeBytes(of: ICMPv6Header.neighborAdvertisement, toByteOffset: icmp, as: UInt8.self)
        frame.storeBytes(of: UInt8(0), toByteOffset: icmp + 1, as: UInt8.self)
        frame.storeBigEndian(UInt16(0), at: icmp + ICMPv6Header.checksumOffset)
        frame.storeBigEndian(overrideFlag | (solicited ? solicitedFlag : 0), at: icmp + 4)
        frame.storeIPv6Address(target, at: icmp + targetOffset)
        frame.storeBytes(of: targetLinkLayerOption, toByteOffset: icmp + 24, as: UInt8.self)
        frame.storeBytes(of: UInt8(1), toByteOffset: icmp + 25, as: UInt8.self)
        frame.storeMACAddress(mac, at: icmp + 26)
        let pseudo = InternetChecksum.pseudoHeaderSum(source: source, destination: destination, length: UInt32(advertisementLength),
                                                      nextHeader: ICMPv6Header.protocolNumber)
        let checksum = InternetChecksum.checksum(frame.bytes.extracting(icmp..<(icmp + advertisementLength)), initial: pseudo)
        frame.storeBigEndian(checksum, at: icmp + ICMPv6Header.checksumOffset)
        return total
    }

    /// The advertisement answering `solicitation` for an address this host holds at `mac`.
    public static func answer(_ solicitation: NeighborSolicitation, into frame: inout MutableRawSpan, mac: MACAddress) -> Int? {
        let fromUnspecified = solicitation.source == .zero
        return writeAdvertisement(
            into: &frame, ethernetDestination: fromUnspecified ? allNodes.multicastMAC : (solicitation.sourceLinkLayerAddress ?? solicitation.sourceMAC),
            ethernetSource: mac, vlanID: solicitation.vlanID, source: solicitation.target,
            destination: fromUnspecified ? allNodes : solicitation.source, target: solicitation.target, mac: mac, solicited: !fromUnspecified)
    }
}
