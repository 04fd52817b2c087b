import DirectorWire
import LoadGeneration
import Testing

@Suite("Frame synthesizer")
struct FrameSynthesizerTests {
    /// The one's-complement sum over a header (or a pseudo-header and segment) with its checksum
    /// in place is 0xFFFF when the checksum is right.
    func verifies(_ bytes: [UInt8], _ range: Range<Int>, initial: UInt32 = 0) -> Bool {
        Array(bytes[range]).withUnsafeBytes { InternetChecksum.sum($0.bytes, initial: initial) } == 0xFFFF
    }

    @Test("every kind parses, carries its flow, stamp and valid checksums",
          arguments: [(TrafficPattern.established, 5), (.udp, 7), (.syn, 1003), (.tcpFlows, 3)])
    func frames(pattern: TrafficPattern, frameNumber: Int) throws {
        let plan = plan(pattern, flows: 1000, segments: 2, frameLength: 128)
        var synthesizer = FrameSynthesizer(plan: plan)
        let bytes = synthesizer.withFrame(UInt64(frameNumber), time: 0x0102_0304_0506_0708) { $0.withUnsafeBytes { Array($0) } }
        #expect(bytes.count == 128)
        let parsed = bytes.withUnsafeBytes { FrameParser.parse($0.bytes) }
        guard case .ipv4(let flow) = parsed else {
            Issue.record("not an IPv4 flow: \(parsed)")
            return
        }
        let expected = plan.frame(UInt64(frameNumber))
        #expect(plan.flow(address: flow.source, port: flow.sourcePort) == expected.flow)
        #expect(flow.destination == plan.destination && flow.destinationMAC == plan.destinationMAC)
        let stamp = try #require(bytes.withUnsafeBytes { FrameStamp($0.bytes, at: plan.headerLength) })
        #expect(stamp.packet == expected.packet)
        #expect(stamp.sentAt == 0x0102_0304_0506_0708)
        #expect(verifies(bytes, 14..<34))
        let source = flow.source.rawValue, destination = flow.destination.rawValue
        let pseudo = (source >> 16) + (source & 0xFFFF) + (destination >> 16) + (destination & 0xFFFF)
            + UInt32(flow.transport.rawValue) + UInt32(bytes.count - 34)
        #expect(verifies(bytes, 34..<bytes.count, initial: pseudo))
        if pattern != .udp {
            let flags = TCPFlags(rawValue: bytes[34 + 13])
            switch expected.kind {
            case .syn: #expect(flags == .syn)
            case .fin: #expect(flags == [.fin, .ack])
            default: #expect(flags == [.ack, .psh])   // PSH: GRO on the way never merges them
            }
        }
    }

    @Test("spoofed handshakes: a flow's SYN, then its bare ACK (headers only, no data), valid checksums; bare ACKs alone")
    func spoofedHandshakes() throws {
        let pairs = plan(.synThenAck, flows: 1_000_000, frameLength: 0)
        var synthesizer = FrameSynthesizer(plan: pairs)
        func frame(_ synthesizer: inout FrameSynthesizer, _ n: UInt64) -> [UInt8] {
            synthesizer.withFrame(n, time: 1) { $0.withUnsafeBytes { Array($0) } }
        }
        let syn = frame(&synthesizer, 2 * 700_001), ack = frame(&synthesizer, 2 * 700_001 + 1)
        #expect(syn.count == 66 && ack.count == 54, "the ACK carries no byte of data")
        #expect(TCPFlags(rawValue: syn[34 + 13]) == .syn && TCPFlags(rawValue: ack[34 + 13]) == .ack)
        #expect(Array(syn[26..<38]) == Array(ack[26..<38]), "the same client address and port")
        #expect(pairs.frame(2 * 700_001).flow == 700_001 && pairs.distinctFlows(frames: 4) == 2)
        #expect(pairs.client(of: 700_001).address == IPv4Address(rawValue: pairs.firstClient.rawValue + 10), "1 M sources span 16 addresses")
        for bytes in [syn, ack] {
            #expect(verifies(bytes, 14..<34))
            let source = UInt32(bytes[26]) << 24 | UInt32(bytes[27]) << 16 | UInt32(bytes[28]) << 8 | UInt32(bytes[29])
            let destination = pairs.destination.rawValue
            let pseudo = (source >> 16) + (source & 0xFFFF) + (destination >> 16) + (destination & 0xFFFF) + 6 + UInt32(bytes.count - 34)
            #expect(verifies(bytes, 34..<bytes.count, initial: pseudo))
        }
        var acks = FrameSynthesizer(plan: plan(.bareAck, flows: 10))
        let bare = frame(&acks, 13)
        #expect(bare.count == 54 && TCPFlags(rawValue: bare[34 + 13]) == .ack)
    }

    @Test("the shortest frame is the headers and the stamp")
    func shortest() {
        var tcp = FrameSynthesizer(plan: plan(.established, flows: 1)), udp = FrameSynthesizer(plan: plan(.udp, flows: 1))
        #expect(tcp.withFrame(0, time: 1) { $0.byteCount } == 66)
        #expect(udp.withFrame(0, time: 1) { $0.byteCount } == 54)
    }
}
