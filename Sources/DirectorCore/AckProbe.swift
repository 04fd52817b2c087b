import DirectorWire

/// The segment a new owner sends each client whose connection it took over from a dead peer,
/// so that the client answers at once with an ACK carrying its current window.
///
/// Why: while the peer was dying (the detection time), the client's ACKs and window updates for
/// the peer's flows were lost. A client that has nothing more to say then stays silent, and the
/// real server, waiting for a window update or an acknowledgement, resumes only when its
/// persist or retransmission timer fires (200 ms at the least on Linux). The probe is a bare
/// ACK from the virtual address with a sequence number outside the client's receive window:
/// RFC 793 (and RFC 5961) has the client drop it and reply with an ACK of its current state,
/// which reaches the real server through the new owner straight away. It carries no data and
/// no acceptable sequence number, so it changes nothing in the connection.
public enum AckProbe {
    /// The probe for a connection entry, towards `clientSideMAC` (the next hop the clients' frames
    /// come from), sent as `virtualMAC`.
    public static func frame(for entry: ConnectionEntry<IPv4Address>, from virtualMAC: MACAddress, to clientSideMAC: MACAddress) -> [UInt8] {
        segment(for: entry, PacketBuilder().ethernet(from: virtualMAC, to: clientSideMAC).ipv4(from: entry.key.virtualAddress, to: entry.key.clientAddress))
    }

    /// The probe for an IPv6 connection.
    public static func frame(for entry: ConnectionEntry<IPv6Address>, from virtualMAC: MACAddress, to clientSideMAC: MACAddress) -> [UInt8] {
        segment(for: entry, PacketBuilder().ethernet(from: virtualMAC, to: clientSideMAC).ipv6(from: entry.key.virtualAddress, to: entry.key.clientAddress))
    }

    private static func segment<Address: FlowAddress>(for entry: ConnectionEntry<Address>, _ addressed: PacketBuilder) -> [UInt8] {
        let key = entry.key
        // Half the sequence space away from anything the flow is likely to use.
        let sequence = entry.keyHash &* 0x9E37_79B1 ^ 0x8000_0000
        return addressed.tcp(sourcePort: key.virtualPort, destinationPort: key.clientPort, flags: .ack, sequence: sequence, acknowledgment: 0).build()
    }

    /// Whether a replica's connection is one to probe: TCP, and in a state where data flows.
    public static func applies<Address: FlowAddress>(to entry: ConnectionEntry<Address>) -> Bool {
        entry.isReplica && entry.key.transport == .tcp && (entry.state == .established || entry.state == .closeWait)
    }
}
