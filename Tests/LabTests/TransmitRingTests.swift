import DirectorCore
import DirectorLab
import DirectorWire
import Foundation
import PacketIO
import Testing

extension LabSuites {
    /// The transmit ring's handling of frames whose sender left the TCP checksum to offload
    /// (TP_STATUS_CSUMNOTREADY on receive), in the kernel, on a veth pair in a namespace.
    @Suite("Transmit ring")
    struct TransmitRingTests {
        static let namespace = "ttx"

        /// A TCP segment with a correct checksum, and the same with only the pseudo-header sum
        /// in the field, as a sender leaves it for offload.
        static func frames() -> (full: [UInt8], partial: [UInt8]) {
            let segment = PacketBuilder().tcp(sourcePort: 40000, destinationPort: 80, flags: [.ack, .psh]).payload((0..<100).map { UInt8($0) })
            return (segment.build(), segment.with { $0.transportChecksumLeftToOffload = true }.build())
        }

        /// The first TCP frame to reach the ring, and whether it came flagged as checksum-pending.
        func receiveOne(_ ring: inout PacketReceiveRing) -> (bytes: [UInt8], pending: Bool, vlanTag: VLANTag)? {
            let deadline = Date().addingTimeInterval(3)
            var received: (bytes: [UInt8], pending: Bool, vlanTag: VLANTag)?
            while received == nil && Date() < deadline {
                guard ring.waitForFrames(timeoutMilliseconds: 20) == .ready else { continue }
                _ = ring.drainBurst { frame, metadata in
                    guard received == nil, case .ipv4 = FrameParser.parse(frame.bytes) else { return }
                    received = (frame.bytes.withUnsafeBytes { Array($0) }, metadata.checksumPending, metadata.vlanTag)
                }
            }
            return received
        }

        @Test("a pending checksum arrives complete, or flagged for the receiver to complete", arguments: [true, false])
        func pendingChecksum(virtioHeader: Bool) throws {
            try withVethPair(namespace: TransmitRingTests.namespace) {
                try insideNamespace(TransmitRingTests.namespace) {
                    var receive = try PacketReceiveRing(interface: NetworkInterface(named: "kf1"), fanoutGroup: 0, fanoutProgram: nil)
                    var transmit = try PacketTransmitRing(interface: NetworkInterface(named: "kf0"), useVirtioHeader: virtioHeader)
                    #expect(transmit.usesVirtioHeader == virtioHeader)
                    let (full, partial) = TransmitRingTests.frames()
                    let checksum = TransportChecksum(start: 34, fieldOffset: 16, end: partial.count)
                    #expect(partial.withUnsafeBytes { transmit.enqueue($0.bytes, pendingChecksum: checksum) })
                    transmit.flush()
                    guard case (var bytes, let pending, _)? = receiveOne(&receive) else { Issue.record("nothing arrived"); return }
                    if virtioHeader {
                        // The kernel carried the frame as checksum-partial to the receiver.
                        #expect(pending && bytes == partial)
                        bytes.withUnsafeMutableBytes { buffer in
                            var span = buffer.mutableBytes
                            InternetChecksum.complete(&span, start: checksum.start, fieldOffset: checksum.fieldOffset, end: checksum.end)
                        }
                    } else {
                        #expect(!pending, "completed in the ring: nothing left for the receiver")
                    }
                    #expect(bytes == full, "the checksum is right once completed")
                }
            }
        }

        @Test("a frame that came with an 802.1Q tag leaves with it, from the transmit ring (the checksum's place moves with it) and from send(2)",
              arguments: [true, false])
        func vlanTagKept(virtioHeader: Bool) throws {
            try withVethPair(namespace: TransmitRingTests.namespace) {
                try insideNamespace(TransmitRingTests.namespace) {
                    var receive = try PacketReceiveRing(interface: NetworkInterface(named: "kf1"), fanoutGroup: 0, fanoutProgram: nil)
                    var transmit = try PacketTransmitRing(interface: NetworkInterface(named: "kf0"), useVirtioHeader: virtioHeader)
                    let (full, partial) = TransmitRingTests.frames()
                    let checksum = TransportChecksum(start: 34, fieldOffset: 16, end: partial.count)
                    let tag = VLANTag(protocolIdentifier: EtherType.vlan, controlInformation: 0x2007)
                    #expect(partial.withUnsafeBytes { transmit.enqueue($0.bytes, pendingChecksum: checksum, vlanTag: tag) })
                    transmit.flush()
                    // The receiving side's kernel moves the tag out of the frame again, as it
                    // does for the director's receive ring.
                    guard case (var bytes, let pending, let received)? = receiveOne(&receive) else { Issue.record("nothing arrived"); return }
                    #expect(received == tag, "tag \(String(received.rawValue, radix: 16)) arrived")
                    if pending {
                        bytes.withUnsafeMutableBytes { buffer in
                            var span = buffer.mutableBytes
                            InternetChecksum.complete(&span, start: checksum.start, fieldOffset: checksum.fieldOffset, end: checksum.end)
                        }
                    }
                    #expect(bytes == full, "the frame under the tag is the one sent, checksum right")

                    // The frames that go back out of the front with send(2) (ARP answers) too.
                    let front = try PacketReceiveRing(interface: NetworkInterface(named: "kf0"), fanoutGroup: 0, fanoutProgram: nil)
                    #expect(full.withUnsafeBytes { PacketReceiveRing.send($0.bytes, on: front.socket, vlanTag: tag) })
                    guard case (let sent, _, let sentTag)? = receiveOne(&receive) else { Issue.record("the sent frame did not arrive"); return }
                    #expect(sentTag == tag && sent == full, "send(2) puts the tag back as the ring does")
                }
            }
        }
    }
}
