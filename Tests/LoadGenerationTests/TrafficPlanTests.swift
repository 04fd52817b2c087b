import DirectorWire
import LoadGeneration
import Testing

private let vip = IPv4Address(198, 18, 0, 100)
private let generatorMAC = MACAddress("02:18:00:00:01:01")!
private let vipMAC = MACAddress("02:18:00:00:00:64")!

func plan(_ pattern: TrafficPattern, flows: Int, segments: Int = 8, frameLength: Int = 0) -> TrafficPlan {
    TrafficPlan(pattern: pattern, flows: flows, segmentsPerFlow: segments, frameLength: frameLength,
                destination: vip, destinationPort: 80, sourceMAC: generatorMAC, destinationMAC: vipMAC)
}

struct ScheduleFixture: CustomTestStringConvertible, Sendable {
    let name: String
    let plan: TrafficPlan
    let frame: UInt64
    let flow: Int
    let packet: UInt32
    let kind: FrameKind
    var testDescription: String { name }
}

/// Which flow, packet number and kind frame n of each pattern is.
private let scheduleFixtures: [ScheduleFixture] = [
    .init(name: "established: first round", plan: plan(.established, flows: 3), frame: 2, flow: 2, packet: 0, kind: .data),
    .init(name: "established: second round", plan: plan(.established, flows: 3), frame: 4, flow: 1, packet: 1, kind: .data),
    .init(name: "udp: rounds like established", plan: plan(.udp, flows: 5), frame: 12, flow: 2, packet: 2, kind: .datagram),
    .init(name: "syn: flows round and round", plan: plan(.syn, flows: 3), frame: 7, flow: 1, packet: 2, kind: .syn),
    .init(name: "syn: more flows than frames, every SYN a new flow", plan: plan(.syn, flows: 1_000_000_000), frame: 1_000_000, flow: 1_000_000, packet: 0, kind: .syn),
    .init(name: "tcp-flows: SYN opens", plan: plan(.tcpFlows, flows: 2, segments: 2), frame: 1, flow: 1, packet: 0, kind: .syn),
    .init(name: "tcp-flows: data", plan: plan(.tcpFlows, flows: 2, segments: 2), frame: 4, flow: 0, packet: 2, kind: .data),
    .init(name: "tcp-flows: FIN closes", plan: plan(.tcpFlows, flows: 2, segments: 2), frame: 7, flow: 1, packet: 3, kind: .fin),
    .init(name: "tcp-flows: the next flow on a fresh port", plan: plan(.tcpFlows, flows: 2, segments: 2), frame: 9, flow: 3, packet: 0, kind: .syn),
]

@Suite("Traffic plan")
struct TrafficPlanTests {
    @Test("frame n of a plan", arguments: scheduleFixtures)
    func schedule(_ fixture: ScheduleFixture) {
        let frame = fixture.plan.frame(fixture.frame)
        #expect(frame.flow == fixture.flow)
        #expect(frame.packet == fixture.packet)
        #expect(frame.kind == fixture.kind)
    }

    @Test("a flow's client address and port lead back to the flow", arguments: [0, 1, 64_511, 64_512, 10_000_000])
    func addressing(flow: Int) {
        let plan = plan(.established, flows: 10_000_001)
        let client = plan.client(of: flow)
        #expect(plan.flow(address: client.address, port: client.port) == flow)
    }

    @Test("clients below the plan's first address or port belong to no flow")
    func foreignClients() {
        let plan = plan(.established, flows: 10)
        #expect(plan.flow(address: IPv4Address(198, 19, 0, 0), port: 2000) == nil)
        #expect(plan.flow(address: IPv4Address(198, 19, 0, 1), port: 80) == nil)
    }

    @Test("distinct flows a run touches")
    func distinctFlows() {
        #expect(plan(.established, flows: 100).distinctFlows(frames: 50) == 50)
        #expect(plan(.established, flows: 100).distinctFlows(frames: 5_000) == 100)
        #expect(plan(.syn, flows: 1).distinctFlows(frames: 5_000) == 1)
        #expect(plan(.syn, flows: 1_000_000_000).distinctFlows(frames: 5_000) == 5_000)
        // 10 frames per flow life: 2,000 frames over 100 flows are two generations.
        #expect(plan(.tcpFlows, flows: 100, segments: 8).distinctFlows(frames: 2_000) == 200)
        #expect(plan(.tcpFlows, flows: 100, segments: 8).distinctFlows(frames: 2_001) == 300)
    }

    @Test("plans the generator must refuse")
    func problems() {
        #expect(plan(.established, flows: 10).problem() == nil)
        #expect(plan(.established, flows: 0).problem() != nil)
        #expect(plan(.established, flows: 10, frameLength: 60).problem() != nil)   // no room for the stamp
        #expect(plan(.established, flows: 10, frameLength: 1515).problem() != nil)
        #expect(plan(.udp, flows: 10, frameLength: 60).problem() == nil)
        var outside = plan(.established, flows: 10)
        outside.destination = IPv4Address(10, 0, 0, 1)
        #expect(outside.problem()?.contains("198.18.0.0/15") == true)
        // 100,000 flows from 198.19.255.255 on need addresses beyond the range.
        var spilling = plan(.established, flows: 100_000)
        spilling.firstClient = IPv4Address(198, 19, 255, 255)
        #expect(spilling.problem()?.contains("outside") == true)
    }
}
