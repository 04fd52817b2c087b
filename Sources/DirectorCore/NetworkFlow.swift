import DirectorWire

/// A client's TCP or UDP packet as the parser found it, of either family. The pipeline's steps
/// are generic over it and specialised for each (`IPv4Flow`, `IPv6Flow`): one body of code for
/// both families, no existential and no branch on the family once the parser has chosen.
public protocol NetworkFlow: Sendable {
    associatedtype Address: FlowAddress
    var destinationMAC: MACAddress { get }
    var sourceMAC: MACAddress { get }
    var networkOffset: Int { get }
    var transportOffset: Int { get }
    var source: Address { get }
    var destination: Address { get }
    var transport: TransportProtocol { get }
    var sourcePort: UInt16 { get }
    var destinationPort: UInt16 { get }
    var tcpFlags: TCPFlags { get }
    /// Bytes of the IP packet, from `networkOffset`.
    var packetLength: Int { get }
    /// Why no honest client could have sent it, or nil (see `IPv4Flow.implausibility`).
    var implausibility: DropReason? { get }
    /// Rewrites the frame into the reset the VIP answers it with (see `TCPReset`); its length.
    func answerWithReset(in frame: inout MutableRawSpan, from mac: MACAddress) -> Int
    /// NAT: the destination becomes the real server's `address`:`port` (see
    /// `NetworkAddressTranslation`).
    func translateDestination(of frame: inout MutableRawSpan, to address: Address, port: UInt16, checksumPending: Bool)
    /// NAT: a real server's reply; the source becomes the VIP's `address`:`port`.
    func translateSource(of frame: inout MutableRawSpan, to address: Address, port: UInt16, checksumPending: Bool)
}

extension NetworkFlow {
    /// Whether the segment or datagram carries payload after its transport header. Not part of
    /// the parse: only a connection that has not proven itself yet asks (see
    /// `ConnectionEntry.isProven`), and every other frame would pay for the answer.
    @inlinable @inline(__always)
    func carriesPayload(in frame: RawSpan) -> Bool {
        let transportLength = networkOffset + packetLength - transportOffset
        guard case .tcp = transport else { return transportLength > UDPHeader.length }
        return transportLength > Int(frame.byte(at: transportOffset + TCPHeader.dataOffsetOffset) >> 4) * 4
    }

    /// Where the transmit stage finds the transport checksum, should the sender have left it to
    /// offload.
    @inlinable @inline(__always)
    var transportChecksum: TransportChecksum {
        TransportChecksum(start: transportOffset, fieldOffset: transport == .tcp ? TCPHeader.checksumOffset : UDPHeader.checksumOffset,
                          end: networkOffset + packetLength)
    }
}

extension IPv4Flow: NetworkFlow {
    @inlinable @inline(__always)
    public func answerWithReset(in frame: inout MutableRawSpan, from mac: MACAddress) -> Int {
        TCPReset.answer(self, in: &frame, from: mac)
    }

    @inlinable @inline(__always)
    public func translateDestination(of frame: inout MutableRawSpan, to address: IPv4Address, port: UInt16, checksumPending: Bool) {
        NetworkAddressTranslation.rewriteDestination(&frame, of: self, to: address, port: port, checksumPending: checksumPending)
    }

    @inlinable @inline(__always)
    public func translateSource(of frame: inout MutableRawSpan, to address: IPv4Address, port: UInt16, checksumPending: Bool) {
        NetworkAddressTranslation.rewriteSource(&frame, of: self, to: address, port: port, checksumPending: checksumPending)
    }
}

extension IPv6Flow: NetworkFlow {
    @inlinable @inline(__always)
    public func answerWithReset(in frame: inout MutableRawSpan, from mac: MACAddress) -> Int {
        TCPReset.answer(self, in: &frame, from: mac)
    }

    @inlinable @inline(__always)
    public func translateDestination(of frame: inout MutableRawSpan, to address: IPv6Address, port: UInt16, checksumPending: Bool) {
        NetworkAddressTranslation.rewriteDestination(&frame, of: self, to: address, port: port, checksumPending: checksumPending)
    }

    @inlinable @inline(__always)
    public func translateSource(of frame: inout MutableRawSpan, to address: IPv6Address, port: UInt16, checksumPending: Bool) {
        NetworkAddressTranslation.rewriteSource(&frame, of: self, to: address, port: port, checksumPending: checksumPending)
    }
}

extension FlowKey {
    /// The flow's key: the client's endpoint (the source), the virtual one (the destination).
    @inlinable @inline(__always)
    public init<Flow: NetworkFlow>(_ flow: Flow) where Flow.Address == Address {
        self.init(clientAddress: flow.source, clientPort: flow.sourcePort, virtualAddress: flow.destination,
                  virtualPort: flow.destinationPort, transport: flow.transport)
    }
}

/// An ICMP error about a client's connection, of either family (`ICMPError`, `ICMPv6Error`):
/// what relaying it to the connection's real server needs.
public protocol QuotedFlowError: Sendable {
    associatedtype Address: FlowAddress
    var destinationMAC: MACAddress { get }
    var networkOffset: Int { get }
    var icmpOffset: Int { get }
    var packetLength: Int { get }
    /// The quoted packet went from VIP:port (its source) to the client (its destination).
    var quotedSource: Address { get }
    var quotedDestination: Address { get }
    var quotedSourcePort: UInt16 { get }
    var quotedDestinationPort: UInt16 { get }
    var quotedTransport: TransportProtocol { get }
    /// NAT: the quoted source (and the outer destination) become the real server's.
    func translateQuotedSource(of frame: inout MutableRawSpan, to address: Address, port: UInt16)
    /// NAT, an error from the back about a packet to a real server: the quoted destination (and
    /// the outer source) become the VIP's.
    func translateQuotedDestination(of frame: inout MutableRawSpan, to address: Address, port: UInt16)
}

extension ICMPError: QuotedFlowError {
    @inlinable
    public func translateQuotedSource(of frame: inout MutableRawSpan, to address: IPv4Address, port: UInt16) {
        NetworkAddressTranslation.rewriteQuotedSource(&frame, of: self, to: address, port: port)
    }

    @inlinable
    public func translateQuotedDestination(of frame: inout MutableRawSpan, to address: IPv4Address, port: UInt16) {
        NetworkAddressTranslation.rewriteQuotedDestination(&frame, of: self, to: address, port: port)
    }
}

extension ICMPv6Error: QuotedFlowError {
    @inlinable
    public func translateQuotedSource(of frame: inout MutableRawSpan, to address: IPv6Address, port: UInt16) {
        NetworkAddressTranslation.rewriteQuotedSource(&frame, of: self, to: address, port: port)
    }

    @inlinable
    public func translateQuotedDestination(of frame: inout MutableRawSpan, to address: IPv6Address, port: UInt16) {
        NetworkAddressTranslation.rewriteQuotedDestination(&frame, of: self, to: address, port: port)
    }
}
