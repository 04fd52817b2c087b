import DirectorCore
import DirectorLab
import DirectorWire
import Foundation
import PacketIO
import Testing

extension LabSuites {
    /// The kernel programs, run by the kernel on real packet sockets in a namespace of the test's own:
    /// the ownership filter and the fan-out program must agree with `ClientBucket` in Swift.
    @Suite("Kernel filter and fan-out")
    struct KernelFilterTests {
        static let namespace = "tkf"
        static let bucketCount: UInt32 = 1024

        /// Flows to send: the bucket function's published test vectors, then spread-out clients.
        static let flows: [(address: IPv4Address, port: UInt16)] = {
            var flows: [(address: IPv4Address, port: UInt16)] = [
                (IPv4Address(198, 18, 1, 10), 40000), (IPv4Address(198, 18, 1, 11), 80), (IPv4Address(198, 19, 255, 254), 33333),
            ]
            for n in 0..<600 {
                let address = IPv4Address(198, 18, UInt8(1 + n % 4), UInt8(10 + n % 200))
                flows.append((address, UInt16(20_000 + n * 37)))
            }
            return flows
        }()

        static func bucket(_ flow: (address: IPv4Address, port: UInt16)) -> UInt32 {
            ClientBucket.bucket(address: flow.address, port: flow.port, bucketCount: bucketCount)
        }

        /// IPv6 clients: the IPv6 test vectors, then clients spread over four /64s.
        static let flows6: [(address: IPv6Address, port: UInt16)] = {
            var flows: [(address: IPv6Address, port: UInt16)] = [
                (IPv6Address("2001:2::1:10")!, 40000), (IPv6Address("2001:2::1:11")!, 80), (IPv6Address("2001:2:0:ffff::fffe")!, 33333),
            ]
            for n in 0..<400 {
                flows.append((IPv6Address(high: 0x2001_0002_0000_0000 | UInt64(1 + n % 4), low: UInt64(n % 3) << 32 | UInt64(10 + n % 200)),
                              UInt16(20_000 + n * 37)))
            }
            return flows
        }()

        static let virtualAddress6 = IPv6Address("2001:2::100")!
        static let realServer6 = IPv6Address("2001:2::2:11")!

        /// What the kernel must find in front of the transport header, frame after frame: the
        /// chains `FrameParser` walks, up to its bound.
        static let extensionChains: [[(number: UInt8, body: [UInt8])]] = [
            [],
            [(0, [0, 1, 4, 0, 0, 0, 0])],
            [(0, [0, 1, 4, 0, 0, 0, 0]), (43, [2, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 16)), (60, [0, 1, 4, 0, 0, 0, 0])],
            [(44, [0, 0, 1, 0, 0, 0x12, 0x34])],
            [(0, [0, 1, 4, 0, 0, 0, 0]), (60, [1, 1, 12, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 8)), (44, [0, 0, 1, 0, 0, 0, 9]),
             (60, [0, 1, 4, 0, 0, 0, 0])],
        ]

        static func bucket6(_ flow: (address: IPv6Address, port: UInt16)) -> UInt32 {
            ClientBucket.bucket(address: flow.address, port: flow.port, bucketCount: bucketCount)
        }

        /// The client endpoints `drain` reports for both families' flows that pass `include`.
        static func expectedFlows(_ include: (UInt32) -> Bool) -> Set<String> {
            Set(flows.filter { include(bucket($0)) }.map { "\($0.address):\($0.port)" }
                + flows6.filter { include(bucket6($0)) }.map { "[\($0.address)]:\($0.port)" })
        }

        func insideNamespace<T>(_ body: () throws -> T) throws -> T {
            try LabTests.insideNamespace(KernelFilterTests.namespace, body)
        }

        func withVethPair(_ body: () throws -> Void) throws {
            try LabTests.withVethPair(namespace: KernelFilterTests.namespace, body)
        }

        /// One SYN per flow, plus an ARP request, sent on kf0. A frame the ring refuses (full, on
        /// a busy machine) is offered again rather than lost.
        /// `asReplies`: each flow's NAT reply instead, from a real server to the client endpoint.
        /// `asICMPErrors`: an ICMP error about each flow instead, from the side the frames come
        /// from (a router on the clients' side quoting a reply to the client; a real server
        /// quoting a packet from the client).
        func sendFlows(_ transmit: inout PacketTransmitRing, to destination: MACAddress, asReplies: Bool = false, asICMPErrors: Bool = false) {
            var frames = KernelFilterTests.flows.map { flow in
                let reply = PacketBuilder().ethernet(from: MACAddress("02:00:00:00:02:0b")!, to: destination)
                    .ipv4(from: IPv4Address(198, 18, 2, 11), to: flow.address)
                    .tcp(sourcePort: 8080, destinationPort: flow.port, flags: [.syn, .ack]).build()
                let request = PacketBuilder().ethernet(from: MACAddress("02:00:00:00:01:01")!, to: destination)
                    .ipv4(from: flow.address, to: asReplies ? IPv4Address(198, 18, 2, 11) : IPv4Address(198, 18, 0, 100))
                    .tcp(sourcePort: flow.port, destinationPort: asReplies ? 8080 : 80, flags: .syn).build()
                guard asICMPErrors else { return asReplies ? reply : request }
                // Quoting: from the clients' side a packet to the client, from the back one from it.
                let quoted = asReplies ? request : PacketBuilder().ethernet(from: destination, to: destination)
                    .ipv4(from: IPv4Address(198, 18, 0, 100), to: flow.address)
                    .tcp(sourcePort: 80, destinationPort: flow.port, flags: .ack).build()
                let body: [UInt8] = [3, 4, 0, 0, 0, 0, 5, 120] + Array(quoted[14..<42])
                return PacketBuilder().ethernet(from: MACAddress("02:00:00:00:01:01")!, to: destination)
                    .ipv4(from: IPv4Address(198, 18, 0, 1), to: asReplies ? flow.address : IPv4Address(198, 18, 0, 100))
                    .with { $0.transport = .other(protocolNumber: 1) }.payload(body).build()
            }
            frames.append(PacketBuilder.arpRequest(from: MACAddress("02:00:00:00:01:01")!, senderAddress: IPv4Address(198, 18, 0, 1), for: IPv4Address(198, 18, 0, 100)))
            frames += ipv6Frames(to: destination, asReplies: asReplies, asICMPErrors: asICMPErrors)
            for frame in frames {
                for _ in 0..<1000 {
                    if frame.withUnsafeBytes({ transmit.enqueue($0.bytes) }) { break }
                    usleep(1_000)
                }
                transmit.flush()
            }
        }

        /// The IPv6 twin of each kind of frame `sendFlows` sends, the extension header chains in
        /// turn; then a Neighbor Solicitation (not a flow's, like ARP) and a SYN behind five
        /// extension headers (beyond the bound: no flow's either, here as in `FrameParser`).
        func ipv6Frames(to destination: MACAddress, asReplies: Bool, asICMPErrors: Bool) -> [[UInt8]] {
            let vip = KernelFilterTests.virtualAddress6, server = KernelFilterTests.realServer6
            let clientSide = MACAddress("02:00:00:00:01:01")!
            var frames = KernelFilterTests.flows6.enumerated().map { index, flow in
                let chain = KernelFilterTests.extensionChains[index % KernelFilterTests.extensionChains.count]
                let reply = PacketBuilder().ethernet(from: MACAddress("02:00:00:00:02:0b")!, to: destination)
                    .ipv6(from: server, to: flow.address, extensionHeaders: chain)
                    .tcp(sourcePort: 8080, destinationPort: flow.port, flags: [.syn, .ack]).build()
                let request = PacketBuilder().ethernet(from: clientSide, to: destination)
                    .ipv6(from: flow.address, to: asReplies ? server : vip, extensionHeaders: chain)
                    .tcp(sourcePort: flow.port, destinationPort: asReplies ? 8080 : 80, flags: .syn).build()
                guard asICMPErrors else { return asReplies ? reply : request }
                let quoted = asReplies ? PacketBuilder().ipv6(from: flow.address, to: server).tcp(sourcePort: flow.port, destinationPort: 8080, flags: .ack).build()
                                       : PacketBuilder().ipv6(from: vip, to: flow.address).tcp(sourcePort: 80, destinationPort: flow.port, flags: .ack).build()
                // ICMPv6 inside a fragment is no error the parser reads: no fragment header here.
                return PacketBuilder().ethernet(from: clientSide, to: destination)
                    .ipv6(from: asReplies ? server : IPv6Address("2001:2::1")!, to: asReplies ? flow.address : vip,
                          extensionHeaders: chain.filter { $0.number != IPv6Header.fragment })
                    .with { $0.transport = .other(protocolNumber: 58) }.payload([2, 0, 0, 0, 0, 0, 5, 0x28] + quoted[14..<(14 + 48)]).build()
            }
            let solicitation = PacketBuilder().ethernet(from: clientSide, to: vip.solicitedNodeMulticast.multicastMAC)
                .ipv6(from: IPv6Address("2001:2::1")!, to: vip.solicitedNodeMulticast, hopLimit: 255)
                .with { $0.transport = .other(protocolNumber: 58) }.payload([135, 0, 0, 0, 0, 0, 0, 0] + vip.octets + [1, 1] + clientSide.octets).build()
            let buried = PacketBuilder().ethernet(from: clientSide, to: destination)
                .ipv6(from: KernelFilterTests.flows6[0].address, to: vip, extensionHeaders: Array(repeating: (60, [0, 1, 4, 0, 0, 0, 0]), count: 5))
                .tcp(sourcePort: 1, destinationPort: 80, flags: .syn).build()
            frames += [solicitation, buried]
            return frames
        }

        /// What reaches the ring: TCP client endpoints (IPv6 ones in brackets), the number of ARP
        /// frames, and of IPv6 frames that are no flow's (a solicitation, a SYN behind too many
        /// extension headers). Reads until
        /// `expectedFlows` flows and `expectedARP` ARP frames have arrived (at most 5 s), then 200 ms
        /// more, so a frame that should not be there has time to show up too.
        func drain(_ receive: inout PacketReceiveRing, expectedFlows: Int = 0, expectedARP: Int = 0) -> (flows: Set<String>, arp: Int, notFlows6: Int) {
            var flows = Set<String>()
            var arp = 0, notFlows6 = 0
            let start = Date()
            var completeSince: Date?
            while true {
                if completeSince == nil && flows.count >= expectedFlows && arp >= expectedARP { completeSince = Date() }
                if let completeSince, Date().timeIntervalSince(completeSince) > 0.2 { break }
                if Date().timeIntervalSince(start) > 5 { break }
                guard receive.waitForFrames(timeoutMilliseconds: 20) == .ready else { continue }
                _ = receive.drainBurst { frame, _ in
                    switch FrameParser.parse(frame.bytes) {
                    case .ipv4(let flow):
                        // The client endpoint: the source of a client's frame, the destination of a reply.
                        flows.insert(flow.sourcePort == 8080 ? "\(flow.destination):\(flow.destinationPort)" : "\(flow.source):\(flow.sourcePort)")
                    case .icmpError(let error):
                        flows.insert(error.quotedDestinationPort == 8080 ? "\(error.quotedSource):\(error.quotedSourcePort)"
                                                                         : "\(error.quotedDestination):\(error.quotedDestinationPort)")
                    case .ipv6(let flow):
                        flows.insert(flow.sourcePort == 8080 ? "[\(flow.destination)]:\(flow.destinationPort)" : "[\(flow.source)]:\(flow.sourcePort)")
                    case .icmpv6Error(let error):
                        flows.insert(error.quotedDestinationPort == 8080 ? "[\(error.quotedSource)]:\(error.quotedSourcePort)"
                                                                         : "[\(error.quotedDestination)]:\(error.quotedDestinationPort)")
                    case .neighborSolicitation: notFlows6 += 1
                    case .malformed(.tooManyExtensionHeaders): notFlows6 += 1
                    case .arp: arp += 1
                    default: break
                    }
                }
            }
            return (flows, arp, notFlows6)
        }

        @Test("the ownership filter passes exactly the owned buckets, before and after an ownership change")
        func ownershipFilter() throws {
            try withVethPair {
                try insideNamespace {
                    var receive = try PacketReceiveRing(interface: NetworkInterface(named: "kf1"), fanoutGroup: 0, fanoutProgram: nil)
                    var transmit = try PacketTransmitRing(interface: NetworkInterface(named: "kf0"))
                    let destination = try NetworkInterface(named: "kf1").mac
                    // A scattered ownership (hundreds of ranges), then its complement.
                    var generator = SystemRandomNumberGenerator()
                    let scattered = BucketOwnership(bucketCount: KernelFilterTests.bucketCount) { _ in Bool.random(using: &generator) }
                    let complement = BucketOwnership(bucketCount: KernelFilterTests.bucketCount) { !scattered.owns($0) }
                    #expect(scattered.ownedRanges.count > 100)
                    for ownership in [scattered, complement, .evenShare(KernelFilterTests.bucketCount, node: 1, of: 2)] {
                        try OwnershipFilter.attach(ownership, to: receive.socket)
                        _ = drain(&receive)   // what was queued before the new filter
                        let expected = KernelFilterTests.expectedFlows { ownership.owns($0) }
                        sendFlows(&transmit, to: destination)
                        let received = drain(&receive, expectedFlows: expected.count, expectedARP: 1)
                        #expect(received.flows == expected, "ownership \(ownership.ownedCount) buckets: \(received.flows.symmetricDifference(expected).count) flows disagree")
                        #expect(received.arp == 1, "ARP passes whatever the ownership")
                        #expect(received.notFlows6 == 2, "Neighbor Discovery, and what is no flow's, pass whatever the ownership")
                        // ICMP errors about replies to the clients: the quoted destination's bucket.
                        sendFlows(&transmit, to: destination, asICMPErrors: true)
                        let errors = drain(&receive, expectedFlows: expected.count, expectedARP: 1)
                        #expect(errors.flows == expected, "ICMP errors: \(errors.flows.symmetricDifference(expected).count) flows disagree")
                    }
                }
            }
        }

        @Test("the reply filters: worker w of 3 gets the NAT replies to the gateway MAC whose client (destination) bucket is owned and ≡ w mod 3; ARP, Neighbor Discovery for the gateway and what is no flow's at worker 0 only")
        func replyFilter() throws {
            try withVethPair {
                try insideNamespace {
                    let gateway = MACAddress("02:18:00:00:02:fe")!
                    let gateway6 = IPv6Address("2001:2:0:2::fe")!
                    var generator = SystemRandomNumberGenerator()
                    let ownership = BucketOwnership(bucketCount: KernelFilterTests.bucketCount) { _ in Bool.random(using: &generator) }
                    func ring(_ worker: Int) throws -> PacketReceiveRing {
                        try PacketReceiveRing(interface: NetworkInterface(named: "kf1"), fanoutGroup: 0, fanoutProgram: nil,
                                              filter: ReplyFilter.instructions(for: ownership, gatewayMAC: gateway, gatewayAddress6: gateway6,
                                                                               worker: worker, workers: 3))
                    }
                    var ring0 = try ring(0), ring1 = try ring(1), ring2 = try ring(2)
                    var transmit = try PacketTransmitRing(interface: NetworkInterface(named: "kf0"))
                    sendFlows(&transmit, to: gateway, asReplies: true)
                    // Not to the gateway MAC: nobody's reply.
                    sendFlows(&transmit, to: try NetworkInterface(named: "kf1").mac, asReplies: true)
                    // A server asks for the IPv6 gateway (to its solicited-node group).
                    let solicitation = PacketBuilder().ethernet(from: MACAddress("02:00:00:00:02:11")!, to: gateway6.solicitedNodeMulticast.multicastMAC)
                        .ipv6(from: KernelFilterTests.realServer6, to: gateway6.solicitedNodeMulticast, hopLimit: 255)
                        .with { $0.transport = .other(protocolNumber: 58) }
                        .payload([135, 0, 0, 0, 0, 0, 0, 0] + gateway6.octets + [1, 1, 2, 0, 0, 0, 2, 0x11]).build()
                    #expect(solicitation.withUnsafeBytes { transmit.enqueue($0.bytes) })
                    _ = transmit.flush()
                    // Worker 0 also takes what comes to the gateway MAC and is no flow's (here, a
                    // SYN behind too many extension headers; a unicast solicitation in life).
                    func check(_ worker: Int, _ receive: inout PacketReceiveRing, arp: Int = 2, notFlows6: Int = 1) {
                        let expected = KernelFilterTests.expectedFlows { ownership.owns($0) && Int($0) % 3 == worker }
                        let received = drain(&receive, expectedFlows: expected.count, expectedARP: worker == 0 ? arp : 0)
                        #expect(received.flows == expected, "worker \(worker): \(received.flows.symmetricDifference(expected).count) flows disagree")
                        #expect(received.arp == (worker == 0 ? arp : 0), "worker \(worker) got \(received.arp) ARP frames")
                        #expect(received.notFlows6 == (worker == 0 ? notFlows6 : 0), "worker \(worker) got \(received.notFlows6) IPv6 frames that are no flow's")
                    }
                    check(0, &ring0, notFlows6: 2)
                    check(1, &ring1)
                    check(2, &ring2)
                    // ICMP errors from the servers' side about the clients' packets: the quoted source's bucket.
                    sendFlows(&transmit, to: gateway, asReplies: true, asICMPErrors: true)
                    check(0, &ring0, arp: 1)
                    check(1, &ring1, arp: 1)
                    check(2, &ring2, arp: 1)
                    // A new ownership replaces the filter in place.
                    try ReplyFilter.attach(.none(KernelFilterTests.bucketCount), gatewayMAC: gateway, worker: 0, workers: 3, to: ring0.socket)
                    sendFlows(&transmit, to: gateway, asReplies: true)
                    #expect(drain(&ring0, expectedARP: 1).flows.isEmpty, "no bucket owned, no reply")
                }
            }
        }

        @Test("the fan-out program sends bucket b to worker b mod workers")
        func fanout() throws {
            try withVethPair {
                try insideNamespace {
                    let program = FanoutProgram.instructions(bucketCount: KernelFilterTests.bucketCount)
                    let group = UInt16(truncatingIfNeeded: getpid() &+ 7)
                    var first = try PacketReceiveRing(interface: NetworkInterface(named: "kf1"), fanoutGroup: group, fanoutProgram: program)
                    var second = try PacketReceiveRing(interface: NetworkInterface(named: "kf1"), fanoutGroup: group, fanoutProgram: program)
                    var transmit = try PacketTransmitRing(interface: NetworkInterface(named: "kf0"))
                    sendFlows(&transmit, to: try NetworkInterface(named: "kf1").mac)
                    let even = KernelFilterTests.expectedFlows { $0 % 2 == 0 }
                    let odd = KernelFilterTests.expectedFlows { $0 % 2 == 1 }
                    let atFirst = drain(&first, expectedFlows: even.count, expectedARP: 1)
                    let atSecond = drain(&second, expectedFlows: odd.count)
                    // ICMP errors about replies to the clients follow their flows.
                    sendFlows(&transmit, to: try NetworkInterface(named: "kf1").mac, asICMPErrors: true)
                    #expect(drain(&first, expectedFlows: even.count, expectedARP: 1).flows == even)
                    #expect(drain(&second, expectedFlows: odd.count).flows == odd)
                    // The kernel numbers group members in the order they joined.
                    #expect(atFirst.flows == even)
                    #expect(atSecond.flows == odd)
                    #expect(atFirst.arp == 1 && atSecond.arp == 0, "frames that are not flows go to worker 0")
                    #expect(atFirst.notFlows6 == 2 && atSecond.notFlows6 == 0, "Neighbor Discovery, and what is no flow's, go to worker 0")
                }
            }
        }
    }
}

/// The kernel programs as assembled, without a kernel: the classic-BPF limits they must stay
/// inside whatever the ownership (runs beside the unit tests; no namespace).
@Suite("Kernel programs, assembled")
struct KernelProgramAssemblyTests {
    @Test("the worst ownership (every other bucket) stays inside 4,096 instructions, and no conditional jump comes near its 255 reach")
    func limits() {
        let worst = BucketOwnership(bucketCount: 1024) { $0 % 2 == 0 }
        #expect(worst.ownedRanges.count == 512)
        let programs = [
            ("ownership filter", OwnershipFilter.instructions(for: worst)),
            ("reply filter", ReplyFilter.instructions(for: worst, gatewayMAC: MACAddress("02:18:00:00:02:fe")!, worker: 1, workers: 2)),
            ("fan-out program", FanoutProgram.instructions(bucketCount: 1024)),
        ]
        for (name, program) in programs {
            #expect(program.count <= 4096, "\(name): \(program.count) instructions")
            // BPF_JA (0x05 with BPF_JMP) carries its offset in k; the others in jt and jf.
            let conditional = program.filter { $0.code & 0x07 == 0x05 && $0.code & 0xF0 != 0x00 }
            let longest = conditional.map { max(Int($0.jt), Int($0.jf)) }.max() ?? 0
            #expect(longest <= 128, "\(name): a conditional jump of \(longest) instructions (the limit is 255)")
        }
    }
}
