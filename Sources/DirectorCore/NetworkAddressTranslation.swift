import DirectorWire

/// NAT (IPVS's masquerading): a client's frame to VIP:port leaves for the real server's own
/// address and port, and the server's reply, which comes back through a director (the servers'
/// default gateway), leaves for the client from VIP:port again.
///
/// Only the fields that change are written, and the checksums follow incrementally (RFC 1624):
/// the IPv4 header's for the address; the transport checksum for the address (it is in the
/// pseudo-header) and the port. A frame whose sender left its transport checksum to offload
/// (`checksumPending`) holds only the pseudo-header's sum in that field, not yet complemented:
/// the address changes it, the port does not (the port is summed when the checksum is
/// completed), as the kernel's `inet_proto_csum_replace4` does for CHECKSUM_PARTIAL. A UDP
/// datagram sent without a checksum (zero) keeps none.
public enum NetworkAddressTranslation {
    /// In: destination VIP:port → the real server's address:port.
    @inlinable @inline(__always)
    public static func rewriteDestination(_ frame: inout MutableRawSpan, of flow: IPv4Flow, to address: IPv4Address, port: UInt16,
                                          checksumPending: Bool) {
        rewrite(&frame, flow, addressOffset: IPv4Header.destinationOffset, portOffset: 2,
                from: (flow.destination, flow.destinationPort), to: (address, port), checksumPending: checksumPending)
    }

    /// Out: source real server address:port → VIP:port.
    @inlinable @inline(__always)
    public static func rewriteSource(_ frame: inout MutableRawSpan, of flow: IPv4Flow, to address: IPv4Address, port: UInt16,
                                     checksumPending: Bool) {
        rewrite(&frame, flow, addressOffset: IPv4Header.sourceOffset, portOffset: 0,
                from: (flow.source, flow.sourcePort), to: (address, port), checksumPending: checksumPending)
    }

    @inlinable @inline(__always)
    static func rewrite(_ frame: inout MutableRawSpan, _ flow: IPv4Flow, addressOffset: Int, portOffset: Int,
                        from old: (address: IPv4Address, port: UInt16), to new: (address: IPv4Address, port: UInt16),
                        checksumPending: Bool) {
        let network = flow.networkOffset
        let headerChecksum = frame.bigEndianUInt16(at: network + IPv4Header.checksumOffset)
        frame.storeBigEndian(InternetChecksum.updated(headerChecksum, replacing: old.address.rawValue, with: new.address.rawValue),
                             at: network + IPv4Header.checksumOffset)
        frame.storeBigEndian(new.address.rawValue, at: network + addressOffset)
        frame.storeBigEndian(new.port, at: flow.transportOffset + portOffset)

        let field = flow.transportOffset + (flow.transport == .tcp ? TCPHeader.checksumOffset : UDPHeader.checksumOffset)
        let checksum = frame.bigEndianUInt16(at: field)
        if checksumPending {
            // The pseudo-header's sum, uncomplemented: ~(~S + ~m + m') read the other way round.
            frame.storeBigEndian(~InternetChecksum.updated(~checksum, replacing: old.address.rawValue, with: new.address.rawValue), at: field)
            return
        }
        if flow.transport == .udp && checksum == 0 { return }
        var updated = InternetChecksum.updated(checksum, replacing: old.address.rawValue, with: new.address.rawValue)
        updated = InternetChecksum.updated(updated, replacing: old.port, with: new.port)
        // In UDP, zero means "no checksum": a computed zero is sent as all ones (RFC 768).
        if flow.transport == .udp && updated == 0 { updated = 0xFFFF }
        frame.storeBigEndian(updated, at: field)
    }
}

extension NetworkAddressTranslation {
    /// The IPv6 forms: no header checksum, the same transport checksum rules. A UDP datagram
    /// without a checksum (zero, which RFC 6936 allows tunnels) keeps none, as in IPv4.
    @inlinable @inline(__always)
    public static func rewriteDestination(_ frame: inout MutableRawSpan, of flow: IPv6Flow, to address: IPv6Address, port: UInt16,
                                          checksumPending: Bool) {
        rewrite(&frame, flow, addressOffset: IPv6Header.destinationOffset, portOffset: 2,
                from: (flow.destination, flow.destinationPort), to: (address, port), checksumPending: checksumPending)
    }

    @inlinable @inline(__always)
    public static func rewriteSource(_ frame: inout MutableRawSpan, of flow: IPv6Flow, to address: IPv6Address, port: UInt16,
                                     checksumPending: Bool) {
        rewrite(&frame, flow, addressOffset: IPv6Header.sourceOffset, portOffset: 0,
                from: (flow.source, flow.sourcePort), to: (address, port), checksumPending: checksumPending)
    }

    @inlinable @inline(__always)
    static func rewrite(_ frame: inout MutableRawSpan, _ flow: IPv6Flow, addressOffset: Int, portOffset: Int,
                        from old: (address: IPv6Address, port: UInt16), to new: (address: IPv6Address, port: UInt16),
                        checksumPending: Bool) {
        frame.storeIPv6Address(new.address, at: flow.networkOffset + addressOffset)
        frame.storeBigEndian(new.port, at: flow.transportOffset + portOffset)
        let field = flow.transportOffset + (flow.transport == .tcp ? TCPHeader.checksumOffset : UDPHeader.checksumOffset)
        let checksum = frame.bigEndianUInt16(at: field)
        if checksumPending {
            frame.storeBigEndian(~InternetChecksum.updated(~checksum, replacing: old.address, with: new.address), at: field)
            return
        }
        if flow.transport == .udp && checksum == 0 { return }
        var updated = InternetChecksum.updated(checksum, replacing: old.address, with: new.address)
        updated = InternetChecksum.updated(updated, replacing: old.port, with: new.port)
        if flow.transport == .udp && updated == 0 { updated = 0xFFFF }
        frame.storeBigEndian(updated, at: field)
    }
}

extension NetworkAddressTranslation {
    /// An ICMP error from the client side about a reply that left as VIP:port: the quoted
    /// source becomes the real server's address and port, and so does the outer destination,
    /// so the server's stack matches it to its own packet (and lowers its path MTU on
    /// "fragmentation needed"), as IPVS's `ip_vs_nat_icmp` does.
    public static func rewriteQuotedSource(_ frame: inout MutableRawSpan, of error: ICMPError, to address: IPv4Address, port: UInt16) {
        rewriteOuter(&frame, error, addressOffset: IPv4Header.destinationOffset, from: error.destination, to: address)
        rewriteQuoted(&frame, error, addressOffset: IPv4Header.sourceOffset, portOffset: 0,
                      from: (error.quotedSource, error.quotedSourcePort), to: (address, port))
    }

    /// An ICMP error from the back about a packet the director sent to a real server's address
    /// and port: the quoted destination becomes VIP:port, and the outer source the VIP, so the
    /// client's stack matches it to its connection to the VIP.
    public static func rewriteQuotedDestination(_ frame: inout MutableRawSpan, of error: ICMPError, to address: IPv4Address, port: UInt16) {
        rewriteOuter(&frame, error, addressOffset: IPv4Header.sourceOffset, from: error.source, to: address)
        rewriteQuoted(&frame, error, addressOffset: IPv4Header.destinationOffset, portOffset: 2,
                      from: (error.quotedDestination, error.quotedDestinationPort), to: (address, port))
    }

    private static func rewriteOuter(_ frame: inout MutableRawSpan, _ error: ICMPError, addressOffset: Int, from old: IPv4Address, to new: IPv4Address) {
        let field = error.networkOffset + IPv4Header.checksumOffset
        frame.storeBigEndian(InternetChecksum.updated(frame.bigEndianUInt16(at: field), replacing: old.rawValue, with: new.rawValue), at: field)
        frame.storeBigEndian(new.rawValue, at: error.networkOffset + addressOffset)
    }

    /// The quoted header's address and port, its own checksum, and the ICMP checksum, which
    /// covers all three (every field sits at an even offset from the ICMP header, so each is a
    /// whole 16-bit word of its sum). The quoted transport checksum is left as it was: the
    /// quote may end before it, and no stack checks it.
    private static func rewriteQuoted(_ frame: inout MutableRawSpan, _ error: ICMPError, addressOffset: Int, portOffset: Int,
                                      from old: (address: IPv4Address, port: UInt16), to new: (address: IPv4Address, port: UInt16)) {
        let quotedChecksumField = error.quotedOffset + IPv4Header.checksumOffset
        let oldQuotedChecksum = frame.bigEndianUInt16(at: quotedChecksumField)
        let newQuotedChecksum = InternetChecksum.updated(oldQuotedChecksum, replacing: old.address.rawValue, with: new.address.rawValue)
        frame.storeBigEndian(newQuotedChecksum, at: quotedChecksumField)
        frame.storeBigEndian(new.address.rawValue, at: error.quotedOffset + addressOffset)
        frame.storeBigEndian(new.port, at: error.quotedTransportOffset + portOffset)

        let icmpChecksumField = error.icmpOffset + ICMPHeader.checksumOffset
        var checksum = frame.bigEndianUInt16(at: icmpChecksumField)
        checksum = InternetChecksum.updated(checksum, replacing: old.address.rawValue, with: new.address.rawValue)
        checksum = InternetChecksum.updated(checksum, replacing: old.port, with: new.port)
        checksum = InternetChecksum.updated(checksum, replacing: oldQuotedChecksum, with: newQuotedChecksum)
        frame.storeBigEndian(checksum, at: icmpChecksumField)
    }

    /// The IPv6 form of `rewriteQuotedSource(_:of:to:port:)`: there is no header checksum, and
    /// the ICMPv6 checksum covers the outer addresses (its pseudo-header) and the quote.
    public static func rewriteQuotedSource(_ frame: inout MutableRawSpan, of error: ICMPv6Error, to address: IPv6Address, port: UInt16) {
        let outer = error.outerDestination(in: frame.bytes)
        frame.storeIPv6Address(address, at: error.networkOffset + IPv6Header.destinationOffset)
        frame.storeIPv6Address(address, at: error.quotedOffset + IPv6Header.sourceOffset)
        frame.storeBigEndian(port, at: error.quotedTransportOffset)
        let field = error.icmpOffset + ICMPHeader.checksumOffset
        var checksum = frame.bigEndianUInt16(at: field)
        checksum = InternetChecksum.updated(checksum, replacing: outer, with: address)
        checksum = InternetChecksum.updated(checksum, replacing: error.quotedSource, with: address)
        checksum = InternetChecksum.updated(checksum, replacing: error.quotedSourcePort, with: port)
        frame.storeBigEndian(checksum, at: field)
    }

    /// The IPv6 form of `rewriteQuotedDestination(_:of:to:port:)`.
    public static func rewriteQuotedDestination(_ frame: inout MutableRawSpan, of error: ICMPv6Error, to address: IPv6Address, port: UInt16) {
        let outer = error.outerSource(in: frame.bytes)
        frame.storeIPv6Address(address, at: error.networkOffset + IPv6Header.sourceOffset)
        frame.storeIPv6Address(address, at: error.quotedOffset + IPv6Header.destinationOffset)
        frame.storeBigEndian(port, at: error.quotedTransportOffset + 2)
        let field = error.icmpOffset + ICMPHeader.checksumOffset
        var checksum = frame.bigEndianUInt16(at: field)
        checksum = InternetChecksum.updated(checksum, replacing: outer, with: address)
        checksum = InternetChecksum.updated(checksum, replacing: error.quotedDestination, with: address)
        checksum = InternetChecksum.updated(checksum, replacing: error.quotedDestinationPort, with: port)
        frame.storeBigEndian(checksum, at: field)
    }
}
