/// EtherType values the director distinguishes (IEEE 802 numbers).
public enum EtherType {
    public static let ipv4: UInt16 = 0x0800
    public static let arp: UInt16 = 0x0806
    public static let vlan: UInt16 = 0x8100
    public static let qinq: UInt16 = 0x88A8
    public static let ipv6: UInt16 = 0x86DD
}

/// Ethernet II header layout.
public enum EthernetHeader {
    public static let length = 14
    public static let destinationOffset = 0
    public static let sourceOffset = 6
    public static let etherTypeOffset = 12
    /// An 802.1Q tag: TPID (0x8100) then 16 bits of PCP/DEI/VID, before the real EtherType.
    public static let vlanTagLength = 4

    /// Bytes of the header, with the tag if there is one.
    public static func length(vlanID: UInt16?) -> Int { length + (vlanID == nil ? 0 : vlanTagLength) }

    /// Writes the header (destination, source, the tag if any, `etherType`) at the frame's start
    /// and returns where the payload begins. The caller has checked that the frame is long enough.
    public static func write(into frame: inout MutableRawSpan, destination: MACAddress, source: MACAddress, vlanID: UInt16?,
                             etherType: UInt16) -> Int {
        frame.storeMACAddress(destination, at: destinationOffset)
        frame.storeMACAddress(source, at: sourceOffset)
        var offset = etherTypeOffset
        if let vlanID {
            frame.storeBigEndian(EtherType.vlan, at: offset)
            frame.storeBigEndian(vlanID & 0x0FFF, at: offset + 2)
            offset += vlanTagLength
        }
        frame.storeBigEndian(etherType, at: offset)
        return offset + 2
    }
}

/// TCP control bits (RFC 9293 §3.1), as found in the 13th byte of the header.
public struct TCPFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let fin = TCPFlags(rawValue: 0x01)
    public static let syn = TCPFlags(rawValue: 0x02)
    public static let rst = TCPFlags(rawValue: 0x04)
    public static let psh = TCPFlags(rawValue: 0x08)
    public static let ack = TCPFlags(rawValue: 0x10)

    /// A client's first segment of a connection: SYN (0x02) without ACK (0x10) or RST (0x04).
    /// Plain numbers: this is asked of every segment of a known flow, and another module's
    /// static constants would each cost a call to their initialiser's guard.
    @inlinable public var isOpening: Bool { rawValue & 0x16 == 0x02 }
}
