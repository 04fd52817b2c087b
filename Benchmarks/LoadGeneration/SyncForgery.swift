import DirectorSync
import DirectorWire

/// Forged sync datagrams, as an attacker on the crossover link without the pair's key would send
/// them: from the peer's address and port (what the director's admission rules let through), to
/// the sync and liveness ports in turn, every header field right (magic, version, kind, length,
/// the peer's node id), heartbeats of the exact length, an incarnation and sequence of its own
/// and an authenticator of garbage. What a director must turn away without paying for an HMAC.
///
/// `incarnation` nil: a blind forger, a fresh random incarnation each datagram. Set: one who read
/// the link and uses the believed incarnation, with sequences counting up from `firstSequence`.
public struct SyncForgery: FrameSource {
    private var templates: [[UInt8]]
    private var scratch: [UInt8]
    private var random: UInt64
    public var incarnation: UInt64?
    public var firstSequence: UInt64 = 1

    static let payloadOffset = 14 + 20 + 8

    /// `ports`: the ports to send to, in turn (each datagram's source port is its destination
    /// port, as the pair's sockets use); those equal to `heartbeatPort` get heartbeats, the others
    /// acknowledgements.
    public init(sourceMAC: MACAddress, destinationMAC: MACAddress, source: IPv4Address, destination: IPv4Address,
                ports: [UInt16], heartbeatPort: UInt16, nodeID: UInt8, seed: UInt64) {
        templates = ports.map { port in
            let heartbeat = port == heartbeatPort
            let bodyLength = heartbeat ? SyncWireFormat.heartbeatBodyLength : 8
            var payload = [UInt8](repeating: 0, count: SyncWireFormat.headerLength + bodyLength + SyncWireFormat.authenticatorLength)
            payload[0] = UInt8(SyncWireFormat.magic >> 8)
            payload[1] = UInt8(SyncWireFormat.magic & 0xFF)
            payload[2] = SyncWireFormat.version
            payload[3] = (heartbeat ? SyncMessageKind.heartbeat : SyncMessageKind.ack).rawValue
            payload[4] = nodeID
            payload[6] = UInt8(bodyLength >> 8)
            payload[7] = UInt8(bodyLength & 0xFF)
            for index in (payload.count - SyncWireFormat.authenticatorLength)..<payload.count { payload[index] = UInt8(truncatingIfNeeded: index &* 37) }
            var frame = PacketBuilder().ethernet(from: sourceMAC, to: destinationMAC).ipv4(from: source, to: destination)
                .payload(payload).udp(sourcePort: port, destinationPort: port).build()
            // No UDP checksum (optional over IPv4): only the payload changes from frame to frame.
            frame[14 + 20 + 6] = 0
            frame[14 + 20 + 7] = 0
            return frame
        }
        scratch = [UInt8](repeating: 0, count: templates.map(\.count).max() ?? 0)
        random = seed | 1
    }

    public mutating func withFrame<Result>(_ n: UInt64, time: UInt64, _ body: (RawSpan) -> Result) -> Result {
        let template = templates[Int(n % UInt64(templates.count))]
        // xorshift64: a new incarnation per datagram for the blind forger.
        random ^= random << 13
        random ^= random >> 7
        random ^= random << 17
        let incarnation = self.incarnation ?? random
        let sequence = firstSequence &+ n
        let offset = SyncForgery.payloadOffset
        return scratch.withUnsafeMutableBytes { buffer in
            template.withUnsafeBytes { buffer.copyMemory(from: $0) }
            var bytes = buffer.mutableBytes
            bytes.storeBigEndian(UInt32(truncatingIfNeeded: incarnation >> 32), at: offset + 8)
            bytes.storeBigEndian(UInt32(truncatingIfNeeded: incarnation), at: offset + 12)
            bytes.storeBigEndian(UInt32(truncatingIfNeeded: sequence >> 32), at: offset + 16)
            bytes.storeBigEndian(UInt32(truncatingIfNeeded: sequence), at: offset + 20)
            bytes.storeBigEndian(UInt32(truncatingIfNeeded: time >> 32), at: offset + 24)
            bytes.storeBigEndian(UInt32(truncatingIfNeeded: time), at: offset + 28)
            return body(bytes.bytes.extracting(0..<template.count))
        }
    }
}
