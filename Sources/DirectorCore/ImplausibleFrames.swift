import DirectorWire

extension IPv4Flow {
    /// Why no honest client could have sent this frame to a virtual service, or nil. Judged from
    /// the headers alone before a flow may make an entry, so that forged traffic of these shapes
    /// costs a lookup and a few comparisons, never an entry here nor a replica on the peer:
    ///
    /// - a group (multicast or broadcast) source MAC: no host sends from one;
    /// - a source address that cannot be a client's (RFC 6890): "this network" 0/8, loopback
    ///   127/8, multicast 224/4, reserved 240/4 and the limited broadcast, or the VIP itself;
    /// - TTL 0: a router never forwards it, a host never sends it;
    /// - port 0 on either side: reserved, no stack connects from or to it;
    /// - TCP control bits no stack sends: none at all; SYN with FIN or RST; SYN+ACK (a client
    ///   never answers a handshake at a listening service); and any segment without ACK other
    ///   than a bare SYN or RST (after the handshake every segment carries ACK, RFC 9293 3.10.7).
    ///
    /// Written on raw integers (no `==` of wrapper types, no `OptionSet` statics): each of those
    /// costs a call across modules, and this runs on every frame without an entry.
    @inlinable @inline(__always)
    public var implausibility: DropReason? {
        if sourceMAC.rawValue & 0x0100_0000_0000 != 0 { return .sourceMACGroup }
        let sourceBits = source.rawValue, firstOctet = sourceBits >> 24
        if firstOctet == 0 || firstOctet == 127 || firstOctet >= 224 || sourceBits == destination.rawValue { return .sourceAddressImpossible }
        if timeToLive == 0 { return .timeToLiveZero }
        return transportImplausibility(sourcePort: sourcePort, destinationPort: destinationPort, transport: transport, tcpFlags: tcpFlags)
    }
}

extension IPv6Flow {
    /// The IPv6 form of `IPv4Flow.implausibility`. A source that cannot be a client's (RFC 4291,
    /// RFC 6890): the unspecified address `::`, loopback `::1`, multicast `ff00::/8`, an
    /// IPv4-mapped address `::ffff:0:0/96` (never on the wire, RFC 4291 §2.5.5.2), or the VIP
    /// itself; hop limit 0 is counted as TTL 0.
    @inlinable @inline(__always)
    public var implausibility: DropReason? {
        if sourceMAC.rawValue & 0x0100_0000_0000 != 0 { return .sourceMACGroup }
        let high = source.high, low = source.low
        if high >> 56 == 0xFF || (high == 0 && (low <= 1 || low >> 32 == 0xFFFF)) || (high == destination.high && low == destination.low) {
            return .sourceAddressImpossible
        }
        if hopLimit == 0 { return .timeToLiveZero }
        return transportImplausibility(sourcePort: sourcePort, destinationPort: destinationPort, transport: transport, tcpFlags: tcpFlags)
    }
}

/// Ports and TCP control bits no stack sends (see `IPv4Flow.implausibility`).
@inlinable @inline(__always)
func transportImplausibility(sourcePort: UInt16, destinationPort: UInt16, transport: TransportProtocol, tcpFlags: TCPFlags) -> DropReason? {
    if sourcePort == 0 || destinationPort == 0 { return .portZero }
    guard case .tcp = transport else { return nil }
    let bits = tcpFlags.rawValue
    let syn: UInt8 = 0x02, rst: UInt8 = 0x04, ack: UInt8 = 0x10
    if bits & ack != 0 ? bits & syn != 0 : (bits != syn && bits != rst) { return .tcpFlagsImpossible }
    return nil
}
