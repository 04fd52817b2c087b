import DirectorWire
import Testing

private let clientMAC = MACAddress("02:00:00:00:01:01")!
private let vipMAC = MACAddress("02:00:00:00:00:64")!
private let client = IPv4Address(198, 18, 1, 10)
private let vip = IPv4Address(198, 18, 0, 100)
private let base = PacketBuilder().ethernet(from: clientMAC, to: vipMAC).ipv4(from: client, to: vip)
private let syn = base.tcp(sourcePort: 40000, destinationPort: 80, flags: .syn)
private let client6 = IPv6Address("2001:2::1:10")!
private let vip6 = IPv6Address("2001:2::100")!
private let base6 = PacketBuilder().ethernet(from: clientMAC, to: vipMAC).ipv6(from: client6, to: vip6)
private let syn6 = base6.tcp(sourcePort: 40000, destinationPort: 80, flags: .syn)
/// Extension headers by number, each 8 bytes (its body after the next-header byte).
private let hopByHop: (number: UInt8, body: [UInt8]) = (0, [0, 1, 4, 0, 0, 0, 0])
private let destinationOptions: (number: UInt8, body: [UInt8]) = (60, [0, 1, 4, 0, 0, 0, 0])
private let routing: (number: UInt8, body: [UInt8]) = (43, [0, 4, 0, 0, 0, 0, 0])
private func fragmentHeader(offset: UInt16, more: Bool) -> (number: UInt8, body: [UInt8]) {
    let field = offset << 3 | (more ? 1 : 0)
    return (44, [0, UInt8(field >> 8), UInt8(field & 0xFF), 0, 0, 0x12, 0x34])
}
/// A Neighbor Solicitation for `target`, with a Source Link-Layer Address option unless from `::`.
private func solicitation(for target: IPv6Address, from source: IPv6Address = client6, hopLimit: UInt8 = 255) -> PacketBuilder {
    let option: [UInt8] = source == .zero ? [] : [1, 1] + clientMAC.octets
    return PacketBuilder().ethernet(from: clientMAC, to: target.solicitedNodeMulticast.multicastMAC)
        .ipv6(from: source, to: target.solicitedNodeMulticast, hopLimit: hopLimit)
        .with { $0.transport = .other(protocolNumber: 58) }.payload([135, 0, 0, 0, 0, 0, 0, 0] + target.octets + option)
}

struct MalformedFixture: CustomTestStringConvertible, Sendable {
    let name: String
    let frame: [UInt8]
    let reason: MalformedReason
    var testDescription: String { name }
}

/// One fixture per way a frame can be broken; each must be counted under its own reason.
private let malformedFixtures: [MalformedFixture] = [
    .init(name: "ethernet header cut", frame: Array(syn.build().prefix(10)), reason: .truncatedEthernet),
    .init(name: "802.1Q tag cut", frame: Array(syn.with { $0.vlanID = 7 }.build().prefix(16)), reason: .truncatedVLANTag),
    .init(name: "IPv4 header cut", frame: Array(syn.build().prefix(14 + 12)), reason: .truncatedIPv4Header),
    .init(name: "version 6 in an IPv4 EtherType", frame: syn.with { $0.versionOverride = 6 }.build(), reason: .badIPVersion),
    .init(name: "IHL 4 (below minimum)", frame: syn.with { $0.headerLengthWordsOverride = 4 }.build(), reason: .badIPv4HeaderLength),
    .init(name: "IHL 15 beyond frame", frame: base.udp(sourcePort: 1, destinationPort: 53).with { $0.headerLengthWordsOverride = 15 }.build(), reason: .truncatedIPv4Header),
    .init(name: "total length beyond frame", frame: syn.with { $0.totalLengthOverride = 1500 }.build(), reason: .totalLengthBeyondFrame),
    .init(name: "total length below header", frame: syn.with { $0.totalLengthOverride = 12 }.build(), reason: .totalLengthBelowHeader),
    .init(name: "first fragment (MF)", frame: syn.with { $0.fragmentField = IPv4Header.moreFragmentsBit }.build(), reason: .fragment),
    .init(name: "later fragment (offset)", frame: syn.with { $0.fragmentField = 185 }.build(), reason: .fragment),
    .init(name: "TCP header cut", frame: syn.with { $0.totalLengthOverride = 20 + 12 }.build(), reason: .truncatedTCPHeader),
    .init(name: "TCP data offset 4", frame: syn.with { $0.tcpDataOffsetWordsOverride = 4 }.build(), reason: .badTCPDataOffset),
    .init(name: "TCP data offset beyond packet", frame: syn.with { $0.tcpDataOffsetWordsOverride = 15 }.build(), reason: .badTCPDataOffset),
    .init(name: "UDP header cut", frame: base.udp(sourcePort: 1, destinationPort: 53).with { $0.totalLengthOverride = 20 + 4 }.build(), reason: .truncatedUDPHeader),
    .init(name: "UDP length beyond packet", frame: base.udp(sourcePort: 1, destinationPort: 53).with { $0.udpLengthOverride = 400 }.build(), reason: .badUDPLength),
    .init(name: "UDP length below header", frame: base.udp(sourcePort: 1, destinationPort: 53).with { $0.udpLengthOverride = 3 }.build(), reason: .badUDPLength),
    .init(name: "ARP body cut", frame: Array(PacketBuilder.arpRequest(from: clientMAC, senderAddress: client, for: vip).prefix(30)), reason: .truncatedARP),
    .init(name: "ICMP error without the quoted ports", frame: base.with { $0.transport = .other(protocolNumber: 1) }
        .payload([3, 4, 0, 0, 0, 0, 5, 120] + syn.build()[14..<(14 + 22)]).build(), reason: .truncatedICMPError),
    .init(name: "ICMP error cut in its header", frame: base.with { $0.transport = .other(protocolNumber: 1) }.payload([11, 0, 0]).build(),
          reason: .truncatedICMPError),
    .init(name: "IPv6 header cut", frame: Array(syn6.build().prefix(14 + 30)), reason: .truncatedIPv6Header),
    .init(name: "version 4 in an IPv6 EtherType", frame: syn.with { $0.etherTypeOverride = EtherType.ipv6 }.build(), reason: .badIPVersion),
    .init(name: "IPv6 payload length beyond frame", frame: syn6.with { $0.totalLengthOverride = 1500 }.build(), reason: .totalLengthBeyondFrame),
    .init(name: "IPv6 TCP header cut", frame: syn6.with { $0.totalLengthOverride = 12 }.build(), reason: .truncatedTCPHeader),
    .init(name: "extension header beyond the packet", frame: syn6.with { $0.extensionHeaders = [(0, [5, 1, 4, 0, 0, 0, 0])] }.build(),
          reason: .truncatedExtensionHeader),
    .init(name: "five extension headers", frame: syn6.with { $0.extensionHeaders = Array(repeating: destinationOptions, count: 5) }.build(),
          reason: .tooManyExtensionHeaders),
    .init(name: "IPv6 later fragment", frame: syn6.with { $0.extensionHeaders = [fragmentHeader(offset: 185, more: false)] }.build(),
          reason: .fragment),
    .init(name: "Neighbor Solicitation from off-link (hop limit 64)", frame: solicitation(for: vip6, hopLimit: 64).build(),
          reason: .invalidNeighborDiscovery),
    .init(name: "Neighbor Solicitation from :: with a link-layer address",
          frame: solicitation(for: vip6, from: .zero).payload([135, 0, 0, 0, 0, 0, 0, 0] + vip6.octets + [1, 1] + clientMAC.octets).build(),
          reason: .invalidNeighborDiscovery),
    .init(name: "Neighbor Solicitation with an option of length 0",
          frame: solicitation(for: vip6).payload([135, 0, 0, 0, 0, 0, 0, 0] + vip6.octets + [1, 0, 0, 0, 0, 0, 0, 0]).build(),
          reason: .invalidNeighborDiscovery),
    .init(name: "Neighbor Solicitation with a wrong checksum",
          frame: { var frame = solicitation(for: vip6).build(); frame[14 + 40 + 2] ^= 0x01; return frame }(), reason: .invalidNeighborDiscovery),
    .init(name: "Neighbor Solicitation from :: to all nodes, not the solicited-node address",
          frame: solicitation(for: vip6, from: .zero).with { $0.destination6 = NeighborDiscovery.allNodes }.build(), reason: .invalidNeighborDiscovery),
    .init(name: "ICMPv6 error without the quoted ports", frame: base6.with { $0.transport = .other(protocolNumber: 58) }
        .payload([2, 0, 0, 0, 0, 0, 5, 0] + syn6.build()[14..<(14 + 42)]).build(), reason: .truncatedICMPError),
]

@Suite("Frame parser")
struct FrameParserTests {
    @Test("malformed frames are classified by reason", arguments: malformedFixtures)
    func malformed(_ fixture: MalformedFixture) {
        #expect(parse(fixture.frame) == .malformed(fixture.reason))
    }

    @Test("every malformed reason has a fixture")
    func everyReasonCovered() {
        #expect(Set(malformedFixtures.map(\.reason.rawValue)) == Set(MalformedReason.allCases.map(\.rawValue)))
    }

    @Test("a TCP SYN yields its flow")
    func tcpSyn() throws {
        guard case .ipv4(let flow) = parse(syn.build()) else { Issue.record("not parsed as IPv4"); return }
        #expect(flow.source == client && flow.destination == vip)
        #expect(flow.sourcePort == 40000 && flow.destinationPort == 80 && flow.transport == .tcp)
        #expect(flow.tcpFlags == .syn && flow.destinationMAC == vipMAC && flow.sourceMAC == clientMAC)
        #expect(flow.networkOffset == 14 && flow.transportOffset == 34 && flow.vlanID == nil)
    }

    @Test("IPv4 options move the transport header")
    func ipv4Options() {
        let frame = syn.ipv4(from: client, to: vip, options: [1, 1, 1, 0, 0x94, 0x04, 0, 0]).build()
        guard case .ipv4(let flow) = parse(frame) else { Issue.record("not parsed"); return }
        #expect(flow.transportOffset == 14 + 28 && flow.destinationPort == 80)
    }

    @Test("an 802.1Q tag is read and skipped")
    func vlan() {
        guard case .ipv4(let flow) = parse(syn.with { $0.vlanID = 42 }.build()) else { Issue.record("not parsed"); return }
        #expect(flow.vlanID == 42 && flow.networkOffset == 18 && flow.destinationPort == 80)
    }

    @Test("UDP with Ethernet padding after the packet")
    func udpPadded() {
        let frame = base.udp(sourcePort: 5353, destinationPort: 53).with { $0.trailerPadding = 18 }.build()
        guard case .ipv4(let flow) = parse(frame) else { Issue.record("not parsed"); return }
        #expect(flow.transport == .udp && flow.sourcePort == 5353 && flow.packetLength == 28)
    }

    @Test("ARP requests are decoded")
    func arp() {
        guard case .arp(let message) = parse(PacketBuilder.arpRequest(from: clientMAC, senderAddress: client, for: vip)) else {
            Issue.record("not ARP"); return
        }
        #expect(message.operation == .request && message.targetAddress == vip)
        #expect(message.senderMAC == clientMAC && message.senderAddress == client && message.destinationMAC == .broadcast)
    }

    @Test("other EtherTypes and other IP protocols are passed over")
    func passedOver() {
        #expect(parse(syn.with { $0.etherTypeOverride = 0x88CC }.build()) == .passedOver(.otherEtherType))
        #expect(parse(base.with { $0.transport = .other(protocolNumber: 1); $0.payload = [8, 0, 0, 0] }.build()) == .passedOver(.otherIPProtocol))
        // IPv6: an echo request, no next header (59), ESP (50), an advertisement.
        #expect(parse(base6.with { $0.transport = .other(protocolNumber: 58) }.payload([128, 0, 0, 0, 0, 1, 0, 1]).build()) == .passedOver(.otherIPProtocol))
        #expect(parse(base6.with { $0.transport = .other(protocolNumber: 59) }.build()) == .passedOver(.otherIPProtocol))
        #expect(parse(base6.with { $0.transport = .other(protocolNumber: 50) }.payload([0, 0, 0, 1, 0, 0, 0, 1]).build()) == .passedOver(.otherIPProtocol))
        #expect(parse(base6.with { $0.transport = .other(protocolNumber: 58) }.payload([136, 0, 0, 0, 0x20, 0, 0, 0] + vip6.octets).build())
                == .passedOver(.otherIPProtocol))
        // Neighbor Discovery in a fragment, even an atomic one, is ignored (RFC 6980).
        #expect(parse(solicitation(for: vip6).with { $0.extensionHeaders = [fragmentHeader(offset: 0, more: false)] }.build())
                == .passedOver(.otherIPProtocol))
    }

    @Test("an IPv6 SYN yields its flow")
    func ipv6Syn() {
        guard case .ipv6(let flow) = parse(syn6.build()) else { Issue.record("not parsed as IPv6"); return }
        #expect(flow.source == client6 && flow.destination == vip6 && flow.hopLimit == 64 && !flow.isFirstFragment)
        #expect(flow.sourcePort == 40000 && flow.destinationPort == 80 && flow.transport == .tcp && flow.tcpFlags == .syn)
        #expect(flow.networkOffset == 14 && flow.transportOffset == 54 && flow.packetLength == 60)
        guard case .ipv6(let tagged) = parse(syn6.with { $0.vlanID = 9 }.build()) else { Issue.record("tagged not parsed"); return }
        #expect(tagged.vlanID == 9 && tagged.networkOffset == 18 && tagged.transportOffset == 58)
    }

    /// Extension headers in front of the transport header: (headers, expected transport offset).
    static let extensionChains: [(name: String, headers: [(number: UInt8, body: [UInt8])], transportOffset: Int)] = [
        ("hop-by-hop", [hopByHop], 14 + 40 + 8),
        ("hop-by-hop, routing (24 bytes), destination options", [hopByHop, (43, [2, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 16)), destinationOptions],
         14 + 40 + 8 + 24 + 8),
        ("four: the limit", [hopByHop, destinationOptions, routing, destinationOptions], 14 + 40 + 32),
        ("a first fragment", [fragmentHeader(offset: 0, more: true)], 14 + 40 + 8),
        ("an atomic fragment (offset 0, no more)", [fragmentHeader(offset: 0, more: false)], 14 + 40 + 8),
    ]

    @Test("extension headers are walked to the transport header, within the bound")
    func extensionHeaders() {
        for chain in FrameParserTests.extensionChains {
            for transport in [syn6, base6.udp(sourcePort: 40000, destinationPort: 80).payload([1, 2, 3])] {
                guard case .ipv6(let flow) = parse(transport.with { $0.extensionHeaders = chain.headers }.build()) else {
                    Issue.record("\(chain.name): not parsed"); continue
                }
                #expect(flow.transportOffset == chain.transportOffset && flow.sourcePort == 40000 && flow.destinationPort == 80, "\(chain.name)")
                #expect(flow.isFirstFragment == (chain.name == "a first fragment"), "\(chain.name)")
            }
        }
        // A first fragment of a long datagram: its UDP length counts bytes that come later.
        let udpFragment = base6.udp(sourcePort: 5353, destinationPort: 53).payload([1, 2, 3])
            .with { $0.extensionHeaders = [fragmentHeader(offset: 0, more: true)]; $0.udpLengthOverride = 3000 }
        guard case .ipv6(let flow) = parse(udpFragment.build()) else { Issue.record("first UDP fragment not parsed"); return }
        #expect(flow.transport == .udp && flow.isFirstFragment && flow.destinationPort == 53)
    }

    @Test("an ICMPv6 packet-too-big quoting a TCP packet yields the quoted flow")
    func icmpv6Error() {
        let quoted = PacketBuilder().ipv6(from: vip6, to: client6).tcp(sourcePort: 80, destinationPort: 40000, flags: .ack).build()
        let frame = PacketBuilder().ethernet(from: clientMAC, to: vipMAC).ipv6(from: IPv6Address("2001:2::1")!, to: vip6)
            .with { $0.transport = .other(protocolNumber: 58) }.payload([2, 0, 0, 0, 0, 0, 5, 0x28] + quoted[14...]).build()
        guard case .icmpv6Error(let error) = parse(frame) else { Issue.record("not an ICMPv6 error"); return }
        #expect(error.type == ICMPv6Header.packetTooBig && error.code == 0 && error.packetLength == 40 + 8 + 60)
        #expect(frame.withUnsafeBytes { error.outerDestination(in: $0.bytes) } == vip6
                && frame.withUnsafeBytes { error.outerSource(in: $0.bytes) } == IPv6Address("2001:2::1")!)
        #expect(error.quotedSource == vip6 && error.quotedDestination == client6 && error.quotedTransport == .tcp)
        #expect(error.quotedSourcePort == 80 && error.quotedDestinationPort == 40000)
        #expect(error.icmpOffset == 54 && error.quotedOffset == 62 && error.quotedTransportOffset == 102)
    }

    @Test("a Neighbor Solicitation is decoded; the advertisement answering it is well formed")
    func neighborSolicitation() throws {
        guard case .neighborSolicitation(let message) = parse(solicitation(for: vip6).build()) else { Issue.record("not a solicitation"); return }
        #expect(message.target == vip6 && message.source == client6 && message.sourceLinkLayerAddress == clientMAC)
        #expect(message.destination == vip6.solicitedNodeMulticast && message.destinationMAC == MACAddress("33:33:ff:00:01:00")!)
        for (request, unicast) in [(solicitation(for: vip6), true), (solicitation(for: vip6, from: .zero), false)] {
            guard case .neighborSolicitation(let asked) = parse(request.build()) else { Issue.record("not a solicitation"); continue }
            var frame = [UInt8](repeating: 0, count: 128)
            let length = try #require(frame.withUnsafeMutableBytes { buffer in
                var span = buffer.mutableBytes
                return NeighborDiscovery.answer(asked, into: &span, mac: vipMAC)
            })
            #expect(length == 14 + 40 + 32)
            let answer = Array(frame.prefix(length))
            #expect(answer[12...13] == [0x86, 0xDD] && answer[20] == 58 && answer[21] == 255)
            #expect(Array(answer[0..<6]) == (unicast ? clientMAC : MACAddress("33:33:00:00:00:01")!).octets && Array(answer[6..<12]) == vipMAC.octets)
            #expect(Array(answer[22..<38]) == vip6.octets && Array(answer[38..<54]) == (unicast ? client6 : NeighborDiscovery.allNodes).octets)
            #expect(answer[54] == 136 && answer[58] == (unicast ? 0x60 : 0x20), "solicited only when asked by an address; override always")
            #expect(Array(answer[62..<78]) == vip6.octets && answer[78...79] == [2, 1] && Array(answer[80..<86]) == vipMAC.octets)
            // The checksum verifies: the pseudo-header and the message sum to all ones.
            let pseudo = InternetChecksum.pseudoHeaderSum(source: vip6, destination: unicast ? client6 : NeighborDiscovery.allNodes,
                                                          length: 32, nextHeader: 58)
            #expect(answer[54...].withUnsafeBytes { InternetChecksum.sum($0.bytes, initial: pseudo) } == 0xFFFF)
        }
    }

    @Test("real-server resolution: a solicitation the director writes is one the parser (and so a host) takes; an advertisement is read back, a forged or off-link one is not")
    func resolutionMessages() throws {
        let server6 = IPv6Address("2001:2:0:2::11")!, linkLocal = IPv6Address("fe80::18:ff:fe00:201")!
        var frame = [UInt8](repeating: 0, count: NeighborDiscovery.solicitationFrameLength(vlanID: nil))
        let length = try #require(frame.withUnsafeMutableBytes { buffer in
            var span = buffer.mutableBytes
            return NeighborDiscovery.writeSolicitation(into: &span, mac: clientMAC, source: linkLocal, target: server6)
        })
        #expect(length == 14 + 40 + 32)
        guard case .neighborSolicitation(let asked) = parse(Array(frame.prefix(length))) else { Issue.record("not a valid solicitation"); return }
        #expect(asked.target == server6 && asked.source == linkLocal && asked.sourceLinkLayerAddress == clientMAC)
        #expect(asked.destination == server6.solicitedNodeMulticast && asked.destinationMAC == server6.solicitedNodeMulticast.multicastMAC)

        // The server's answer, as `answer` writes one (the same layout a host sends).
        let serverMAC = MACAddress("02:00:00:00:02:11")!
        var reply = [UInt8](repeating: 0, count: 128)
        let replyLength = try #require(reply.withUnsafeMutableBytes { buffer in
            var span = buffer.mutableBytes
            return NeighborDiscovery.answer(asked, into: &span, mac: serverMAC)
        })
        let advertisement = Array(reply.prefix(replyLength))
        let read = advertisement.withUnsafeBytes { NeighborDiscovery.advertisement(in: $0.bytes) }
        #expect(read?.target == server6 && read?.mac == serverMAC)
        var badChecksum = advertisement; badChecksum[14 + 40 + 2] ^= 0x01
        var offLink = advertisement; offLink[14 + 7] = 254
        var groupMAC = advertisement; groupMAC[14 + 40 + 26] |= 0x01
        var solicitationInstead = advertisement; solicitationInstead[14 + 40] = 135
        for forged in [badChecksum, offLink, groupMAC, solicitationInstead, Array(advertisement.prefix(14 + 40 + 20))] {
            #expect(forged.withUnsafeBytes { NeighborDiscovery.advertisement(in: $0.bytes) } == nil)
        }
    }

    @Test("every prefix of valid frames parses without trapping")
    func everyPrefix() {
        let frames = [syn.build(), syn.with { $0.vlanID = 3 }.build(), base.udp(sourcePort: 9, destinationPort: 53).payload([1, 2, 3]).build(),
                      PacketBuilder.arpRequest(from: clientMAC, senderAddress: client, for: vip),
                      syn6.with { $0.extensionHeaders = [hopByHop, fragmentHeader(offset: 0, more: true)] }.build(),
                      solicitation(for: vip6).build()]
        for frame in frames {
            for length in 0...frame.count {
                let outcome = parse(Array(frame.prefix(length)))
                if length < frame.count, case .ipv4 = outcome { Issue.record("prefix \(length) of \(frame.count) parsed as whole") }
                if length < frame.count, case .ipv6 = outcome { Issue.record("prefix \(length) of \(frame.count) parsed as whole") }
                if length < frame.count, case .neighborSolicitation = outcome { Issue.record("prefix \(length) of \(frame.count) parsed as whole") }
            }
        }
    }

    @Test("random bytes never trap")
    func randomBytes() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            var frame = [UInt8](repeating: 0, count: Int.random(in: 0...80, using: &generator))
            for index in frame.indices { frame[index] = UInt8.random(in: 0...255, using: &generator) }
            if frame.count > 13 && Bool.random() { frame[12] = 0x08; frame[13] = 0x00 }
            if frame.count > 14 && Bool.random() { frame[12] = 0x86; frame[13] = 0xDD; frame[14] = 0x60 }
            _ = parse(frame)
        }
    }
}

func parse(_ frame: [UInt8]) -> ParsedFrame {
    frame.withUnsafeBytes { FrameParser.parse($0.bytes) }
}
