import DirectorWire

/// A connection's state as seen from the client side only — what a DR director can see, since
/// replies go from the real server straight to the client. Names and transitions follow IPVS
/// (`ip_vs_proto_tcp.c`, its "INPUT-ONLY" table), so `director stats` reads like `ipvsadm -lnc`.
public enum ConnectionState: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case none = 0
    case established
    case synSent
    case synReceived
    case finWait
    case timeWait
    case close
    case closeWait
    case lastAck
    case listen
    case synAck
    /// A UDP flow (UDP has one state and one timeout).
    case udp

    public var description: String {
        switch self {
        case .none: "NONE"
        case .established: "ESTABLISHED"
        case .synSent: "SYN_SENT"
        case .synReceived: "SYN_RECV"
        case .finWait: "FIN_WAIT"
        case .timeWait: "TIME_WAIT"
        case .close: "CLOSE"
        case .closeWait: "CLOSE_WAIT"
        case .lastAck: "LAST_ACK"
        case .listen: "LISTEN"
        case .synAck: "SYNACK"
        case .udp: "UDP"
        }
    }

    /// The client has closed its side or the connection was reset: a SYN for the same ports is a
    /// new connection (a SYN never follows a FIN or RST within one).
    @inlinable
    public var hasEnded: Bool {
        switch self {
        case .finWait, .timeWait, .close, .closeWait, .lastAck: true
        default: false
        }
    }

    /// IPVS counts ESTABLISHED connections as "active" and every other state as "inactive";
    /// the least-connection schedulers weigh them differently.
    public var isActive: Bool { self == .established }

    /// The next state after a client segment with `flags`. RST wins over SYN wins over FIN wins
    /// over ACK, as in IPVS's `tcp_state_idx`.
    @inlinable
    public func next(afterClientSegment flags: TCPFlags) -> ConnectionState {
        let event: Int
        if flags.contains(.rst) { event = 3 } else if flags.contains(.syn) { event = 0 }
        else if flags.contains(.fin) { event = 1 } else if flags.contains(.ack) { event = 2 } else { return self }
        let column = Int(rawValue)
        guard column < ConnectionState.inputOnlyColumns else { return self }
        return ConnectionState.inputOnly[event &* ConnectionState.inputOnlyColumns &+ column]
    }

    @usableFromInline static let inputOnlyColumns = 11
    // Rows: syn, fin, ack, rst. Columns: NONE ES SS SR FW TW CL CW LA LI SA.
    @usableFromInline static let inputOnly: [ConnectionState] = [
        .synReceived, .established, .established, .synReceived, .synReceived, .synReceived, .synReceived, .synReceived, .synReceived, .synReceived, .synReceived,
        .close, .finWait, .synSent, .timeWait, .finWait, .timeWait, .close, .closeWait, .lastAck, .listen, .timeWait,
        .established, .established, .synSent, .established, .finWait, .timeWait, .close, .closeWait, .close, .listen, .established,
        .close, .close, .close, .synReceived, .close, .close, .close, .close, .lastAck, .listen, .close,
    ]
}

/// How long an idle connection stays in each state, in milliseconds. Defaults are IPVS's.
public struct ConnectionTimeouts: Sendable, Equatable {
    public var established: UInt64 = 900_000
    public var synSent: UInt64 = 120_000
    public var synReceived: UInt64 = 60_000
    public var finWait: UInt64 = 120_000
    public var timeWait: UInt64 = 120_000
    public var close: UInt64 = 10_000
    public var closeWait: UInt64 = 60_000
    public var lastAck: UInt64 = 30_000
    public var listen: UInt64 = 120_000
    public var synAck: UInt64 = 120_000
    public var udp: UInt64 = 300_000

    public init() {}

    @inlinable
    public func timeout(for state: ConnectionState) -> UInt64 {
        switch state {
        case .established: established
        case .synSent: synSent
        case .synReceived: synReceived
        case .finWait: finWait
        case .timeWait: timeWait
        case .close, .none: close
        case .closeWait: closeWait
        case .lastAck: lastAck
        case .listen: listen
        case .synAck: synAck
        case .udp: udp
        }
    }

    /// An entry's timeout: an ESTABLISHED connection or a UDP flow the client has not proven real
    /// yet keeps the SYN_RECV timeout if that is shorter (see `ConnectionEntry.isProven`), so
    /// forged handshakes cost the table a minute, not fifteen, and forged datagrams not five.
    @inlinable @inline(__always)
    public func timeout(for state: ConnectionState, proven: Bool) -> UInt64 {
        proven || (state != .established && state != .udp) ? timeout(for: state) : min(synReceived, timeout(for: state))
    }

    /// What a replica's lifetime adds to the owner's remaining one: half the timeout (the
    /// longest a busy flow goes unrefreshed, see `Forwarder`) and a second for the refresh
    /// clock's whole-second steps.
    public func replicaMargin(for state: ConnectionState) -> UInt64 {
        timeout(for: state) / 2 + 1_000
    }

    /// The same for an entry that may not be proven yet.
    public func replicaMargin(for state: ConnectionState, proven: Bool) -> UInt64 {
        timeout(for: state, proven: proven) / 2 + 1_000
    }
}
