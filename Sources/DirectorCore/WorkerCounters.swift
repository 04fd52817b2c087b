import DirectorWire

/// What a worker counts that is not a drop.
public enum WorkerCounter: Int, CaseIterable, Sendable {
    case framesReceived
    case bytesReceived
    case framesForwarded
    case bytesForwarded
    case repliesForwarded
    case arpRepliesSent
    case connectionsCreated
    case connectionsExpired
    case connectionsReclaimed
    case midstreamPickups
    /// A packet arrived for a replica: this worker now carries a flow the peer synced to it.
    case replicasTakenOver
    case replicasApplied
    case replicasRemoved
    case replicasExpired
    /// The peer claimed a flow this worker had as its own (it took the flow over): kept as a replica.
    case replicasYielded
    /// ACK probes sent to clients of connections taken over from a dead peer (`AckProbe`).
    case ackProbesSent
    /// Own connections the client proved real (`ConnectionEntry.isProven`).
    case connectionsProven
    /// A SYN reused the client port of a connection that had ended: scheduled afresh in its place.
    case connectionsReopened
    /// A connection whose real server failed its health check, in a service that resets them:
    /// the client got a TCP reset (a UDP flow was scheduled afresh).
    case connectionsReset
    /// ICMP errors about a connection passed on to its real server or its client.
    case icmpErrorsRelayed
    case neighborAdvertisementsSent
    /// Established flows offered to the XDP fast path (again after a flush).
    case fastPathOffers
    /// Offloaded flows taken out of the fast path (ended, yielded, reset, expired).
    case fastPathWithdrawals
    /// Offloaded flows whose expiry came and that the fast path had forwarded within a timeout.
    case fastPathReviewsAlive
    /// Offloaded flows the fast path's map no longer had when their expiry came: back on the ring.
    case fastPathReviewsMissing

    /// What the counter counts, for the metrics' HELP line.
    public var help: String {
        switch self {
        case .framesReceived: "Frames taken from the receive ring."
        case .bytesReceived: "Bytes of the frames taken from the receive ring."
        case .framesForwarded: "Frames queued for a real server on the transmit ring."
        case .bytesForwarded: "Bytes of the frames queued for real servers."
        case .repliesForwarded: "NAT replies queued for a client on the front transmit ring."
        case .arpRepliesSent: "ARP replies sent for the virtual addresses."
        case .connectionsCreated: "Connections scheduled to a real server (new flows, reused ports, midstream pickups)."
        case .connectionsExpired: "Own connections removed at the end of their timeout."
        case .connectionsReclaimed: "Unproven connections given up for a new flow in a full shard."
        case .midstreamPickups: "Flows without an entry picked up midstream (consistent schedulers only)."
        case .replicasTakenOver: "Connections of the peer taken over here (a frame arrived for a replica)."
        case .replicasApplied: "Replica changes from the peer applied to the table."
        case .replicasRemoved: "Replicas removed because the peer said so or no longer has them."
        case .replicasExpired: "Replicas removed at the end of their timeout."
        case .replicasYielded: "Own connections the peer claimed (it took the flow over): kept as replicas."
        case .ackProbesSent: "ACK probes sent to the clients of connections taken over."
        case .connectionsProven: "Connections whose client proved a real conversation."
        case .connectionsReopened: "SYNs that reused the ports of an ended connection, scheduled afresh."
        case .icmpErrorsRelayed: "ICMP errors about a connection passed on to its real server (from the clients' side) or its client (NAT, from the back)."
        case .connectionsReset: "Connections of a failed real server ended by a reset (on_server_down: reset)."
        case .neighborAdvertisementsSent: "Neighbor Advertisements sent for the IPv6 virtual addresses."
        case .fastPathOffers: "Established flows offered to the XDP fast path."
        case .fastPathWithdrawals: "Flows taken out of the XDP fast path (ended, moved to the peer, reset or expired)."
        case .fastPathReviewsAlive: "Offloaded flows found alive in the XDP fast path when their expiry came."
        case .fastPathReviewsMissing: "Offloaded flows the XDP fast path's map had pushed out when their expiry came (back on the ring)."
        }
    }

    public var name: String {
        switch self {
        case .framesReceived: "frames_received"
        case .bytesReceived: "bytes_received"
        case .framesForwarded: "frames_forwarded"
        case .repliesForwarded: "replies_forwarded"
        case .bytesForwarded: "bytes_forwarded"
        case .arpRepliesSent: "arp_replies_sent"
        case .connectionsCreated: "connections_created"
        case .connectionsExpired: "connections_expired"
        case .connectionsReclaimed: "connections_reclaimed"
        case .midstreamPickups: "midstream_pickups"
        case .replicasTakenOver: "replicas_taken_over"
        case .replicasApplied: "replicas_applied"
        case .replicasRemoved: "replicas_removed"
        case .replicasExpired: "replicas_expired"
        case .replicasYielded: "replicas_yielded"
        case .ackProbesSent: "ack_probes_sent"
        case .connectionsProven: "connections_proven"
        case .connectionsReopened: "connections_reopened"
        case .connectionsReset: "connections_reset"
        case .icmpErrorsRelayed: "icmp_errors_relayed"
        case .neighborAdvertisementsSent: "neighbor_advertisements_sent"
        case .fastPathOffers: "fast_path_offers"
        case .fastPathWithdrawals: "fast_path_withdrawals"
        case .fastPathReviewsAlive: "fast_path_reviews_alive"
        case .fastPathReviewsMissing: "fast_path_reviews_missing"
        }
    }
}

/// Frames the director saw and did not forward, beyond the parser's `MalformedReason` and
/// `PassOverReason`.
public enum DropReason: Int, CaseIterable, Sendable {
    case notAddressedToDirector
    case noVirtualService
    case noRealServerAvailable
    case realServerUnresolved
    case connectionTableFull
    case noConnectionForNonSYN
    case arpNotForVirtualAddress
    /// A Neighbor Solicitation for an address that is no IPv6 VIP here.
    case neighborSolicitationNotForVirtualAddress
    /// A Neighbor Solicitation for a VIP too short to be rewritten into the advertisement.
    case neighborSolicitationTooShortToAnswer
    case transmitRingFull
    /// A replica from the peer found no room in the shard.
    case replicaTableFull
    /// A replica named a real server this director does not have.
    case replicaUnknownRealServer
    // What no honest client sends (see `IPv4Flow.implausibility`).
    case sourceMACGroup
    case sourceAddressImpossible
    case timeToLiveZero
    case portZero
    case tcpFlagsImpossible
    // The back interface (NAT replies).
    /// A frame to the gateway MAC from an endpoint no NAT service has as a real server.
    case replyNotFromTranslatedServer
    /// A reply for a flow that has no connection here, or whose connection went to another server.
    case replyWithoutConnection
    /// A reply before this director has seen where the clients' frames come from.
    case clientNextHopUnknown
    /// An ICMP error about a flow that has no connection here.
    case icmpErrorWithoutConnection

    public var name: String {
        switch self {
        case .notAddressedToDirector: "not_addressed_to_director"
        case .noVirtualService: "no_virtual_service"
        case .noRealServerAvailable: "no_real_server_available"
        case .realServerUnresolved: "real_server_unresolved"
        case .connectionTableFull: "connection_table_full"
        case .noConnectionForNonSYN: "no_connection_for_non_syn"
        case .arpNotForVirtualAddress: "arp_not_for_virtual_address"
        case .neighborSolicitationNotForVirtualAddress: "neighbor_solicitation_not_for_virtual_address"
        case .neighborSolicitationTooShortToAnswer: "neighbor_solicitation_too_short_to_answer"
        case .transmitRingFull: "transmit_ring_full"
        case .replicaTableFull: "replica_table_full"
        case .replicaUnknownRealServer: "replica_unknown_real_server"
        case .sourceMACGroup: "source_mac_group"
        case .sourceAddressImpossible: "source_address_impossible"
        case .timeToLiveZero: "ttl_zero"
        case .portZero: "port_zero"
        case .tcpFlagsImpossible: "tcp_flags_impossible"
        case .replyNotFromTranslatedServer: "reply_not_from_nat_server"
        case .replyWithoutConnection: "reply_without_connection"
        case .clientNextHopUnknown: "client_next_hop_unknown"
        case .icmpErrorWithoutConnection: "icmp_error_without_connection"
        }
    }
}

/// A worker's counters: plain memory that only the worker writes. The daemon copies them out to
/// shared memory once per burst; the data path itself never touches an atomic.
public struct WorkerCounters: Sendable {
    public static let dropBase = 32
    public static let malformedBase = 56
    public static let passOverBase = 80
    public static let count = 88
    public var values = InlineArray<88, UInt64>(repeating: 0)

    public init() {}

    @inlinable @inline(__always)
    public subscript(_ counter: WorkerCounter) -> UInt64 {
        get { values[counter.rawValue] }
        set { values[counter.rawValue] = newValue }
    }

    @inlinable @inline(__always)
    public subscript(drop reason: DropReason) -> UInt64 {
        get { values[WorkerCounters.dropBase &+ reason.rawValue] }
        set { values[WorkerCounters.dropBase &+ reason.rawValue] = newValue }
    }

    @inlinable @inline(__always)
    public subscript(malformed reason: MalformedReason) -> UInt64 {
        get { values[WorkerCounters.malformedBase &+ reason.rawValue] }
        set { values[WorkerCounters.malformedBase &+ reason.rawValue] = newValue }
    }

    @inlinable @inline(__always)
    public subscript(passedOver reason: PassOverReason) -> UInt64 {
        get { values[WorkerCounters.passOverBase &+ reason.rawValue] }
        set { values[WorkerCounters.passOverBase &+ reason.rawValue] = newValue }
    }

    /// (name, index) for every counter, in the order status output prints them.
    public static let layout: [(name: String, index: Int)] =
        WorkerCounter.allCases.map { ($0.name, $0.rawValue) }
        + DropReason.allCases.map { ("drop_" + $0.name, dropBase + $0.rawValue) }
        + MalformedReason.allCases.map { ("malformed_" + $0.name, malformedBase + $0.rawValue) }
        + PassOverReason.allCases.map { ("passed_over_" + $0.name, passOverBase + $0.rawValue) }
}
