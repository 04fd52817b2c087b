import DirectorWire

/// Gratuitous ARP (and its IPv6 form, unsolicited Neighbor Advertisements): announces that the
/// virtual addresses are at the virtual MAC, so switches and neighbours learn where they went
/// when the surviving dispatcher takes them over.
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

    /// RFC 4861 §7.2.6: an advertisement to all nodes, override set, not solicited.
    public static func frames(for addresses: [IPv6Address], at mac: MACAddress) -> [[UInt8]] {
        addresses.compactMap { address in
            var frame = [UInt8](repeating: 0, count: NeighborDiscovery.advertisementFrameLength(vlanID: nil))
            let length = frame.withUnsafeMutableBytes { buffer in
                var span = buffer.mutableBytes
                return NeighborDiscovery.writeAdvertisement(
                    into: &span, ethernetDestination: NeighborDiscovery.allNodes.multicastMAC, ethernetSource: mac, vlanID: nil,
                    source: address, destination: NeighborDiscovery.allNodes, target: address, mac: mac, solicited: false)
            }
            return length == nil ? nil : frame
        }
    }

    /// Sends the IPv6 announcements through `socket`, as `announce` does for IPv4.
    @discardableResult
    public static func announce(_ addresses: [IPv6Address], at mac: MACAddress, through socket: Int32) -> Int {
        frames(for: addresses, at: mac).filter { frame in frame.withUnsafeBytes { PacketReceiveRing.send($0.bytes, on: socket) } }.count
    }
}
