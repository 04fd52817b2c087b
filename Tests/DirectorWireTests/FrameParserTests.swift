import DirectorWire
import Testing

private let clientMAC = MACAddress("02:00:00:00:01:01")!
private let vipMAC = MACAddress("02:00:00:00:00:64")!
private let client = IPv4Address(198, 18, 1, 10)
private let vip = IPv4Address(198, 18, 0, 100)
private let base = PacketBuilder().ethernet(from: clientMAC, to: vipMAC).ipv4(from: client, to: vip)
private let syn = base.tcp(sourcePort: 40000, destinationPort: 80, flags: .syn)

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

    @Test("IPv6, other EtherTypes and other IP protocols are passed over")
    func passedOver() {
        #expect(parse(syn.with { $0.etherTypeOverride = EtherType.ipv6 }.build()) == .passedOver(.ipv6))
        #expect(parse(syn.with { $0.etherTypeOverride = 0x88CC }.build()) == .passedOver(.otherEtherType))
        #expect(parse(base.with { $0.transport = .other(protocolNumber: 1); $0.payload = [8, 0, 0, 0] }.build()) == .passedOver(.otherIPProtocol))
    }

    @Test("every prefix of valid frames parses without trapping")
    func everyPrefix() {
        let frames = [syn.build(), syn.with { $0.vlanID = 3 }.build(), base.udp(sourcePort: 9, destinationPort: 53).payload([1, 2, 3]).build(),
                      PacketBuilder.arpRequest(from: clientMAC, senderAddress: client, for: vip)]
        for frame in frames {
            for length in 0...frame.count {
                let outcome = parse(Array(frame.prefix(length)))
                if length < frame.count, case .ipv4 = outcome { Issue.record("prefix \(length) of \(frame.count) parsed as whole") }
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
            _ = parse(frame)
        }
    }
}

func parse(_ frame: [UInt8]) -> ParsedFrame {
    frame.withUnsafeBytes { FrameParser.parse($0.bytes) }
}
