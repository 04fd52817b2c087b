/// ARP for Ethernet and IPv4 (RFC 826): parsing requests and replies, and writing the reply the
/// director sends for a virtual address.
public enum ARPCodec {
    /// htype(2) ptype(2) hlen(1) plen(1) oper(2) sha(6) spa(4) tha(6) tpa(4)
    public static let length = 28

    static func parse(_ frame: RawSpan, offset: Int, destinationMAC: MACAddress, vlanID: UInt16?) -> ParsedFrame {
        guard frame.byteCount - offset >= length else { return .malformed(.truncatedARP) }
        guard frame.bigEndianUInt16(at: offset) == 1,                  // Ethernet
              frame.bigEndianUInt16(at: offset + 2) == EtherType.ipv4,
              frame.byte(at: offset + 4) == 6, frame.byte(at: offset + 5) == 4,
              let operation = ARPMessage.Operation(rawValue: frame.bigEndianUInt16(at: offset + 6))
        else { return .passedOver(.unsupportedARP) }
        return .arp(ARPMessage(
            operation: operation,
            destinationMAC: destinationMAC,
            vlanID: vlanID,
            senderMAC: frame.macAddress(at: offset + 8),
            senderAddress: IPv4Address(rawValue: frame.bigEndianUInt32(at: offset + 14)),
            targetMAC: frame.macAddress(at: offset + 18),
            targetAddress: IPv4Address(rawValue: frame.bigEndianUInt32(at: offset + 24))))
    }

    /// Bytes an ARP frame needs (Ethernet header, optional tag, ARP body), before padding.
    public static func frameLength(vlanID: UInt16?) -> Int {
        EthernetHeader.length(vlanID: vlanID) + length
    }

    /// Writes an ARP frame into `frame` and returns its length, or nil if it does not fit.
    public static func write(
        operation: ARPMessage.Operation, into frame: inout MutableRawSpan,
        ethernetDestination: MACAddress, ethernetSource: MACAddress, vlanID: UInt16?,
        senderMAC: MACAddress, senderAddress: IPv4Address, targetMAC: MACAddress, targetAddress: IPv4Address
    ) -> Int? {
        let total = frameLength(vlanID: vlanID)
        guard frame.byteCount >= total else { return nil }
        let offset = EthernetHeader.write(into: &frame, destination: ethernetDestination, source: ethernetSource, vlanID: vlanID,
                                          etherType: EtherType.arp)
        frame.storeBigEndian(UInt16(1), at: offset)
        frame.storeBigEndian(EtherType.ipv4, at: offset + 2)
        frame.storeBytes(of: UInt8(6), toByteOffset: offset + 4, as: UInt8.self)
        frame.storeBytes(of: UInt8(4), toByteOffset: offset + 5, as: UInt8.self)
        frame.storeBigEndian(operation.rawValue, at: offset + 6)
        frame.storeMACAddress(senderMAC, at: offset + 8)
        frame.storeBigEndian(senderAddress.rawValue, at: offset + 14)
        frame.storeMACAddress(targetMAC, at: offset + 18)
        frame.storeBigEndian(targetAddress.rawValue, at: offset + 24)
        return total
    }
}
