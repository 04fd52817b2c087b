import CDirectorShim
import DirectorWire
#if canImport(Glibc)
import Glibc
#endif

/// Resolves IPv6 real servers' MAC addresses by Neighbor Discovery on the back interface, from
/// user space: the IPv6 form of `ARPResolver`, for the same reason (the host's neighbour table
/// may never have heard of the servers). Solicitations go to each server's solicited-node
/// address from the interface's link-local address, and the advertisements come back to it.
public struct NeighborResolver: ~Copyable {
    private let socket: Int32
    private let interface: NetworkInterface
    private let source: IPv6Address

    public enum Failure: Error, CustomStringConvertible {
        case noLinkLocalAddress(String)
        case socket(SystemCallError)

        public var description: String {
            switch self {
            case .noLinkLocalAddress(let name):
                "\(name) has no IPv6 link-local address to send Neighbor Solicitations from (is IPv6 disabled on it?); give the IPv6 real servers a mac:"
            case .socket(let error): "\(error)"
            }
        }
    }

    public init(interface: NetworkInterface) throws(Failure) {
        guard let source = NetworkInterface.ipv6LinkLocalAddress(of: interface.name) else { throw .noLinkLocalAddress(interface.name) }
        let context = "opening a Neighbor Discovery socket on \(interface.name)"
        let protocolNumber = UInt16(EtherType.ipv6)
        let fd: Int32
        do throws(SystemCallError) {
            fd = try SystemCall.packetSocket(protocolNumber: protocolNumber, context)
        } catch {
            throw .socket(error)
        }
        do throws(SystemCallError) {
            // Only advertisements are copied to the socket, and the filter is on before the bind
            // lets any frame in: the back may carry every NAT reply of the farm, which would
            // otherwise fill the socket's buffer ahead of the answers.
            let instructions = NeighborResolver.advertisementsOnly()
            try instructions.withUnsafeBufferPointer { (buffer) throws(SystemCallError) in
                let program = sock_fprog(len: UInt16(buffer.count), filter: UnsafeMutablePointer(mutating: buffer.baseAddress))
                try SystemCall.setOption(fd, level: SOL_SOCKET, name: SO_ATTACH_FILTER, program, "filtering \(context)")
            }
            try SystemCall.bindPacketSocket(fd, interfaceIndex: interface.index, protocolNumber: protocolNumber, context)
        } catch {
            close(fd)
            throw .socket(error)
        }
        socket = fd
        self.interface = interface
        self.source = source
    }

    deinit { close(socket) }

    /// Classic BPF: IPv6 whose next header is ICMPv6 and whose ICMPv6 type is a Neighbor
    /// Advertisement (an advertisement behind extension headers is not a valid one, RFC 4861).
    static func advertisementsOnly() -> [sock_filter] {
        var program = ClassicBPF()
        let net = ClassicBPF.networkOffset
        program.statement(BPF_LD | BPF_H | BPF_ABS, ClassicBPF.ancillaryProtocol)
        program.jump(BPF_JEQ, UInt32(EtherType.ipv6), whenTrue: .next, whenFalse: .label("drop"))
        program.statement(BPF_LD | BPF_B | BPF_ABS, net &+ UInt32(IPv6Header.nextHeaderOffset))
        program.jump(BPF_JEQ, UInt32(ICMPv6Header.protocolNumber), whenTrue: .next, whenFalse: .label("drop"))
        program.statement(BPF_LD | BPF_B | BPF_ABS, net &+ UInt32(IPv6Header.length))
        program.jump(BPF_JEQ, UInt32(ICMPv6Header.neighborAdvertisement), whenTrue: .next, whenFalse: .label("drop"))
        program.statement(BPF_RET | BPF_K, 0xFFFF_FFFF)
        program.label("drop")
        program.statement(BPF_RET | BPF_K, 0)
        return program.assemble()
    }

    /// Asks for each address (`attempts` rounds, `timeoutMilliseconds` per round) and returns
    /// the MACs that answered.
    public func resolve(_ addresses: [IPv6Address], attempts: Int = 3, timeoutMilliseconds: Int = 200) -> [IPv6Address: MACAddress] {
        var found: [IPv6Address: MACAddress] = [:]
        let wanted = Set(addresses)
        var frame = [UInt8](repeating: 0, count: NeighborDiscovery.solicitationFrameLength(vlanID: nil))
        for _ in 0..<attempts {
            let missing = addresses.filter { found[$0] == nil }
            if missing.isEmpty { break }
            for address in missing {
                let length = frame.withUnsafeMutableBytes { buffer in
                    var span = buffer.mutableBytes
                    return NeighborDiscovery.writeSolicitation(into: &span, mac: interface.mac, source: source, target: address)
                }
                guard let length else { continue }
                _ = frame.withUnsafeBytes { send(socket, $0.baseAddress, length, 0) }
            }
            SystemCall.receiveFrames(on: socket, forMilliseconds: timeoutMilliseconds) { frame in
                if let answer = NeighborDiscovery.advertisement(in: frame), wanted.contains(answer.target) { found[answer.target] = answer.mac }
                return found.count == wanted.count
            }
        }
        return found
    }
}
