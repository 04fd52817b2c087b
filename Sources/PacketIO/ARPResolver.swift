import CDirectorShim
import DirectorWire
#if canImport(Glibc)
import Glibc
#endif

/// Resolves real servers' MAC addresses by ARP on the back interface, from user space.
///
/// The director cannot lean on the host's neighbour table: with its frames hidden from the host
/// stack (and, one-armed, the same interface), the kernel may never have talked to the real
/// servers. A packet socket sees replies before any netdev ingress rule, so this always works.
public struct ARPResolver: ~Copyable {
    private let socket: Int32
    private let interface: NetworkInterface

    public init(interface: NetworkInterface) throws(SystemCallError) {
        let context = "opening an ARP socket on \(interface.name)"
        let fd = try SystemCall.packetSocket(protocolNumber: UInt16(ETH_P_ARP), context)
        do {
            try SystemCall.bindPacketSocket(fd, interfaceIndex: interface.index, protocolNumber: UInt16(ETH_P_ARP), context)
        } catch {
            close(fd)
            throw error
        }
        socket = fd
        self.interface = interface
    }

    deinit { close(socket) }

    /// Asks for each address (broadcast requests, `attempts` rounds, `timeoutMilliseconds` per
    /// round) and returns the MACs that answered.
    public func resolve(_ addresses: [IPv4Address], attempts: Int = 3, timeoutMilliseconds: Int = 200) -> [IPv4Address: MACAddress] {
        var found: [IPv4Address: MACAddress] = [:]
        // RFC 5227: with no address of our own, ask as a probe (sender address 0.0.0.0).
        let sender = interface.ipv4Address ?? IPv4Address(rawValue: 0)
        for _ in 0..<attempts {
            let missing = addresses.filter { found[$0] == nil }
            if missing.isEmpty { break }
            for address in missing {
                let request = PacketBuilder.arpRequest(from: interface.mac, senderAddress: sender, for: address)
                _ = request.withUnsafeBytes { send(socket, $0.baseAddress, $0.count, 0) }
            }
            SystemCall.receiveFrames(on: socket, forMilliseconds: timeoutMilliseconds) { frame in
                if case .arp(let message) = FrameParser.parse(frame), message.operation == .reply, addresses.contains(message.senderAddress),
                   !message.senderMAC.isGroup, message.senderMAC != .zero {
                    found[message.senderAddress] = message.senderMAC
                }
                return found.count == addresses.count
            }
        }
        return found
    }
}
