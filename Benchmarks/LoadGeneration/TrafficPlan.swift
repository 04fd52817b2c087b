import DirectorWire

/// What a benchmark run sends.
public enum TrafficPattern: String, CaseIterable, Sendable {
    /// Data segments (ACK|PSH) of already open TCP flows, every flow in turn, round and round: the
    /// steady state of a busy service, and the same traffic for every device compared.
    case established
    /// SYNs of `flows` flows, round and round; with more flows than frames every SYN is a new
    /// connection (connections opened as fast as they come).
    case syn
    /// Whole TCP flows: SYN, `segmentsPerFlow` data segments, FIN; a finished flow is followed by
    /// a fresh one (new client port), so `flows` flows are open at any time.
    case tcpFlows = "tcp-flows"
    /// UDP datagrams of `flows` flows, round and round.
    case udp
    /// A spoofed handshake per flow: its SYN, then a bare ACK (no data), the next flow's SYN, …:
    /// what a blind attacker sends to make a DR director record ESTABLISHED entries.
    case synThenAck = "syn-then-ack"
    /// Bare ACKs (no data) of `flows` flows, round and round: under mh or sh each one names a
    /// server by hashing, so a blind attacker can try to open entries without any SYN.
    case bareAck = "ack"

    /// Whether the pattern is an attacker's: bare ACKs carry no stamp, and no sink counts them.
    public var isSpoofedHandshake: Bool { self == .synThenAck || self == .bareAck }
}

/// The kind of one frame of a plan.
public enum FrameKind: Int, CaseIterable, Sendable, Equatable {
    /// `ack`: a bare ACK, headers only.
    case syn, data, fin, datagram, ack
}

/// Which frame a run sends n-th: flow, the flow's own packet number, and the kind. Flows are
/// numbered from 0; flow f comes from client address `firstClient + f / portsPerAddress` and
/// port `firstPort + f % portsPerAddress`, so the sink finds a frame's flow from its addresses
/// without a table, and a plan of 10 M flows needs no memory.
public struct TrafficPlan: Sendable, Equatable {
    public static let firstPort: UInt16 = 1024
    public static let portsPerAddress = 65_536 - Int(firstPort)
    /// Every frame carries this many bytes of stamp: its packet number in the flow (4) and the
    /// CLOCK_REALTIME nanoseconds at which it was written (8).
    public static let stampLength = 12

    public var pattern: TrafficPattern
    /// Flows sent round and round (open at the same time, for `tcpFlows`).
    public var flows: Int
    /// Data segments between SYN and FIN (`tcpFlows` only).
    public var segmentsPerFlow: Int
    /// Frame length without the FCS; 0 = the shortest that carries the stamp.
    public var frameLength: Int
    /// The first client address; clients take as many consecutive addresses as the flows need.
    public var firstClient: IPv4Address
    public var destination: IPv4Address
    public var destinationPort: UInt16
    public var sourceMAC: MACAddress
    public var destinationMAC: MACAddress

    public init(pattern: TrafficPattern, flows: Int, segmentsPerFlow: Int = 8, frameLength: Int = 0,
                firstClient: IPv4Address = IPv4Address(198, 19, 0, 1), destination: IPv4Address, destinationPort: UInt16,
                sourceMAC: MACAddress, destinationMAC: MACAddress) {
        self.pattern = pattern
        self.flows = flows
        self.segmentsPerFlow = segmentsPerFlow
        self.frameLength = frameLength
        self.firstClient = firstClient
        self.destination = destination
        self.destinationPort = destinationPort
        self.sourceMAC = sourceMAC
        self.destinationMAC = destinationMAC
    }

    /// Headers of the pattern's frames: Ethernet, IPv4, and TCP or UDP.
    public var headerLength: Int { 14 + 20 + (pattern == .udp ? 8 : 20) }
    public var shortestFrame: Int { headerLength + TrafficPlan.stampLength }
    /// The length every frame of the plan has.
    public var effectiveFrameLength: Int { max(frameLength, shortestFrame) }

    /// Checks the plan against what the generator and the lab allow; nil when it is fine.
    public func problem() -> String? {
        if flows < 1 { return "flows must be at least 1" }
        if frameLength != 0 && (frameLength < shortestFrame || frameLength > 1514) {
            return "frame length must be \(shortestFrame)…1514 bytes for \(pattern.rawValue) (0 = \(shortestFrame)), got \(frameLength)"
        }
        if pattern == .tcpFlows && segmentsPerFlow < 1 { return "segments per flow must be at least 1" }
        let benchmarking = IPv4Address(198, 18, 0, 0).rawValue >> 17
        let lastClient = client(of: distinctFlows(frames: UInt64(flows)) - 1).address
        for address in [firstClient, lastClient, destination] where address.rawValue >> 17 != benchmarking {
            return "address \(address) is outside 198.18.0.0/15, the range set aside for benchmarks"
        }
        return nil
    }

    /// The client address and port of flow `flow`.
    @inline(__always)
    public func client(of flow: Int) -> (address: IPv4Address, port: UInt16) {
        (IPv4Address(rawValue: firstClient.rawValue &+ UInt32(flow / TrafficPlan.portsPerAddress)),
         TrafficPlan.firstPort &+ UInt16(flow % TrafficPlan.portsPerAddress))
    }

    /// The flow a client address and port belong to, or nil for one no plan of this shape sends.
    @inline(__always)
    public func flow(address: IPv4Address, port: UInt16) -> Int? {
        guard address.rawValue >= firstClient.rawValue, port >= TrafficPlan.firstPort else { return nil }
        return Int(address.rawValue - firstClient.rawValue) * TrafficPlan.portsPerAddress + Int(port - TrafficPlan.firstPort)
    }

    /// Frame n of the run: which flow, the flow's packet number, and the kind.
    @inline(__always)
    public func frame(_ n: UInt64) -> (flow: Int, packet: UInt32, kind: FrameKind) {
        let flows = UInt64(self.flows)
        let slot = Int(n % flows), round = n / flows
        switch pattern {
        case .established: return (slot, UInt32(truncatingIfNeeded: round), .data)
        case .udp: return (slot, UInt32(truncatingIfNeeded: round), .datagram)
        case .syn: return (slot, UInt32(truncatingIfNeeded: round), .syn)
        case .bareAck: return (slot, UInt32(truncatingIfNeeded: round), .ack)
        case .synThenAck:
            let pair = n / 2
            return (Int(pair % flows), UInt32(truncatingIfNeeded: pair / flows), n % 2 == 0 ? .syn : .ack)
        case .tcpFlows:
            let life = UInt64(segmentsPerFlow + 2)
            let generation = Int(round / life), position = round % life
            let kind: FrameKind = position == 0 ? .syn : position == life - 1 ? .fin : .data
            return (generation * self.flows + slot, UInt32(position), kind)
        }
    }

    /// How many different flows `frames` frames of this plan touch: what the sink must track.
    public func distinctFlows(frames: UInt64) -> Int {
        switch pattern {
        case .established, .udp, .syn, .bareAck: return Int(min(UInt64(flows), max(frames, 1)))
        case .synThenAck: return Int(min(UInt64(flows), max((frames + 1) / 2, 1)))
        case .tcpFlows:
            let life = UInt64(segmentsPerFlow + 2)
            let generations = (max(frames, 1) + UInt64(flows) * life - 1) / (UInt64(flows) * life)
            return Int(generations) * flows
        }
    }
}
