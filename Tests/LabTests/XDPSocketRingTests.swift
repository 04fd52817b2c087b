import DirectorWire
import Foundation
import PacketIO
import Testing

extension LabSuites {
    /// The AF_XDP receive ring and the program that feeds it, in the kernel, on a veth pair in a
    /// namespace: frames sent on kf0 arrive on kf1, where the program runs.
    @Suite("AF_XDP receive ring")
    struct XDPSocketRingTests {
        static let namespace = "txsk"

        /// `count` distinct TCP frames (the sequence number tells them apart).
        static func frames(_ count: Int) -> [[UInt8]] {
            (0..<count).map { n in
                PacketBuilder().tcp(sourcePort: 40000, destinationPort: 80, flags: [.ack, .psh], sequence: UInt32(n))
                    .payload((0..<64).map { UInt8(truncatingIfNeeded: $0 &+ n) }).build()
            }
        }

        static func send(_ frames: [[UInt8]], on interface: String) throws {
            var transmit = try PacketTransmitRing(interface: NetworkInterface(named: interface), useVirtioHeader: false)
            for frame in frames {
                // A full ring is flushed and the frame tried again.
                while !frame.withUnsafeBytes({ transmit.enqueue($0.bytes) }) { transmit.flush() }
            }
            transmit.flush()
        }

        /// Everything the socket receives until it has been quiet for 200 ms (at most 3 s).
        static func receiveAll(_ ring: inout XDPSocketRing) -> [[UInt8]] {
            var received: [[UInt8]] = []
            let deadline = Date().addingTimeInterval(3)
            var quietSince = Date()
            while Date() < deadline && Date().timeIntervalSince(quietSince) < 0.2 {
                guard ring.waitForFrames(timeoutMilliseconds: 20) else { continue }
                _ = ring.drainBurst { received.append($0.withUnsafeBytes { Array($0) }) }
                quietSince = Date()
            }
            return received
        }

        /// The frames a packet socket on `ring`'s interface saw: TCP ones only (the kernel's own
        /// are not the test's).
        static func tcpFrames(in ring: inout PacketReceiveRing) -> Int {
            var count = 0
            while ring.waitForFrames(timeoutMilliseconds: 100) == .ready {
                _ = ring.drainBurst { frame, _ in if case .ipv4 = FrameParser.parse(frame.bytes) { count += 1 } }
            }
            return count
        }

        @Test("every frame redirected to the socket arrives once, byte for byte, in order, through more rounds of the UMEM than it has frames; the stack sees none")
        func framesArriveWhole() throws {
            try withVethPair(namespace: XDPSocketRingTests.namespace) {
                try insideNamespace(XDPSocketRingTests.namespace) {
                    let interface = try NetworkInterface(named: "kf1")
                    let program = try SocketRedirectProgram(interface: interface)
                    var socketRing = try XDPSocketRing(interface: interface, frameCount: 64)
                    try program.register(socketRing.socket, queue: socketRing.queue)
                    var packetRing = try PacketReceiveRing(interface: interface, fanoutGroup: 0, fanoutProgram: nil)
                    var received: [[UInt8]] = []
                    // 5 × 32 frames through a UMEM of 64: each frame read goes back to the kernel.
                    let sent = XDPSocketRingTests.frames(160)
                    for batch in stride(from: 0, to: sent.count, by: 32) {
                        try XDPSocketRingTests.send(Array(sent[batch..<batch + 32]), on: "kf0")
                        received += XDPSocketRingTests.receiveAll(&socketRing)
                    }
                    #expect(received.count == sent.count)
                    #expect(received == sent, "the frames as sent, in order")
                    #expect(try socketRing.drops() == XDPSocketRing.Drops(receiveRingFull: 0, fillRingEmpty: 0, other: 0))
                    #expect(XDPSocketRingTests.tcpFrames(in: &packetRing) == 0, "a redirected frame never reaches the stack")
                    withExtendedLifetime(program) {}
                }
            }
        }

        @Test("with no socket registered, the program passes every frame to the stack, where a packet socket sees it")
        func noSocketPasses() throws {
            try withVethPair(namespace: XDPSocketRingTests.namespace) {
                try insideNamespace(XDPSocketRingTests.namespace) {
                    let interface = try NetworkInterface(named: "kf1")
                    let program = try SocketRedirectProgram(interface: interface)
                    var packetRing = try PacketReceiveRing(interface: interface, fanoutGroup: 0, fanoutProgram: nil)
                    try XDPSocketRingTests.send(XDPSocketRingTests.frames(50), on: "kf0")
                    #expect(XDPSocketRingTests.tcpFrames(in: &packetRing) == 50)
                    withExtendedLifetime(program) {}
                }
            }
        }

        @Test("frames that find the receive ring full are dropped and counted as such; the ring's frames are read afterwards")
        func fullRingCounted() throws {
            try withVethPair(namespace: XDPSocketRingTests.namespace) {
                try insideNamespace(XDPSocketRingTests.namespace) {
                    let interface = try NetworkInterface(named: "kf1")
                    let program = try SocketRedirectProgram(interface: interface)
                    // A receive ring of 32 frames, not read while 100 arrive.
                    var socketRing = try XDPSocketRing(interface: interface, frameCount: 64)
                    try program.register(socketRing.socket, queue: socketRing.queue)
                    let sent = XDPSocketRingTests.frames(100)
                    for batch in stride(from: 0, to: sent.count, by: 20) {
                        try XDPSocketRingTests.send(Array(sent[batch..<batch + 20]), on: "kf0")
                        usleep(20_000)
                    }
                    let received = XDPSocketRingTests.receiveAll(&socketRing)
                    let drops = try socketRing.drops()
                    #expect(received == Array(sent.prefix(32)), "the first 32, whole")
                    #expect(drops == XDPSocketRing.Drops(receiveRingFull: 68, fillRingEmpty: 0, other: 0))
                    withExtendedLifetime(program) {}
                }
            }
        }
    }
}
