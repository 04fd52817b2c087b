import DirectorWire

/// Direct routing (LVS-DR): the frame goes to the real server unchanged but for its Ethernet
/// addresses. The real server holds the VIP on a loopback interface and answers the client
/// directly, so nothing at layer 3 or 4 is touched and no checksum changes.
public enum DirectRouting {
    @inlinable @inline(__always)
    public static func rewrite(_ frame: inout MutableRawSpan, to realServer: MACAddress, from backInterface: MACAddress) {
        frame.storeMACAddress(realServer, at: EthernetHeader.destinationOffset)
        frame.storeMACAddress(backInterface, at: EthernetHeader.sourceOffset)
    }
}
