import DirectorLab
import DirectorWire
import Foundation
import LoadGeneration
import PacketIO
import Testing

/// The benchmark's XDP generator against the Swift one it stands in for: the same frames, byte
/// for byte, from the same plan.
@Suite("XDP traffic generator, run by the kernel", .enabled(if: getuid() == 0, "loading BPF needs root"))
struct XDPTrafficGeneratorTests {
    static func plan(flows: Int, frameLength: Int = 0) -> TrafficPlan {
        TrafficPlan(pattern: .established, flows: flows, frameLength: frameLength, destination: IPv4Address(198, 18, 0, 100), destinationPort: 80,
                    sourceMAC: MACAddress("02:18:00:00:01:01")!, destinationMAC: MACAddress("02:18:00:00:00:64")!)
    }

    @Test("fixtures: plan (flows, frame length) and frame number → the frame FrameSynthesizer writes, with the program's stamp; it goes to the output interface", arguments: [
        (10_000, 0, UInt64(0)), (10_000, 0, 1), (10_000, 0, 9_999), (10_000, 0, 10_000), (10_000, 0, 123_457),
        // Two client addresses: flows past the first address's 64,512 ports.
        (100_000, 0, 64_511), (100_000, 0, 64_512), (100_000, 0, 5_000_001),
        // A payload of zeros after the stamp; an odd length.
        (10_000, 200, 77), (10_000, 1514, 10_003), (10_000, 91, 3),
    ])
    func framesMatchTheSynthesizer(flows: Int, frameLength: Int, frame n: UInt64) throws {
        let plan = XDPTrafficGeneratorTests.plan(flows: flows, frameLength: frameLength)
        let program = try XDPTrafficProgram(plan: plan, outputIndex: 7)
        try program.start(at: n)
        let before = TrafficSender.nanoseconds(CLOCK_REALTIME)
        let (action, made) = try program.makeOne()
        let after = TrafficSender.nanoseconds(CLOCK_REALTIME)
        #expect(action == 4, "XDP_REDIRECT")
        #expect(try program.nextFrame() == n + 1)
        let stamp = try #require(made.withUnsafeBytes { FrameStamp($0.bytes, at: plan.headerLength) })
        // The program's clock is CLOCK_MONOTONIC moved onto CLOCK_REALTIME at `start`.
        #expect(stamp.sentAt + 1_000_000 >= before && stamp.sentAt <= after + 1_000_000, "stamped \(stamp.sentAt), between \(before) and \(after)")
        var synthesizer = FrameSynthesizer(plan: plan)
        let expected = synthesizer.withFrame(n, time: stamp.sentAt) { $0.withUnsafeBytes { Array($0) } }
        #expect(made == expected)
    }

    @Test("a page that comes back as a device left it (MACs rewritten, DNAT's address, a routed TTL, a stale stamp) still makes the plan's frame")
    func rewrittenPageMakesTheSameFrame() throws {
        let plan = XDPTrafficGeneratorTests.plan(flows: 10_000)
        let program = try XDPTrafficProgram(plan: plan, outputIndex: 7)
        var synthesizer = FrameSynthesizer(plan: plan)
        var page = synthesizer.withFrame(4_242, time: 99) { $0.withUnsafeBytes { Array($0) } }
        for offset in 0..<12 { page[offset] = 0xAB }   // both MACs
        page[22] = 63                                     // TTL
        page[30...33] = [198, 18, 2, 11]                  // destination address
        try program.start(at: 17)
        let (_, made) = try program.makeOne(from: page)
        let stamp = try #require(made.withUnsafeBytes { FrameStamp($0.bytes, at: plan.headerLength) })
        #expect(made == synthesizer.withFrame(17, time: stamp.sentAt) { $0.withUnsafeBytes { Array($0) } })
    }

    @Test("a plan of anything but established flows is refused, naming the pattern")
    func onlyEstablished() {
        var plan = XDPTrafficGeneratorTests.plan(flows: 10)
        plan.pattern = .syn
        #expect { try XDPTrafficProgram(plan: plan, outputIndex: 1) } throws: { "\($0)".contains("established flows only, not syn") }
    }
}

extension LabSuites {
    @Suite("XDP traffic generator, live")
    struct XDPTrafficGeneratorLiveTests {
        @Test("paced at 20,000 frames/s, 2,000 live frames leave through veth as XDP frames and arrive at the peer, each the plan's, in order")
        func liveFramesArrive() throws {
            try withVethPair(namespace: "txgen") {
                // The receiving end in NAPI mode, which veth needs to take XDP frames.
                try Shell.run(["ip", "netns", "exec", "txgen", "ethtool", "-K", "kf1", "gro", "on"])
                try insideNamespace("txgen") {
                    let plan = XDPTrafficGeneratorTests.plan(flows: 500)
                    var ring = try PacketReceiveRing(interface: try NetworkInterface(named: "kf1"), fanoutGroup: 0, fanoutProgram: nil)
                    var sender = TrafficSender(count: 2_000, rate: 20_000, seconds: 10)
                    sender.startAt = 1_000
                    let summary = try XDPTrafficSender(bounds: sender).send(plan, on: try NetworkInterface(named: "kf0"))
                    #expect(summary.frames == 2_000)
                    #expect(summary.seconds > 0.05 && summary.seconds < 1, "paced: \(summary.seconds) s for 2,000 frames at 20,000/s")
                    var numbers: [UInt64] = []
                    while ring.waitForFrames(timeoutMilliseconds: 200) == .ready {
                        _ = ring.drainBurst { frame, _ in
                            guard case .ipv4(let packet) = FrameParser.parse(frame.bytes),
                                  let flow = plan.flow(address: packet.source, port: packet.sourcePort),
                                  let stamp = FrameStamp(frame.bytes, at: plan.headerLength) else { return }
                            numbers.append(UInt64(stamp.packet) * UInt64(plan.flows) + UInt64(flow))
                        }
                    }
                    #expect(numbers == Array(1_000..<3_000))
                }
            }
        }
    }
}
