/// Builds Ethernet frames for tests and the load generator: a fluent description of a packet,
/// with switches to break it in each of the ways a frame from the wire can be broken.
///
///     let syn = PacketBuilder()
///         .ethernet(from: clientMAC, to: vipMAC)
///         .ipv4(from: client, to: vip)
///         .tcp(sourcePort: 40000, destinationPort: 80, flags: .syn)
///         .build()
public struct PacketBuilder: Sendable {
    public enum Transport: Sendable {
        case tcp(sourcePort: UInt16, destinationPort: UInt16, flags: TCPFlags, sequence: UInt32, acknowledgment: UInt32)
        case udp(sourcePort: UInt16, destinationPort: UInt16)
        /// Any other IP protocol number with no header of its own (e.g. 1 for a bare ICMP body).
        case other(protocolNumber: UInt8)
    }

    public var ethernetDestination = MACAddress(rawValue: 0x02_00_00_00_00_01)
    public var ethernetSource = MACAddress(rawValue: 0x02_00_00_00_00_02)
    public var vlanID: UInt16?
    public var etherTypeOverride: UInt16?
    public var source = IPv4Address(198, 18, 1, 10)
    public var destination = IPv4Address(198, 18, 0, 100)
    public var ttl: UInt8 = 64
    public var ipOptions: [UInt8] = []
    public var fragmentField: UInt16 = IPv4Header.dontFragmentBit
    /// Set (both): the packet is IPv6, from and to these, with `ttl` as its hop limit.
    public var source6: IPv6Address?
    public var destination6: IPv6Address?
    /// IPv6 extension headers, in order: each one's number and its bytes after the next-header
    /// byte (which the builder fills in).
    public var extensionHeaders: [(number: UInt8, body: [UInt8])] = []
    public var transport = Transport.tcp(sourcePort: 40000, destinationPort: 80, flags: .syn, sequence: 1, acknowledgment: 0)
    public var tcpOptions: [UInt8] = []
    public var payload: [UInt8] = []
    // Deliberate damage, for malformed-frame fixtures.
    public var versionOverride: UInt8?
    public var headerLengthWordsOverride: UInt8?
    public var totalLengthOverride: UInt16?
    public var tcpDataOffsetWordsOverride: UInt8?
    public var udpLengthOverride: UInt16?
    public var truncatedLength: Int?
    /// Zero bytes appended after the IP packet, as Ethernet pads short frames to 60 bytes.
    public var trailerPadding = 0
    /// Leave the TCP/UDP checksum as a sender with checksum offload does: only the pseudo-header
    /// sum in the field, for the NIC (or the receiver) to complete.
    public var transportChecksumLeftToOffload = false

    public init() {}

    public func ethernet(from source: MACAddress, to destination: MACAddress, vlanID: UInt16? = nil) -> Self {
        var copy = self
        copy.ethernetSource = source
        copy.ethernetDestination = destination
        copy.vlanID = vlanID
        return copy
    }

    public func ipv4(from source: IPv4Address, to destination: IPv4Address, ttl: UInt8 = 64, options: [UInt8] = []) -> Self {
        var copy = self
        copy.source = source
        copy.destination = destination
        copy.ttl = ttl
        copy.ipOptions = options
        return copy
    }

    public func ipv6(from source: IPv6Address, to destination: IPv6Address, hopLimit: UInt8 = 64,
                     extensionHeaders: [(number: UInt8, body: [UInt8])] = []) -> Self {
        var copy = self
        copy.source6 = source
        copy.destination6 = destination
        copy.ttl = hopLimit
        copy.extensionHeaders = extensionHeaders
        return copy
    }

    public func tcp(sourcePort: UInt16, destinationPort: UInt16, flags: TCPFlags, sequence: UInt32 = 1, acknowledgment: UInt32 = 0) -> Self {
        var copy = self
        copy.transport = .tcp(sourcePort: sourcePort, destinationPort: destinationPort, flags: flags, sequence: sequence, acknowledgment: acknowledgment)
        return copy
    }

    public func udp(sourcePort: UInt16, destinationPort: UInt16) -> Self {
        var copy = self
        copy.transport = .udp(sourcePort: sourcePort, destinationPort: destinationPort)
        return copy
    }

    public func payload(_ bytes: [UInt8]) -> Self {
        var copy = self
        copy.payload = bytes
        return copy
    }

    public func with(_ change: (inout Self) -> Void) -> Self {
        var copy = self
        change(&copy)
        return copy
    }

    public func build() -> [UInt8] {
        var frame: [UInt8] = []
        frame.reserveCapacity(64 + payload.count)
        frame += ethernetDestination.octets + ethernetSource.octets
        if let vlanID { frame += bigEndian(EtherType.vlan) + bigEndian(vlanID) }
        frame += bigEndian(etherTypeOverride ?? (source6 == nil ? EtherType.ipv4 : EtherType.ipv6))

        var transportBytes: [UInt8]
        let protocolNumber: UInt8
        switch transport {
        case let .tcp(sourcePort, destinationPort, flags, sequence, acknowledgment):
            protocolNumber = TransportProtocol.tcp.rawValue
            let dataOffsetWords = tcpDataOffsetWordsOverride ?? UInt8((TCPHeader.minimumLength + tcpOptions.count) / 4)
            transportBytes = bigEndian(sourcePort) + bigEndian(destinationPort) + bigEndian(sequence) + bigEndian(acknowledgment)
            transportBytes += [dataOffsetWords << 4, flags.rawValue] + bigEndian(UInt16(65535)) + [0, 0, 0, 0]
            transportBytes += tcpOptions
        case let .udp(sourcePort, destinationPort):
            protocolNumber = TransportProtocol.udp.rawValue
            let length = udpLengthOverride ?? UInt16(UDPHeader.length + payload.count)
            transportBytes = bigEndian(sourcePort) + bigEndian(destinationPort) + bigEndian(length) + [0, 0]
        case let .other(number):
            protocolNumber = number
            transportBytes = []
        }
        transportBytes += payload
        if let source6, let destination6 {
            frame += ipv6Packet(from: source6, to: destination6, protocolNumber: protocolNumber, transportBytes)
            frame += [UInt8](repeating: 0, count: trailerPadding)
            if let truncatedLength { frame = Array(frame.prefix(truncatedLength)) }
            return frame
        }

        let headerLength = IPv4Header.minimumLength + ipOptions.count
        let totalLength = totalLengthOverride ?? UInt16(headerLength + transportBytes.count)
        var ip: [UInt8] = [((versionOverride ?? 4) << 4) | (headerLengthWordsOverride ?? UInt8(headerLength / 4)), 0]
        ip += bigEndian(totalLength) + bigEndian(UInt16(0x1234)) + bigEndian(fragmentField)
        ip += [ttl, protocolNumber, 0, 0] + bigEndian(source.rawValue) + bigEndian(destination.rawValue) + ipOptions
        let ipChecksum = ip.withUnsafeBytes { InternetChecksum.checksum($0.bytes) }
        ip[10] = UInt8(ipChecksum >> 8)
        ip[11] = UInt8(ipChecksum & 0xFF)

        if protocolNumber == TransportProtocol.tcp.rawValue || protocolNumber == TransportProtocol.udp.rawValue {
            let checksumOffset = protocolNumber == TransportProtocol.tcp.rawValue ? TCPHeader.checksumOffset : UDPHeader.checksumOffset
            if transportBytes.count >= checksumOffset + 2 {
                let pseudo = bigEndian(source.rawValue) + bigEndian(destination.rawValue)
                    + [0, protocolNumber] + bigEndian(UInt16(transportBytes.count))
                let pseudoSum = pseudo.withUnsafeBytes { InternetChecksum.sum($0.bytes) }
                var value = transportBytes.withUnsafeBytes { InternetChecksum.checksum($0.bytes, initial: pseudoSum) }
                if protocolNumber == TransportProtocol.udp.rawValue && value == 0 { value = 0xFFFF }
                if transportChecksumLeftToOffload { value = UInt16(pseudoSum) }
                transportBytes[checksumOffset] = UInt8(value >> 8)
                transportBytes[checksumOffset + 1] = UInt8(value & 0xFF)
            }
        }
        frame += ip + transportBytes
        frame += [UInt8](repeating: 0, count: trailerPadding)
        if let truncatedLength { frame = Array(frame.prefix(truncatedLength)) }
        return frame
    }

    /// The IPv6 header, the extension headers, and the transport bytes with their checksum
    /// (TCP, UDP, ICMPv6: all cover the pseudo-header).
    private func ipv6Packet(from source: IPv6Address, to destination: IPv6Address, protocolNumber: UInt8, _ transport: [UInt8]) -> [UInt8] {
        var transportBytes = transport
        let checksumOffset: Int? = switch protocolNumber {
        case TransportProtocol.tcp.rawValue: TCPHeader.checksumOffset
        case TransportProtocol.udp.rawValue: UDPHeader.checksumOffset
        case ICMPv6Header.protocolNumber: ICMPv6Header.checksumOffset
        default: nil
        }
        if let checksumOffset, transportBytes.count >= checksumOffset + 2 {
            let pseudoSum = InternetChecksum.pseudoHeaderSum(source: source, destination: destination,
                                                             length: UInt32(transportBytes.count), nextHeader: protocolNumber)
            var value = transportBytes.withUnsafeBytes { InternetChecksum.checksum($0.bytes, initial: pseudoSum) }
            if protocolNumber == TransportProtocol.udp.rawValue && value == 0 { value = 0xFFFF }
            if transportChecksumLeftToOffload { value = UInt16(pseudoSum) }
            transportBytes[checksumOffset] = UInt8(value >> 8)
            transportBytes[checksumOffset + 1] = UInt8(value & 0xFF)
        }
        var chain: [UInt8] = []
        for (index, header) in extensionHeaders.enumerated() {
            let next = index + 1 < extensionHeaders.count ? extensionHeaders[index + 1].number : protocolNumber
            chain += [next] + header.body
        }
        let payloadLength = totalLengthOverride ?? UInt16(chain.count + transportBytes.count)
        var header: [UInt8] = [(versionOverride ?? 6) << 4, 0, 0, 0] + bigEndian(payloadLength)
        header += [extensionHeaders.first?.number ?? protocolNumber, ttl] + source.octets + destination.octets
        return header + chain + transportBytes
    }

    private func bigEndian(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }
    private func bigEndian(_ value: UInt32) -> [UInt8] { [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)] }
}

extension PacketBuilder {
    /// An ARP request "who has `target`? tell `sender`", broadcast.
    public static func arpRequest(from senderMAC: MACAddress, senderAddress: IPv4Address, for target: IPv4Address, vlanID: UInt16? = nil) -> [UInt8] {
        var frame = [UInt8](repeating: 0, count: ARPCodec.frameLength(vlanID: vlanID))
        frame.withUnsafeMutableBytes { buffer in
            var span = buffer.mutableBytes
            _ = ARPCodec.write(operation: .request, into: &span, ethernetDestination: .broadcast, ethernetSource: senderMAC,
                               vlanID: vlanID, senderMAC: senderMAC, senderAddress: senderAddress,
                               targetMAC: .zero, targetAddress: target)
        }
        return frame
    }
}
