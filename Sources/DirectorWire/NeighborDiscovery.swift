/// Neighbor Discovery for IPv6 (RFC 4861), the part a director needs: answering a solicitation
/// for a virtual address (or the NAT gateway's) with an advertisement, and announcing one
/// unsolicited when it takes the address over, as ARP replies and gratuitous ARP do for IPv4.
public enum NeighborDiscovery {
    /// ICMPv6 header (4 bytes), reserved or flags (4), target address (16).
    public static let solicitationLength = 24
    public static let targetOffset = 8
    public static let sourceLinkLayerOption: UInt8 = 1
    public static let targetLinkLayerOption: UInt8 = 2
    /// An advertisement with its Target Link-Layer Address option (8 bytes); a solicitation
    /// with its Source Link-Layer Address option is as long.
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
        writeMessage(into: &frame, ethernetDestination: ethernetDestination, ethernetSource: ethernetSource, vlanID: vlanID,
                     source: source, destination: destination, type: ICMPv6Header.neighborAdvertisement,
                     flags: overrideFlag | (solicited ? solicitedFlag : 0), target: target, option: targetLinkLayerOption, mac: mac)
    }

    /// The advertisement answering `solicitation` for an address this host holds at `mac`.
    public static func answer(_ solicitation: NeighborSolicitation, into frame: inout MutableRawSpan, mac: MACAddress) -> Int? {
        let fromUnspecified = solicitation.source == .zero
        return writeAdvertisement(
            into: &frame, ethernetDestination: fromUnspecified ? allNodes.multicastMAC : (solicitation.sourceLinkLayerAddress ?? solicitation.sourceMAC),
            ethernetSource: mac, vlanID: solicitation.vlanID, source: solicitation.target,
            destination: fromUnspecified ? allNodes : solicitation.source, target: solicitation.target, mac: mac, solicited: !fromUnspecified)
    }

    public static let solicitationWithOptionLength = advertisementLength

    /// Bytes a solicitation frame needs.
    public static func solicitationFrameLength(vlanID: UInt16?) -> Int {
        EthernetHeader.length(vlanID: vlanID) + IPv6Header.length + solicitationWithOptionLength
    }

    /// Writes the solicitation "who has `target`? tell `source` at `mac`" to the target's
    /// solicited-node address and returns its length, or nil if it does not fit. `source` must
    /// be an address of the sending interface (its link-local one will do): the answer comes to it.
    public static func writeSolicitation(into frame: inout MutableRawSpan, mac: MACAddress, vlanID: UInt16? = nil,
                                         source: IPv6Address, target: IPv6Address) -> Int? {
        let destination = target.solicitedNodeMulticast
        return writeMessage(into: &frame, ethernetDestination: destination.multicastMAC, ethernetSource: mac, vlanID: vlanID,
                            source: source, destination: destination, type: ICMPv6Header.neighborSolicitation, flags: 0,
                            target: target, option: sourceLinkLayerOption, mac: mac)
    }

    /// Both messages the director sends have one layout (RFC 4861 §4.3, §4.4): type, code,
    /// checksum, flags (reserved in a solicitation), the target, and one link-layer address
    /// option of 8 bytes; 32 bytes after the IPv6 header, sent with hop limit 255.
    private static func writeMessage(
        into frame: inout MutableRawSpan, ethernetDestination: MACAddress, ethernetSource: MACAddress, vlanID: UInt16?,
        source: IPv6Address, destination: IPv6Address, type: UInt8, flags: UInt32, target: IPv6Address, option: UInt8, mac: MACAddress
    ) -> Int? {
        let total = EthernetHeader.length(vlanID: vlanID) + IPv6Header.length + advertisementLength
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
        frame.storeBytes(of: type, toByteOffset: icmp, as: UInt8.self)
        frame.storeBytes(of: UInt8(0), toByteOffset: icmp + 1, as: UInt8.self)
        frame.storeBigEndian(UInt16(0), at: icmp + ICMPv6Header.checksumOffset)
        frame.storeBigEndian(flags, at: icmp + 4)
        frame.storeIPv6Address(target, at: icmp + targetOffset)
        frame.storeBytes(of: option, toByteOffset: icmp + 24, as: UInt8.self)
        frame.storeBytes(of: UInt8(1), toByteOffset: icmp + 25, as: UInt8.self)
        frame.storeMACAddress(mac, at: icmp + 26)
        let pseudo = InternetChecksum.pseudoHeaderSum(source: source, destination: destination, length: UInt32(advertisementLength),
                                                      nextHeader: ICMPv6Header.protocolNumber)
        let checksum = InternetChecksum.checksum(frame.bytes.extracting(icmp..<(icmp + advertisementLength)), initial: pseudo)
        frame.storeBigEndian(checksum, at: icmp + ICMPv6Header.checksumOffset)
        return total
    }

    /// The target and link-layer address a valid advertisement (RFC 4861 §7.1.2) in `frame`
    /// announces: its Target Link-Layer Address option, or the frame's source MAC without one.
    /// nil for anything else: another frame, extension headers, a hop limit below 255, a code,
    /// a wrong checksum, a multicast target, an option of length zero, a group MAC.
    public static func advertisement(in frame: RawSpan) -> (target: IPv6Address, mac: MACAddress)? {
        guard frame.byteCount >= EthernetHeader.length else { return nil }
        var network = EthernetHeader.etherTypeOffset
        if frame.bigEndianUInt16(at: network) == EtherType.vlan {
            network += EthernetHeader.vlanTagLength
            guard frame.byteCount >= network + 2 else { return nil }
        }
        guard frame.bigEndianUInt16(at: network) == EtherType.ipv6 else { return nil }
        network += 2
        let icmp = network + IPv6Header.length
        guard frame.byteCount >= icmp + solicitationLength, frame.byte(at: network) >> 4 == 6,
              frame.byte(at: network + IPv6Header.nextHeaderOffset) == ICMPv6Header.protocolNumber,
              frame.byte(at: network + IPv6Header.hopLimitOffset) == hopLimit,
              frame.byte(at: icmp) == ICMPv6Header.neighborAdvertisement, frame.byte(at: icmp + 1) == 0 else { return nil }
        let length = Int(frame.bigEndianUInt16(at: network + IPv6Header.payloadLengthOffset))
        guard length >= solicitationLength, frame.byteCount >= icmp + length else { return nil }
        let pseudo = InternetChecksum.pseudoHeaderSum(source: frame.ipv6Address(at: network + IPv6Header.sourceOffset),
                                                      destination: frame.ipv6Address(at: network + IPv6Header.destinationOffset),
                                                      length: UInt32(length), nextHeader: ICMPv6Header.protocolNumber)
        guard InternetChecksum.sum(frame.extracting(icmp..<(icmp + length)), initial: pseudo) == 0xFFFF else { return nil }
        let target = frame.ipv6Address(at: icmp + targetOffset)
        guard !target.isMulticast else { return nil }
        var mac = frame.macAddress(at: EthernetHeader.sourceOffset)
        var option = icmp + solicitationLength
        let end = icmp + length
        while end - option >= 2 {
            let optionLength = Int(frame.byte(at: option + 1)) * 8
            guard optionLength > 0, end - option >= optionLength else { return nil }
            if frame.byte(at: option) == targetLinkLayerOption, optionLength >= 8 { mac = frame.macAddress(at: option + 2) }
            option += optionLength
        }
        guard !mac.isGroup, mac != .zero else { return nil }
        return (target, mac)
    }
}
