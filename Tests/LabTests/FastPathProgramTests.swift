import DirectorCore
import DirectorWire
import Foundation
import PacketIO
import Testing

private let vipMAC = MACAddress("02:00:00:00:00:64")!
private let clientMAC = MACAddress("02:00:00:00:01:01")!
private let serverMAC = MACAddress("02:00:00:00:02:0b")!
private let vip = IPv4Address(198, 18, 0, 100)
private let toVIP = PacketBuilder().ethernet(from: clientMAC, to: vipMAC).ipv4(from: IPv4Address(198, 18, 1, 10), to: vip)

/// XDP's actions (linux/bpf.h).
private enum Action: UInt32, CustomStringConvertible {
    case aborted = 0, drop, pass, tx, redirect
    var description: String { ["ABORTED", "DROP", "PASS", "TX", "REDIRECT"][Int(rawValue)] }
}

/// The XDP program run by the kernel itself (BPF_PROG_TEST_RUN: loaded, never attached, nothing
/// sent), its maps set as a director sets them: the same bucket function as `ClientBucket`, the
/// rewrite, and everything it must leave to the ring.
@Suite("XDP program, run by the kernel", .enabled(if: getuid() == 0, "loading BPF needs root"))
struct FastPathProgramTests {
    static let ownership = BucketOwnership.evenShare(1024, node: 0, of: 2)

    static func load() throws -> XDPFastPath {
        let loopback = try NetworkInterface(named: "lo")
        let program = try XDPFastPath(front: loopback, back: loopback, virtualMAC: vipMAC, ownership: ownership, flowCapacity: 1024, attaching: false)
        try program.setVirtualAddresses([vip])
        return program
    }

    @Test("2,000 client endpoints: the program drops exactly the frames of buckets not owned (ClientBucket's buckets) and passes the owned ones to the ring")
    func bucketsAgreeWithClientBucket() throws {
        let program = try FastPathProgramTests.load()
        var generator = SystemRandomNumberGenerator()
        var dropped = 0, mismatches: [String] = []
        for _ in 0..<2000 {
            let address = IPv4Address(rawValue: UInt32.random(in: 0xC612_0000...0xC613_FFFF, using: &generator))
            let port = UInt16.random(in: 1024...65535, using: &generator)
            let frame = PacketBuilder().ethernet(from: clientMAC, to: vipMAC).ipv4(from: address, to: vip)
                .tcp(sourcePort: port, destinationPort: 80, flags: .ack).payload([1, 2, 3]).build()
            let owned = FastPathProgramTests.ownership.owns(ClientBucket.bucket(address: address, port: port, bucketCount: 1024))
            let action = Action(rawValue: try program.testRun(frame).action)
            if action == .drop { dropped += 1 }
            if action != (owned ? .pass : .drop) { mismatches.append("\(address):\(port) → \(action.map(String.init(describing:)) ?? "?")") }
        }
        print("xdp program: of 2000 client endpoints it dropped \(dropped) (the other dispatcher's), passed \(2000 - dropped); \(mismatches.count) disagree with ClientBucket")
        #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")
        #expect((800...1200).contains(dropped))
    }

    @Test("the host's own traffic is never the program's: frames to another address or MAC pass, owned bucket or not")
    func hostTrafficPasses() throws {
        let program = try FastPathProgramTests.load()
        let host = IPv4Address(198, 18, 0, 2)
        // A client endpoint in a bucket the peer owns: dropped when sent to the VIP, passed otherwise.
        let client = IPv4Address(198, 18, 1, 10)
        let port = (UInt16(1024)...).first { !FastPathProgramTests.ownership.owns(ClientBucket.bucket(address: client, port: $0, bucketCount: 1024)) }!
        func frame(to address: IPv4Address, mac: MACAddress) -> [UInt8] {
            PacketBuilder().ethernet(from: clientMAC, to: mac).ipv4(from: client, to: address).tcp(sourcePort: port, destinationPort: 22, flags: .ack).build()
        }
        #expect(Action(rawValue: try program.testRun(frame(to: vip, mac: vipMAC)).action) == .drop, "the peer's bucket, for the VIP")
        #expect(Action(rawValue: try program.testRun(frame(to: host, mac: vipMAC)).action) == .pass, "the host's address behind the VIPs' MAC (virtual_mac defaults to the interface's)")
        #expect(Action(rawValue: try program.testRun(frame(to: vip, mac: MACAddress("02:00:00:00:00:99")!)).action) == .pass, "another MAC")
        try program.setVirtualAddresses([])
        #expect(Action(rawValue: try program.testRun(frame(to: vip, mac: vipMAC)).action) == .pass, "a VIP no service has any more")
    }

    @Test("an offered flow is redirected with the server's MAC and the back MAC; its SYN, FIN and RST, and a flushed offer, go to the ring")
    func offeredFlow() throws {
        let program = try FastPathProgramTests.load()
        let back = try NetworkInterface(named: "lo")
        // A client endpoint in an owned bucket.
        let client = IPv4Address(198, 18, 1, 10)
        let port = (UInt16(1024)...).first { FastPathProgramTests.ownership.owns(ClientBucket.bucket(address: client, port: $0, bucketCount: 1024)) }!
        let flow = FastPathFlow(clientAddress: client, virtualAddress: vip, clientPort: port, virtualPort: 80, transport: .tcp, serverMAC: serverMAC)
        func segment(_ flags: TCPFlags) -> [UInt8] { toVIP.tcp(sourcePort: port, destinationPort: 80, flags: flags).payload([7, 7, 7]).build() }

        #expect(Action(rawValue: try program.testRun(segment(.ack)).action) == .pass, "not offered yet: the ring's")
        #expect(program.offer(flow, generation: program.generation, nowNanoseconds: 1))
        let (action, sent) = try program.testRun(segment(.ack))
        #expect(Action(rawValue: action) == .redirect)
        let input = segment(.ack)
        #expect(Array(sent.prefix(12)) == serverMAC.octets + back.mac.octets, "the MACs direct routing writes")
        #expect(Array(sent.dropFirst(12)) == Array(input.dropFirst(12)), "nothing else changes")
        #expect((program.lastSeenMilliseconds(flow) ?? 0) > 0, "the program stamps the flow's last frame")

        for control: TCPFlags in [.syn, [.fin, .ack], .rst] {
            #expect(Action(rawValue: try program.testRun(segment(control)).action) == .pass, "\(control): the workers follow the state")
        }
        var wrongMAC = PacketBuilder().ethernet(from: clientMAC, to: MACAddress("02:00:00:00:00:99")!).ipv4(from: client, to: vip)
        wrongMAC = wrongMAC.tcp(sourcePort: port, destinationPort: 80, flags: .ack)
        #expect(Action(rawValue: try program.testRun(wrongMAC.build()).action) == .pass, "not sent to the VIPs' MAC")
        var fragment = toVIP.tcp(sourcePort: port, destinationPort: 80, flags: .ack)
        fragment.fragmentField = 0x2000   // more fragments
        #expect(Action(rawValue: try program.testRun(fragment.build()).action) == .pass, "a first fragment: the ring's")
        // IP options move the ports: the program follows the header length.
        let withOptions = PacketBuilder().ethernet(from: clientMAC, to: vipMAC).ipv4(from: client, to: vip, options: [1, 1, 1, 1])
            .tcp(sourcePort: port, destinationPort: 80, flags: .ack).payload([7]).build()
        #expect(Action(rawValue: try program.testRun(withOptions).action) == .redirect, "IP options")
        // A UDP flow of its own.
        let datagram = toVIP.udp(sourcePort: port, destinationPort: 53).payload([1, 2]).build()
        #expect(Action(rawValue: try program.testRun(datagram).action) == .pass, "not offered")
        let udp = FastPathFlow(clientAddress: client, virtualAddress: vip, clientPort: port, virtualPort: 53, transport: .udp, serverMAC: serverMAC)
        #expect(program.offer(udp, generation: program.generation, nowNanoseconds: 1))
        #expect(Action(rawValue: try program.testRun(datagram).action) == .redirect, "UDP offered")
        let tagged = PacketBuilder().ethernet(from: clientMAC, to: vipMAC, vlanID: 7).ipv4(from: client, to: vip)
            .tcp(sourcePort: port, destinationPort: 80, flags: .ack).build()
        #expect(Action(rawValue: try program.testRun(tagged).action) == .pass, "VLAN-tagged: the ring's")
        #expect(Action(rawValue: try program.testRun(Array(segment(.ack).prefix(30))).action) == .pass, "truncated: the ring's (its parser counts it)")

        program.flush()
        #expect(Action(rawValue: try program.testRun(segment(.ack)).action) == .pass, "a flush: the offer no longer counts")
        #expect(program.offer(flow, generation: program.generation, nowNanoseconds: 1))
        #expect(Action(rawValue: try program.testRun(segment(.ack)).action) == .redirect, "offered again under the new generation")
        // A lapsed lease (the director dead or hung): the ring's, which no longer reads.
        #expect(program.renewLease(until: 1))
        #expect(Action(rawValue: try program.testRun(segment(.ack)).action) == .pass, "the lease lapsed")
        #expect(program.renewLease(until: UInt64.max))
        #expect(Action(rawValue: try program.testRun(segment(.ack)).action) == .redirect, "renewed")
        program.withdraw(flow)
        #expect(Action(rawValue: try program.testRun(segment(.ack)).action) == .pass, "withdrawn")
        #expect(program.lastSeenMilliseconds(flow) == nil)

        var taken = FastPathProgramTests.ownership
        taken.set(ClientBucket.bucket(address: client, port: port, bucketCount: 1024), owned: false)
        try program.setOwnership(taken)
        #expect(Action(rawValue: try program.testRun(segment(.ack)).action) == .drop, "its bucket moved to the peer: a map update")
        let counters = Dictionary(uniqueKeysWithValues: zip(XDPFastPath.counterNames, program.counterValues()))
        print("xdp program counters: \(counters.filter { $0.value > 0 }.sorted { $0.key < $1.key })")
        #expect(counters["fast_path_redirected"] == 5 && counters["fast_path_passed_control_segment"] == 3)
        #expect(counters["fast_path_passed_lease_expired"] == 1)
    }

    @Test("what the program forwards counts under the flow's real server and service, in IP bytes; a flow of an id beyond its arrays is forwarded and counted apart")
    func trafficByServerAndService() throws {
        let program = try FastPathProgramTests.load()
        let client = IPv4Address(198, 18, 1, 10)
        let port = (UInt16(1024)...).first { FastPathProgramTests.ownership.owns(ClientBucket.bucket(address: client, port: $0, bucketCount: 1024)) }!
        var flow = FastPathFlow(clientAddress: client, virtualAddress: vip, clientPort: port, virtualPort: 80, transport: .tcp,
                                serverMAC: serverMAC, serverID: 3, serviceID: 5)
        let frame = toVIP.tcp(sourcePort: port, destinationPort: 80, flags: .ack).payload([UInt8](repeating: 7, count: 100)).build()
        let ipBytes = UInt64(frame.count - 14)
        #expect(Action(rawValue: try program.testRun(frame).action) == .pass, "not offered yet: the ring counts it")
        #expect(program.offer(flow, generation: program.generation, nowNanoseconds: 1))
        for _ in 0..<4 { #expect(Action(rawValue: try program.testRun(frame).action) == .redirect) }
        #expect(program.serverTraffic(3).packets == 4 && program.serverTraffic(3).bytes == 4 * ipBytes, "\(program.serverTraffic(3))")
        #expect(program.serviceTraffic(5).packets == 4 && program.serviceTraffic(5).bytes == 4 * ipBytes, "\(program.serviceTraffic(5))")
        #expect(program.serverTraffic(5).packets == 0 && program.serviceTraffic(3).packets == 0, "servers and services apart")

        flow.serverID = UInt16(XDPFastPath.trafficIDs)
        #expect(program.offer(flow, generation: program.generation, nowNanoseconds: 1))
        #expect(Action(rawValue: try program.testRun(frame).action) == .redirect, "forwarded all the same")
        let counters = Dictionary(uniqueKeysWithValues: zip(XDPFastPath.counterNames, program.counterValues()))
        #expect(counters["fast_path_uncounted_traffic"] == 1 && counters["fast_path_redirected"] == 5)
        #expect(program.serviceTraffic(5).packets == 5 && program.serverTraffic(3).packets == 4, "its service counted it, the old id did not")
    }
}
