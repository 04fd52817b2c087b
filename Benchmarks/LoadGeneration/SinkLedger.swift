import DirectorCore
import DirectorWire

/// What the sink expects of every frame the device under test forwards.
public struct SinkExpectation: Sendable {
    public enum Rewrite: String, Sendable {
        /// Direct routing: the destination MAC becomes a real server's, the IP packet is untouched.
        case directRouting = "dr"
        /// Destination NAT: the destination address becomes the real server's (the kernel's
        /// conntrack DNAT); the MAC is that server's too.
        case destinationNAT = "nat"
    }

    public var plan: TrafficPlan
    public var realServers: [(mac: MACAddress, address: IPv4Address)]
    public var rewrite: Rewrite
    /// Frames with a lower packet number in their flow are checked like any other, but their
    /// delay is not counted: the warm-up's, which opened the flows (through a director's ring,
    /// before its workers offered them to the fast path) and are not the window's traffic.
    public var delayFromPacket: UInt32

    public init(plan: TrafficPlan, realServers: [(mac: MACAddress, address: IPv4Address)], rewrite: Rewrite, delayFromPacket: UInt32 = 0) {
        self.plan = plan
        self.realServers = realServers
        self.rewrite = rewrite
        self.delayFromPacket = delayFromPacket
    }
}

/// The sink's books: per flow, which real server its frames reached, how many arrived, which
/// packet numbers (to find duplicates and late frames), and the longest silence between two of
/// its frames; per frame, the one-way delay. Frames that break a rule are counted by the rule.
///
/// Memory is per flow of the plan (about 33 bytes each), allocated once: accounting a frame
/// allocates nothing.
public struct SinkLedger {
    public let expectation: SinkExpectation
    /// Per flow: 0 = not seen yet, else 1 + the index of its real server.
    private var server: [UInt8]
    private var received: [UInt32]
    /// Per flow: 1 + the highest packet number seen, and a bit per packet number of the 64 below it.
    private var highest: [UInt32]
    private var recent: [UInt64]
    private var lastArrival: [UInt64]
    private var longestGap: [UInt64]
    public var flowCount: Int { server.count }

    public private(set) var frames: UInt64 = 0
    /// Not a frame of the plan (another protocol, another port, a client the plan has no flow for).
    public private(set) var foreign: UInt64 = 0
    /// A plan frame whose destination MAC is no real server's, or whose IP destination does not
    /// match the rewrite (DR: the VIP; NAT: the real server the MAC belongs to).
    public private(set) var misrouted: UInt64 = 0
    /// A frame of a flow that earlier went to another real server.
    public private(set) var serverChanges: UInt64 = 0
    public private(set) var duplicates: UInt64 = 0
    /// Arrived after a later packet of its flow (not expected on one path).
    public private(set) var late: UInt64 = 0
    /// Longer than the plan's frames: something merged segments (GRO) on the way.
    public private(set) var oversized: UInt64 = 0
    public private(set) var delayMicroseconds = [UInt64](repeating: 0, count: LatencyHistogram.bucketCount)
    public private(set) var framesPerServer: [UInt64]
    /// When the newest plan frame arrived (CLOCK_REALTIME ns).
    public private(set) var latestArrival: UInt64 = 0

    public init(expectation: SinkExpectation, flows: Int) {
        self.expectation = expectation
        server = Array(repeating: 0, count: flows)
        received = Array(repeating: 0, count: flows)
        highest = Array(repeating: 0, count: flows)
        recent = Array(repeating: 0, count: flows)
        lastArrival = Array(repeating: 0, count: flows)
        longestGap = Array(repeating: 0, count: flows)
        framesPerServer = [UInt64](repeating: 0, count: expectation.realServers.count)
    }

    /// Accounts one frame that arrived at `arrival` (CLOCK_REALTIME ns).
    public mutating func account(_ frame: RawSpan, arrival: UInt64) {
        frames &+= 1
        let plan = expectation.plan
        guard case .ipv4(let packet) = FrameParser.parse(frame),
              packet.transport == (plan.pattern == .udp ? .udp : .tcp), packet.destinationPort == plan.destinationPort,
              let flow = plan.flow(address: packet.source, port: packet.sourcePort), flow < flowCount,
              let stamp = FrameStamp(frame, at: packet.transportOffset + (plan.pattern == .udp ? UDPHeader.length : TCPHeader.minimumLength))
        else {
            foreign &+= 1
            return
        }
        if frame.byteCount > plan.effectiveFrameLength { oversized &+= 1 }
        guard let serverIndex = expectation.realServers.firstIndex(where: { $0.mac == packet.destinationMAC }),
              packet.destination == (expectation.rewrite == .directRouting ? plan.destination : expectation.realServers[serverIndex].address)
        else {
            misrouted &+= 1
            return
        }
        framesPerServer[serverIndex] &+= 1
        if server[flow] == 0 {
            server[flow] = UInt8(serverIndex + 1)
        } else if Int(server[flow]) != serverIndex + 1 {
            serverChanges &+= 1
            server[flow] = UInt8(serverIndex + 1)
        }
        received[flow] &+= 1
        accountPacketNumber(stamp.packet, of: flow)
        if lastArrival[flow] != 0, arrival > lastArrival[flow] {
            longestGap[flow] = max(longestGap[flow], arrival - lastArrival[flow])
        }
        lastArrival[flow] = max(lastArrival[flow], arrival)
        latestArrival = max(latestArrival, arrival)
        if stamp.packet >= expectation.delayFromPacket {
            let delay = arrival > stamp.sentAt ? (arrival - stamp.sentAt) / 1000 : 0
            delayMicroseconds[LatencyHistogram.bucket(microseconds: delay)] &+= 1
        }
    }

    /// Duplicate and late frames, from the highest packet number seen and a window of 64 below it.
    private mutating func accountPacketNumber(_ number: UInt32, of flow: Int) {
        let top = highest[flow]
        if top == 0 || number >= top {
            let shift = top == 0 ? 64 : UInt64(number - top + 1)
            recent[flow] = (shift >= 64 ? 0 : recent[flow] << shift) | 1
            highest[flow] = number + 1
            return
        }
        let distance = UInt64(top - 1 - number)
        if distance < 64, recent[flow] & (1 << distance) != 0 {
            duplicates &+= 1
        } else {
            late &+= 1
            if distance < 64 { recent[flow] |= 1 << distance }
        }
    }

    /// The real server flow `flow` went to, if any frame of it arrived.
    public func realServer(of flow: Int) -> Int? { server[flow] == 0 ? nil : Int(server[flow]) - 1 }
    public func framesReceived(of flow: Int) -> UInt32 { received[flow] }
    /// The longest time between two consecutive frames of the flow, in nanoseconds.
    public func longestGap(of flow: Int) -> UInt64 { longestGap[flow] }
    /// When the flow's last frame arrived (CLOCK_REALTIME ns), 0 if none did.
    public func lastArrival(of flow: Int) -> UInt64 { lastArrival[flow] }

    /// Flows with a frame at or after `time`: at the end of a run, the flows still alive.
    public func flowsArrived(since time: UInt64) -> Int {
        lastArrival.reduce(0) { $0 + ($1 >= time ? 1 : 0) }
    }

    public var summary: SinkSummary {
        var flowsPerServer = [Int](repeating: 0, count: expectation.realServers.count)
        var flowsSeen = 0
        var gaps: [UInt64] = []
        gaps.reserveCapacity(flowCount)
        for flow in 0..<flowCount where server[flow] != 0 {
            flowsSeen += 1
            flowsPerServer[Int(server[flow]) - 1] += 1
            gaps.append(longestGap[flow])
        }
        gaps.sort()
        func delay(_ fraction: Double) -> UInt64? { LatencyHistogram.percentile(fraction, of: delayMicroseconds) }
        return SinkSummary(frames: frames, foreign: foreign, misrouted: misrouted, serverChanges: serverChanges,
                           duplicates: duplicates, late: late, oversized: oversized, flowsSeen: flowsSeen,
                           framesPerServer: framesPerServer, flowsPerServer: flowsPerServer,
                           delayP50Microseconds: delay(0.5), delayP99Microseconds: delay(0.99), delayMaxMicroseconds: delay(1.0),
                           longestFlowGapMicroseconds: gaps.last.map { $0 / 1000 },
                           flowGapP99Microseconds: gaps.isEmpty ? nil : gaps[min(gaps.count - 1, gaps.count * 99 / 100)] / 1000)
    }
}

/// What the sink saw, in a form the comparison run reads back (JSON).
public struct SinkSummary: Codable, Sendable, Equatable {
    public var frames: UInt64
    public var foreign: UInt64
    public var misrouted: UInt64
    public var serverChanges: UInt64
    public var duplicates: UInt64
    public var late: UInt64
    public var oversized: UInt64
    public var flowsSeen: Int
    public var framesPerServer: [UInt64]
    public var flowsPerServer: [Int]
    public var delayP50Microseconds: UInt64?
    public var delayP99Microseconds: UInt64?
    public var delayMaxMicroseconds: UInt64?
    public var longestFlowGapMicroseconds: UInt64?
    public var flowGapP99Microseconds: UInt64?
    /// Flows whose last frame came within the sink's alive window of the run's last frame.
    public var flowsAliveAtEnd: Int?
    /// Frames the kernel dropped because the sink's ring was full (not the device's loss).
    public var ringDrops: UInt64?

    /// Frames that broke a rule of the rewrite: any is a failure of the device under test.
    public var violations: UInt64 { misrouted + serverChanges + duplicates }
}
