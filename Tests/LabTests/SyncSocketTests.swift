import DirectorWire
import Foundation
import PacketIO
import Testing

extension LabSuites {
    /// The pair's UDP socket on loopback (root: it binds to a device and forces its buffers).
    @Suite("Sync socket")
    struct SyncSocketTests {
        /// A killed peer whose host still answers sends back an ICMP port unreachable for each
        /// datagram; the connected socket reports it on the next send, which sends nothing unless
        /// the error is taken and the send repeated. Every heartbeat must still leave.
        @Test("the peer's port unreachable: every send still leaves, none is lost to the earlier datagram's error")
        func peerPortUnreachable() throws {
            let socket = try SyncSocket(local: IPv4Address(127, 0, 0, 1), peer: IPv4Address(127, 0, 0, 2), port: 47_991, device: "lo")
            var sent = 0
            for _ in 0..<20 {
                if socket.send([UInt8](repeating: 0xA5, count: 64)) { sent += 1 }
                // Time for the ICMP error to come back before the next send.
                usleep(2_000)
            }
            #expect(sent == 20, "\(sent) of 20 datagrams left")
            var buffer = [UInt8](repeating: 0, count: 256)
            // The last datagram's error is still pending; a receive takes it and finds nothing.
            if case .datagram = socket.receive(into: &buffer) { Issue.record("nothing was sent to this socket") }
        }
    }
}
