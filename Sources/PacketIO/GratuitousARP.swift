import DirectorWire

/// Gratuitous ARP: announces that the virtual addresses are at the virtual MAC, so switches
/// and neighbours learn where they went when the surviving dispatcher takes them over.
public enum GratuitousARP {
    /// RFC 5227 §3: an ARP request whose sender and target are both the announced address.
    public static func frames(for addresses: [IPv4Address], at mac: MACAddress) -> [[UInt8]] {
        addresses.map { PacketBuilder.arpRequest(from: mac, senderAddress: $0, for: $0) }
    }

    /// Sends the announcements through `socket`, a packet socket bound to the front interface (a
    /// worker's receive socket): no socket is opened for it, since closing a packet socket waits
    /// for an RCU grace period, milliseconds the sync thread must not spend. Returns how many
    /// the kernel took.
    @discardableResult
    public static func announce(_ addresses: [IPv4Address], at mac: MACAddress, through socket: Int32) -> Int {
        frames(for: addresses, at: mac).filter { frame in frame.withUnsafeBytes { PacketReceiveRing.send($0.bytes, on: socket) } }.count
    }
}
