import DirectorWire

/// Settings of the per-packet pipeline that come from the config, not from the frame.
public struct ForwarderSettings: Sendable {
    /// Frames addressed to this MAC are the director's (the VIP's MAC on the front segment).
    public var virtualMAC: MACAddress
    /// Source MAC of frames sent to real servers (the back interface's own address).
    public var backMAC: MACAddress
    /// Whether this director answers ARP requests for the virtual addresses.
    public var answersARP: Bool
    public var timeouts: ConnectionTimeouts
    /// A TCP segment without SYN and without an entry is scheduled anyway when the service's
    /// scheduler is consistent (mh, sh): another director's flow that moved here (IPVS calls this
    /// "sloppy TCP"). With rr/wrr/lc/wlc such a segment is dropped, since any choice would be a guess.
    public var picksUpMidstreamFlows: Bool
    /// NAT: the real servers' default gateway on the back segment, which every director of the
    /// pair answers for with one MAC (as the VIP on the front); nil: no NAT service.
    public var gateway: NATGateway?
    /// The XDP fast path runs on the front interface: established, proven IPv4 flows of direct
    /// routing services are offered to it (`FastPathRequests`).
    public var offloadsEstablishedFlows = false

    public init(virtualMAC: MACAddress, backMAC: MACAddress, answersARP: Bool = true,
                timeouts: ConnectionTimeouts = ConnectionTimeouts(), picksUpMidstreamFlows: Bool = true, gateway: NATGateway? = nil) {
        self.virtualMAC = virtualMAC
        self.backMAC = backMAC
        self.answersARP = answersARP
        self.timeouts = timeouts
        self.picksUpMidstreamFlows = picksUpMidstreamFlows
        self.gateway = gateway
    }
}

/// The address NAT real servers route their replies through, and its MAC.
public struct NATGateway: Sendable, Equatable {
    public var address: IPv4Address
    /// The IPv6 servers' gateway, answered for by Neighbor Discovery (nil: no IPv6 NAT service).
    public var address6: IPv6Address?
    public var mac: MACAddress

    public init(address: IPv4Address, address6: IPv6Address? = nil, mac: MACAddress) {
        self.address = address
        self.address6 = address6
        self.mac = mac
    }
}

/// Where a frame's transport checksum field is, for frames whose checksum the sending host left
/// for offload to complete (AF_PACKET flags them TP_STATUS_CSUMNOTREADY; common on veth and
/// virtio). The transmit side asks the kernel to finish it, or finishes it in software.
public struct TransportChecksum: Equatable, Sendable {
    /// Offset of the transport header: the checksum covers the frame from here to its end.
    public var start: Int
    /// Offset of the checksum field within the transport header (16 for TCP, 6 for UDP).
    public var fieldOffset: Int
    /// End of the IP packet (Ethernet padding may follow it).
    public var end: Int

    public init(start: Int, fieldOffset: Int, end: Int) {
        self.start = start
        self.fieldOffset = fieldOffset
        self.end = end
    }
}

/// What to do with a frame after `Forwarder.process`. The frame has already been rewritten in
/// place; the caller only moves it.
public enum Verdict: Equatable, Sendable {
    /// Send the (rewritten) first `length` bytes on the back interface, to a real server.
    case transmitOnBack(length: Int, checksum: TransportChecksum)
    /// Send the (rewritten) first `length` bytes on the front interface, to a client (a NAT reply).
    case transmitOnFront(length: Int, checksum: TransportChecksum)
    /// Send the first `length` bytes back out of the interface the frame came in on (an ARP
    /// reply, a TCP reset): rare frames, sent one by one.
    case answer(length: Int)
    /// Not forwarded; the reason has been counted.
    case drop
}

/// The per-packet pipeline of one worker, in the order a frame meets it:
/// parse → (ARP, Neighbor Discovery) → virtual service → connection (a new one only from a
/// plausible sender) → schedule → rewrite → verdict.
///
/// It owns the worker's shards of the connection tables, one per address family, and its
/// counters; nothing in it is shared with another thread, so nothing in it is locked. It does
/// no I/O: the daemon runs it on ring frames, tests run it on byte arrays. The steps themselves
/// live in `ForwardingPath`, generic over the family; this type picks the family's table.
public struct Forwarder<Sink: ConnectionChangeSink>: ~Copyable {
    public var table: ConnectionTable<IPv4Address>
    public var table6: ConnectionTable<IPv6Address>
    @usableFromInline var path: ForwardingPath<Sink>
    @usableFromInline var purge: TableWalk?
    @usableFromInline var purge6: TableWalk?

    public init(table: consuming ConnectionTable<IPv4Address>, table6: consuming ConnectionTable<IPv6Address>,
                services: ServiceTable, settings: ForwarderSettings, changes: consuming Sink) {
        self.table = table
        self.table6 = table6
        path = ForwardingPath(services: services, settings: settings, changes: changes)
    }

    /// With an IPv6 table of `table`'s capacity in an anonymous mapping, untouched until written.
    public init(table: consuming ConnectionTable<IPv4Address>, services: ServiceTable, settings: ForwarderSettings, changes: consuming Sink) {
        guard let table6 = ConnectionTable<IPv6Address>(capacity: table.capacity, memory: .anonymousMapping) else {
            preconditionFailure("mapping an IPv6 table of \(table.capacity) entries failed")
        }
        self.init(table: table, table6: table6, services: services, settings: settings, changes: changes)
    }

    @inlinable public var counters: WorkerCounters {
        get { path.counters }
        _modify { yield &path.counters }
    }

    @inlinable public var changes: Sink {
        get { path.changes }
        _modify { yield &path.changes }
    }

    @inlinable public var load: ConnectionLoad { _read { yield path.load } }
    @inlinable public var traffic: TrafficCounters { _read { yield path.traffic } }
    @inlinable public var settings: ForwarderSettings { path.settings }
    @inlinable public var services: ServiceTable { path.services }
    @inlinable public var replicaEpoch: UInt8 { path.replicaEpoch }
    @inlinable public var clientSideMAC: MACAddress { path.clientSideMAC }

    /// What the pipeline asked of the XDP fast path since the worker last carried it out.
    @inlinable public var fastPathRequests: FastPathRequests {
        _read { yield path.fastPath }
        _modify { yield &path.fastPath }
    }

    /// Whether there is anything to carry out (read in place: no copy of the queue).
    @inlinable public var hasFastPathRequests: Bool { !path.fastPath.isEmpty }

    /// The fast path's flush generation: flows offered under an older one are offered again by
    /// their next frame on the ring.
    @inlinable public var fastPathGeneration: UInt32 {
        get { path.fastPathGeneration }
        set { path.fastPathGeneration = newValue }
    }

    /// Takes a new service snapshot (between bursts). Scheduler positions restart; connections
    /// and their real servers are kept, since entries name real servers by stable id.
    @inlinable public mutating func install(_ services: ServiceTable, settings: ForwarderSettings? = nil) {
        path.services = services
        if let settings {
            path.settings = settings
            if settings.offloadsEstablishedFlows { path.fastPath.reserve() }
        }
        path.cursors = Array(repeating: SchedulerCursor(), count: services.services.count)
    }

    // MARK: - The pipeline

    /// Processes one frame received on the front interface at monotonic time `now` (ms).
    /// `checksumPending`: the sender left the transport checksum to offload (see `TransportChecksum`).
    /// `vlanTagged`: the frame came with an 802.1Q tag (the ring reports it apart from the bytes).
    /// Neither kind of frame's flow is offered to the XDP fast path: the program sees neither the
    /// offload note nor a tag the NIC stripped, and would forward such frames wrong.
    @inlinable public mutating func process(_ frame: inout MutableRawSpan, now: UInt64, checksumPending: Bool = false,
                                            vlanTagged: Bool = false) -> Verdict {
        // The same steps as `processReply`'s, written out: a shared helper returning the parsed
        // frame cost 22 instructions a frame in copies (callgrind, pipeline-benchmark --quick).
        path.counters[.framesReceived] &+= 1
        path.counters[.bytesReceived] &+= UInt64(frame.byteCount)
        switch FrameParser.parse(frame.bytes) {
        case .ipv4(let flow):
            return path.forward(flow, in: &table, &frame, now: now, checksumPending: checksumPending, offloadable: !checksumPending && !vlanTagged)
        case .ipv6(let flow):
            // A first fragment with its whole transport header is a flow's packet like any
            // other (the parser counts and drops the later ones, which carry no ports).
            guard path.services.hasIPv6Services else { return passOverIPv6() }
            return path.forward(flow, in: &table6, &frame, now: now, checksumPending: checksumPending, offloadable: false)
        case .arp(let message):
            return path.answer(message, &frame)
        case .neighborSolicitation(let solicitation):
            guard path.services.hasIPv6Services else { return passOverIPv6() }
            return path.answer(solicitation, &frame)
        case .icmpError(let error):
            return path.relayToServer(error, in: &table, &frame)
        case .icmpv6Error(let error):
            guard path.services.hasIPv6Services else { return passOverIPv6() }
            return path.relayToServer(error, in: &table6, &frame)
        case .passedOver(let reason):
            path.counters[passedOver: reason] &+= 1
            return .drop
        case .malformed(let reason):
            path.counters[malformed: reason] &+= 1
            return .drop
        }
    }

    /// Where no IPv6 service runs, IPv6 is none of the director's business (router
    /// advertisements, neighbours talking among themselves): passed over, not dropped.
    @inlinable
    mutating func passOverIPv6() -> Verdict {
        path.counters[passedOver: .ipv6] &+= 1
        return .drop
    }

    /// Starts loading the table slot of the frame that comes next, while this one is processed:
    /// in a large table the lookup is a cache miss, and this hides most of it. Measured in the
    /// lab (director-bench new-connections, a 5 M-connection table): 0.80–0.88 M new connections
    /// per second per core with it, 0.55 M without; with 10 k established flows it changed nothing.
    @inline(__always)
    @inlinable public func prefetchEntry(of frame: RawSpan) {
        switch FrameParser.parse(frame) {
        case .ipv4(let flow): table.prefetch(hash: FlowKey(flow).tableHash)
        case .ipv6(let flow): table6.prefetch(hash: FlowKey(flow).tableHash)
        default: break
        }
    }

    // MARK: - The back interface: NAT replies

    /// Processes one frame received on the back interface: a real server's reply to a client of
    /// a NAT service, sent to the gateway MAC (the kernel filter let through only the replies of
    /// this dispatcher's buckets, computed from the client endpoint, the reply's destination, so
    /// a flow meets the same dispatcher and worker in both directions), or ARP for the gateway.
    ///
    /// parse → (ARP, Neighbor Discovery) → the NAT service of the source → its connection →
    /// rewrite → verdict.
    /// A reply only follows a connection: it never makes one, and it changes no state or
    /// timeout (the client's side of a flow does that, as in direct routing).
    @inlinable public mutating func processReply(_ frame: inout MutableRawSpan, now: UInt64, checksumPending: Bool = false) -> Verdict {
        path.counters[.framesReceived] &+= 1
        path.counters[.bytesReceived] &+= UInt64(frame.byteCount)
        switch FrameParser.parse(frame.bytes) {
        case .ipv4(let flow):
            return path.translateReply(flow, in: &table, &frame, now: now, checksumPending: checksumPending)
        case .arp(let message):
            return path.answerForGateway(message, &frame)
        case .icmpError(let error):
            return path.relayToClient(error, in: &table, &frame)
        case .ipv6(let flow):
            return path.translateReply(flow, in: &table6, &frame, now: now, checksumPending: checksumPending)
        case .neighborSolicitation(let solicitation):
            return path.answerForGateway(solicitation, &frame)
        case .icmpv6Error(let error):
            return path.relayToClient(error, in: &table6, &frame)
        case .passedOver(let reason):
            path.counters[passedOver: reason] &+= 1
            return .drop
        case .malformed(let reason):
            path.counters[malformed: reason] &+= 1
            return .drop
        }
    }

    /// Where replies go when this worker has not seen a client frame yet (the peer's next hop,
    /// handed over with a takeover): the router the clients' frames come through.
    @inlinable public mutating func learnClientSideMAC(_ mac: MACAddress) {
        if path.clientSideMAC == .zero && mac != .zero && !mac.isGroup { path.clientSideMAC = mac }
    }

    /// The transmit stage's outcome for a `.transmitOnBack` frame: forwarded once the ring has
    /// taken it, otherwise a counted drop. (`process` cannot know; it only decides.)
    @inline(__always)
    @inlinable public mutating func countTransmission(length: Int, queued: Bool) {
        if queued {
            path.counters[.framesForwarded] &+= 1
            path.counters[.bytesForwarded] &+= UInt64(length)
        } else {
            path.counters[drop: .transmitRingFull] &+= 1
        }
    }

    /// The transmit stage's outcome for a `.transmitOnFront` frame (see `countTransmission`).
    @inline(__always)
    @inlinable public mutating func countReplyTransmission(length: Int, queued: Bool) {
        if queued {
            path.counters[.repliesForwarded] &+= 1
            path.counters[.bytesForwarded] &+= UInt64(length)
        } else {
            path.counters[drop: .transmitRingFull] &+= 1
        }
    }

    // MARK: - Beside the pipeline

    /// Incremental expiry: examines at most `budget` slots of each table. Call once per loop
    /// iteration.
    @inlinable public mutating func expire(now: UInt64, budget: Int) {
        expire(now: now, budget: budget, lastSeen: { _ in nil })
    }

    /// The same for a worker with the XDP fast path: `lastSeen` tells when the program last
    /// forwarded a frame of an offloaded flow (monotonic ms; nil if it has no such flow).
    @inlinable public mutating func expire(now: UInt64, budget: Int, lastSeen: (FastPathFlow) -> UInt64?) {
        path.expire(in: &table, now: now, budget: budget, lastSeen: lastSeen)
        path.expire(in: &table6, now: now, budget: budget, lastSeen: lastSeen)
    }

    // MARK: - Replicas from the peer

    /// Applies a peer's change to this worker's shard (see `ForwardingPath.apply`).
    @inlinable public mutating func apply(_ update: ReplicaUpdate<IPv4Address>, now: UInt64) {
        path.apply(update, in: &table, now: now)
    }

    @inlinable public mutating func apply(_ update: ReplicaUpdate<IPv6Address>, now: UInt64) {
        path.apply(update, in: &table6, now: now)
    }

    /// A snapshot of the peer's table has been asked for: replicas written from now on belong
    /// to the new epoch.
    @inlinable public mutating func beginResync() {
        path.replicaEpoch &+= 1
        purge = nil
        purge6 = nil
    }

    /// The snapshot is complete: replicas of earlier epochs are removed, in steps of
    /// `purgeStaleReplicas`.
    @inlinable public mutating func completeResync() {
        purge = TableWalk()
        purge6 = TableWalk()
    }

    /// One bounded step of removing stale replicas, while a purge is due.
    @inlinable public mutating func purgeStaleReplicas(budget: Int) {
        path.purgeStaleReplicas(in: &table, walk: &purge, budget: budget)
        path.purgeStaleReplicas(in: &table6, walk: &purge6, budget: budget)
    }

    /// Counts a replica naming a real server this director does not know.
    @inlinable public mutating func countUnknownReplicaServer() {
        path.counters[drop: .replicaUnknownRealServer] &+= 1
    }
}
