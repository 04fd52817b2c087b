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
    public var mac: MACAddress

    public init(address: IPv4Address, mac: MACAddress) {
        self.address = address
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
/// parse → (ARP) → virtual service → connection (a new one only from a plausible sender) → schedule →
/// rewrite → verdict.
///
/// It owns the worker's shard of the connection table and its counters; nothing in it is shared
/// with another thread, so nothing in it is locked. It does no I/O: the daemon runs it on ring
/// frames, tests run it on byte arrays.
public struct Forwarder<Sink: ConnectionChangeSink>: ~Copyable {
    public var table: ConnectionTable<IPv4Address>
    public var counters = WorkerCounters()
    public var changes: Sink
    public let load = ConnectionLoad()
    public let traffic = TrafficCounters()
    public private(set) var settings: ForwarderSettings
    public private(set) var services: ServiceTable
    private var cursors: [SchedulerCursor]
    /// Replicas written by `apply` carry this epoch; a resync moves it on, and when the peer's
    /// snapshot is complete the replicas of older epochs are ones the peer no longer has.
    public private(set) var replicaEpoch: UInt8 = 0
    /// The source MAC of the frame that last created or took over a connection: the next hop
    /// towards the clients (see `AckProbe`). Learned per new flow, not per frame.
    public private(set) var clientSideMAC = MACAddress.zero
    private var purge: TableWalk?

    public init(table: consuming ConnectionTable<IPv4Address>, services: ServiceTable, settings: ForwarderSettings, changes: consuming Sink) {
        self.table = table
        self.services = services
        self.settings = settings
        self.changes = changes
        cursors = Array(repeating: SchedulerCursor(), count: services.services.count)
    }

    /// Takes a new service snapshot (between bursts). Scheduler positions restart; connections
    /// and their real servers are kept, since entries name real servers by stable id.
    public mutating func install(_ services: ServiceTable, settings: ForwarderSettings? = nil) {
        self.services = services
        if let settings { self.settings = settings }
        cursors = Array(repeating: SchedulerCursor(), count: services.services.count)
    }

    // MARK: - The pipeline

    /// Processes one frame received on the front interface at monotonic time `now` (ms).
    /// `checksumPending`: the sender left the transport checksum to offload (see `TransportChecksum`).
    public mutating func process(_ frame: inout MutableRawSpan, now: UInt64, checksumPending: Bool = false) -> Verdict {
        // The same steps as `processReply`'s, written out: a shared helper returning the parsed
        // frame cost 22 instructions a frame in copies (callgrind, pipeline-benchmark --quick).
        counters[.framesReceived] &+= 1
        counters[.bytesReceived] &+= UInt64(frame.byteCount)
        switch FrameParser.parse(frame.bytes) {
        case .ipv4(let flow):
            return forward(flow, &frame, now: now, checksumPending: checksumPending)
        case .arp(let message):
            return answer(message, &frame)
        case .icmpError(let error):
            return relayToServer(error, &frame)
        case .ipv6, .icmpv6Error, .neighborSolicitation:
            counters[passedOver: .ipv6] &+= 1
            return .drop
        case .passedOver(let reason):
            counters[passedOver: reason] &+= 1
            return .drop
        case .malformed(let reason):
            counters[malformed: reason] &+= 1
            return .drop
        }
    }

    /// Starts loading the table slot of the frame that comes next, while this one is processed:
    /// in a large table the lookup is a cache miss, and this hides most of it. Measured in the
    /// lab (director-bench new-connections, a 5 M-connection table): 0.80–0.88 M new connections
    /// per second per core with it, 0.55 M without; with 10 k established flows it changed nothing.
    @inline(__always)
    public func prefetchEntry(of frame: RawSpan) {
        guard case .ipv4(let flow) = FrameParser.parse(frame) else { return }
        table.prefetch(hash: FlowKey(flow).tableHash)
    }

    @inline(__always)
    private mutating func forward(_ flow: IPv4Flow, _ frame: inout MutableRawSpan, now: UInt64, checksumPending: Bool) -> Verdict {
        guard flow.destinationMAC == settings.virtualMAC else { return drop(.notAddressedToDirector) }
        guard let serviceIndex = services.find(address: flow.destination, port: flow.destinationPort, transport: flow.transport) else {
            return drop(.noVirtualService)
        }
        let key = FlowKey(flow)
        let hash = key.tableHash
        let realServerID: UInt16
        if let slot = table.find(key, hash: hash) {
            if services.resetsConnections(of: table[slot].realServerID) {
                // Its server failed its health check: the client hears so, or the flow starts over.
                if flow.transport == .tcp, !flow.tcpFlags.isOpening {
                    return resetConnection(slot: slot, flow: flow, &frame)
                }
                endConnection(slot: slot)
                guard let id = admit(key, hash: hash, flow: flow, serviceIndex: serviceIndex, now: now) else { return .drop }
                realServerID = id
            } else if flow.transport == .tcp, flow.tcpFlags.isOpening,
                      table[slot].state.hasEnded || services.isQuiesced(table[slot].realServerID) {
                guard let id = reopen(slot: slot, key: key, serviceIndex: serviceIndex, now: now) else { return .drop }
                realServerID = id
            } else {
                realServerID = refresh(slot: slot, flow: flow, frame: frame.bytes, now: now)
            }
        } else {
            guard let id = admit(key, hash: hash, flow: flow, serviceIndex: serviceIndex, now: now) else { return .drop }
            realServerID = id
        }
        let destination = services.destinationMAC(realServerID)
        guard destination != .zero else { return drop(.realServerUnresolved) }
        traffic.countPacket(server: realServerID, service: services.statisticsID(ofService: serviceIndex), bytes: flow.packetLength)
        DirectRouting.rewrite(&frame, to: destination, from: settings.backMAC)
        if services.translates(serviceIndex) {
            let server = services.translatedDestination(realServerID)
            NetworkAddressTranslation.rewriteDestination(&frame, of: flow, to: server.address, port: server.port, checksumPending: checksumPending)
        }
        let checksumField = flow.transport == .tcp ? TCPHeader.checksumOffset : UDPHeader.checksumOffset
        return .transmitOnBack(length: frame.byteCount, checksum: TransportChecksum(
            start: flow.transportOffset, fieldOffset: checksumField, end: flow.networkOffset + flow.packetLength))
    }

    /// An existing connection: advance its state, push its expiry out, return its real server.
    /// The peer hears of a state change at once, and of a flow that merely stays busy once half
    /// its timeout has passed since it last heard (so its replica never expires first).
    @inline(__always)
    private mutating func refresh(slot: Int, flow: IPv4Flow, frame: RawSpan, now: UInt64) -> UInt16 {
        if table[slot].isReplica { takeOver(slot: slot, now: now, from: flow.sourceMAC) }
        let entry = table[slot]
        let isUDP = flow.transport == .udp
        let state = isUDP ? ConnectionState.udp : entry.state.next(afterClientSegment: flow.tcpFlags)
        var timeout = settings.timeouts.timeout(for: state)
        var justProven = false
        if !entry.isProven {
            // Proof of a real client: data once the handshake is done, or a UDP flow's second
            // datagram. Until then an ESTABLISHED entry keeps the SYN_RECV timeout.
            if isUDP || (state == .established && FrameParser.carriesPayload(flow, in: frame)) {
                justProven = true
                table[slot].isProven = true
                counters[.connectionsProven] &+= 1
            } else if state == .established {
                timeout = settings.timeouts.timeout(for: state, proven: false)
            }
        }
        table[slot].expiresAt = now &+ timeout
        let seconds = UInt16(truncatingIfNeeded: now / 1000)
        if state != entry.state {
            table[slot].state = state
            table[slot].syncedAtSeconds = seconds
            load.stateChanged(entry.realServerID, from: entry.state, to: state)
            changes.record(.stateChanged(table[slot]))
        } else if justProven {
            // The peer's replica gets the longer life at once, not half a timeout later.
            table[slot].syncedAtSeconds = seconds
            changes.record(.refreshed(table[slot]))
        } else if UInt64(seconds &- entry.syncedAtSeconds) * 2000 >= timeout {
            table[slot].syncedAtSeconds = seconds
            changes.record(.refreshed(table[slot]))
        }
        return entry.realServerID
    }

    /// A SYN on the ports of a connection that has ended (the client reused its port while the
    /// entry lingers in FIN_WAIT or TIME_WAIT), or of one whose server takes no new connections
    /// (drained, failed its health check, removed): a new connection in the old one's place,
    /// scheduled afresh, as IPVS's `conn_reuse_mode` (with `expire_nodest_conn`) does. Without it
    /// a new connection would follow the old one to its server, whatever the weights say now:
    /// a client whose connection a dead server refused, and that reuses its port, would be sent
    /// to that server again.
    private mutating func reopen(slot: Int, key: FlowKey<IPv4Address>, serviceIndex: Int, now: UInt64) -> UInt16? {
        let service = services.services[serviceIndex]
        guard let member = service.scheduler.select(key, pool: service.pool, cursor: &cursors[serviceIndex], load: load) else {
            drop(.noRealServerAvailable)
            return nil
        }
        let old = table[slot]
        if !old.isReplica { load.connectionClosed(old.realServerID, state: old.state) }
        let realServerID = service.pool[member].id
        table[slot].isReplica = false
        table[slot].isProven = false
        table[slot].realServerID = realServerID
        table[slot].state = .synReceived
        table[slot].expiresAt = now &+ settings.timeouts.timeout(for: .synReceived, proven: false)
        table[slot].syncedAtSeconds = UInt16(truncatingIfNeeded: now / 1000)
        counters[.connectionsCreated] &+= 1
        counters[.connectionsReopened] &+= 1
        load.connectionOpened(realServerID, state: .synReceived)
        traffic.countConnection(server: realServerID, service: services.statisticsID(ofService: serviceIndex))
        // "Created" claims the flow: the peer's replica follows, new server and all.
        changes.record(.created(table[slot]))
        return realServerID
    }

    /// Ends a connection whose real server failed its health check (its service resets them).
    private mutating func endConnection(slot: Int) {
        let entry = table[slot]
        table.remove(at: slot)
        counters[.connectionsReset] &+= 1
        if !entry.isReplica {
            load.connectionClosed(entry.realServerID, state: entry.state)
            changes.record(.removed(entry, .serverFailed))
        }
    }

    /// The client's segment becomes the reset that ends its connection (see `TCPReset`).
    private mutating func resetConnection(slot: Int, flow: IPv4Flow, _ frame: inout MutableRawSpan) -> Verdict {
        endConnection(slot: slot)
        // A client's reset needs no answer.
        guard !flow.tcpFlags.contains(.rst) else { return .drop }
        return .answer(length: TCPReset.answer(flow, in: &frame, from: settings.virtualMAC))
    }

    /// The first packet of a synced flow to arrive here: the replica becomes this worker's own
    /// connection (the peer failed or gave the bucket up) and is reported like a new one.
    private mutating func takeOver(slot: Int, now: UInt64, from clientSide: MACAddress) {
        clientSideMAC = clientSide
        table[slot].isReplica = false
        table[slot].syncedAtSeconds = UInt16(truncatingIfNeeded: now / 1000)
        counters[.replicasTakenOver] &+= 1
        load.connectionOpened(table[slot].realServerID, state: table[slot].state)
        changes.record(.created(table[slot]))
    }

    /// A flow without an entry: decide whether it may start one, schedule it, record it.
    ///
    /// A frame no honest client sends never makes an entry (see `IPv4Flow.implausibility`). Frames
    /// of a flow that has one skip that check: their addresses and ports passed it when the
    /// entry was made, and the few instructions it costs are not spent on every frame.
    private mutating func admit(_ key: FlowKey<IPv4Address>, hash: UInt32, flow: IPv4Flow, serviceIndex: Int, now: UInt64) -> UInt16? {
        if let forged = flow.implausibility {
            drop(forged)
            return nil
        }
        let service = services.services[serviceIndex]
        var state = ConnectionState.udp
        if flow.transport == .tcp {
            if flow.tcpFlags.isOpening {
                state = .synReceived
            } else if settings.picksUpMidstreamFlows && service.scheduler.kind.isConsistent && !flow.tcpFlags.contains(.rst) {
                // Half-open until the client's next segment confirms it (SYN_RECV + ACK →
                // ESTABLISHED): a stream of spoofed ACKs then fills the shard only with entries
                // that expire in the SYN_RECV timeout and that new flows may reclaim.
                state = .synReceived
                counters[.midstreamPickups] &+= 1
            } else {
                drop(.noConnectionForNonSYN)
                return nil
            }
        }
        guard let member = service.scheduler.select(key, pool: service.pool, cursor: &cursors[serviceIndex], load: load) else {
            drop(.noRealServerAvailable)
            return nil
        }
        let realServerID = service.pool[member].id
        var entry = ConnectionEntry(key: key, keyHash: hash, state: state, realServerID: realServerID,
                                    expiresAt: now &+ settings.timeouts.timeout(for: state, proven: false))
        entry.syncedAtSeconds = UInt16(truncatingIfNeeded: now / 1000)
        switch table.insert(entry) {
        case .inserted:
            break
        case .insertedByReclaiming(_, let reclaimed):
            counters[.connectionsReclaimed] &+= 1
            // A replica never counted in this worker's load, and its end is the peer's to report.
            if !reclaimed.isReplica {
                load.connectionClosed(reclaimed.realServerID, state: reclaimed.state)
                changes.record(.removed(reclaimed, .reclaimed))
            }
        case .full:
            drop(.connectionTableFull)
            return nil
        }
        counters[.connectionsCreated] &+= 1
        clientSideMAC = flow.sourceMAC
        load.connectionOpened(realServerID, state: state)
        traffic.countConnection(server: realServerID, service: services.statisticsID(ofService: serviceIndex))
        changes.record(.created(entry))
        return realServerID
    }

    /// An ICMP error about a packet the VIP sent a client (a router on the way could not deliver
    /// it, or it was too big for the next hop): it goes to the real server of the connection, so
    /// the server's stack hears of it (path MTU discovery goes on working). Translated for NAT;
    /// as it came for direct routing, whose servers sent the packet from the VIP themselves.
    private mutating func relayToServer(_ error: ICMPError, _ frame: inout MutableRawSpan) -> Verdict {
        guard error.destinationMAC == settings.virtualMAC else { return drop(.notAddressedToDirector) }
        // The quoted packet went from VIP:port to the client.
        guard let serviceIndex = services.find(address: error.quotedSource, port: error.quotedSourcePort, transport: error.quotedTransport) else {
            return drop(.noVirtualService)
        }
        let key = FlowKey(clientAddress: error.quotedDestination, clientPort: error.quotedDestinationPort, virtualAddress: error.quotedSource,
                          virtualPort: error.quotedSourcePort, transport: error.quotedTransport)
        guard let slot = table.find(key, hash: key.tableHash) else { return drop(.icmpErrorWithoutConnection) }
        let realServerID = table[slot].realServerID
        let destination = services.destinationMAC(realServerID)
        guard destination != .zero else { return drop(.realServerUnresolved) }
        DirectRouting.rewrite(&frame, to: destination, from: settings.backMAC)
        if services.translates(serviceIndex) {
            let server = services.translatedDestination(realServerID)
            NetworkAddressTranslation.rewriteQuotedSource(&frame, of: error, to: server.address, port: server.port)
        }
        counters[.icmpErrorsRelayed] &+= 1
        return .transmitOnBack(length: frame.byteCount, checksum: TransportChecksum(
            start: error.icmpOffset, fieldOffset: ICMPHeader.checksumOffset, end: error.networkOffset + error.packetLength))
    }

    /// ARP: answer "who has VIP?" with the VIP's MAC, rewriting the request into the reply.
    private mutating func answer(_ message: ARPMessage, _ frame: inout MutableRawSpan) -> Verdict {
        guard message.operation == .request, settings.answersARP, services.isVirtualAddress(message.targetAddress) else {
            return drop(.arpNotForVirtualAddress)
        }
        return reply(to: message, &frame, from: settings.virtualMAC)
    }

    /// Rewrites an ARP request into the reply "`message.targetAddress` is at `mac`".
    private mutating func reply(to message: ARPMessage, _ frame: inout MutableRawSpan, from mac: MACAddress) -> Verdict {
        guard let length = ARPCodec.write(
            operation: .reply, into: &frame, ethernetDestination: message.senderMAC, ethernetSource: mac,
            vlanID: message.vlanID, senderMAC: mac, senderAddress: message.targetAddress,
            targetMAC: message.senderMAC, targetAddress: message.senderAddress)
        else { return drop(.arpNotForVirtualAddress) }
        counters[.arpRepliesSent] &+= 1
        return .answer(length: length)
    }

    // MARK: - The back interface: NAT replies

    /// Processes one frame received on the back interface: a real server's reply to a client of
    /// a NAT service, sent to the gateway MAC (the kernel filter let through only the replies of
    /// this dispatcher's buckets, computed from the client endpoint, the reply's destination, so
    /// a flow meets the same dispatcher and worker in both directions), or ARP for the gateway.
    ///
    /// parse → (ARP) → the NAT service of the source → its connection → rewrite → verdict.
    /// A reply only follows a connection: it never makes one, and it changes no state or
    /// timeout (the client's side of a flow does that, as in direct routing).
    public mutating func processReply(_ frame: inout MutableRawSpan, now: UInt64, checksumPending: Bool = false) -> Verdict {
        counters[.framesReceived] &+= 1
        counters[.bytesReceived] &+= UInt64(frame.byteCount)
        switch FrameParser.parse(frame.bytes) {
        case .ipv4(let flow):
            return translateReply(flow, &frame, now: now, checksumPending: checksumPending)
        case .arp(let message):
            return answerForGateway(message, &frame)
        case .icmpError(let error):
            return relayToClient(error, &frame)
        case .ipv6, .icmpv6Error, .neighborSolicitation:
            counters[passedOver: .ipv6] &+= 1
            return .drop
        case .passedOver(let reason):
            counters[passedOver: reason] &+= 1
            return .drop
        case .malformed(let reason):
            counters[malformed: reason] &+= 1
            return .drop
        }
    }

    @inline(__always)
    private mutating func translateReply(_ flow: IPv4Flow, _ frame: inout MutableRawSpan, now: UInt64, checksumPending: Bool) -> Verdict {
        guard let gateway = settings.gateway, flow.destinationMAC == gateway.mac else { return drop(.notAddressedToDirector) }
        guard let source = services.findReplySource(address: flow.source, port: flow.sourcePort, transport: flow.transport) else {
            return drop(.replyNotFromTranslatedServer)
        }
        let service = services.virtualEndpoint(ofService: source.service)
        let key = FlowKey(clientAddress: flow.destination, clientPort: flow.destinationPort, virtualAddress: service.address,
                          virtualPort: service.port, transport: flow.transport)
        // The same client port may since have been scheduled to another server: that server's
        // connection is not this reply's.
        guard let slot = table.find(key, hash: key.tableHash), table[slot].realServerID == source.server else {
            return drop(.replyWithoutConnection)
        }
        guard clientSideMAC != .zero else { return drop(.clientNextHopUnknown) }
        // The peer's flow, answered here first: it is this worker's now (its client's next frame
        // would say the same).
        if table[slot].isReplica { takeOver(slot: slot, now: now, from: clientSideMAC) }
        // The traffic counters count what comes in from clients (ipvsadm's InPkts); a reply is
        // counted as forwarded only (`replies_forwarded`).
        DirectRouting.rewrite(&frame, to: clientSideMAC, from: settings.virtualMAC)
        NetworkAddressTranslation.rewriteSource(&frame, of: flow, to: service.address, port: service.port, checksumPending: checksumPending)
        let checksumField = flow.transport == .tcp ? TCPHeader.checksumOffset : UDPHeader.checksumOffset
        return .transmitOnFront(length: frame.byteCount, checksum: TransportChecksum(
            start: flow.transportOffset, fieldOffset: checksumField, end: flow.networkOffset + flow.packetLength))
    }

    /// An ICMP error from the back about a packet of a NAT connection the director sent to its
    /// real server (the server's port is closed, the packet did not fit a link): it goes to the
    /// client as if about its packet to VIP:port, from the VIP.
    private mutating func relayToClient(_ error: ICMPError, _ frame: inout MutableRawSpan) -> Verdict {
        guard let gateway = settings.gateway, error.destinationMAC == gateway.mac else { return drop(.notAddressedToDirector) }
        // The quoted packet went from the client to the server's address and port.
        guard let source = services.findReplySource(address: error.quotedDestination, port: error.quotedDestinationPort,
                                                    transport: error.quotedTransport) else {
            return drop(.replyNotFromTranslatedServer)
        }
        let service = services.virtualEndpoint(ofService: source.service)
        let key = FlowKey(clientAddress: error.quotedSource, clientPort: error.quotedSourcePort, virtualAddress: service.address,
                          virtualPort: service.port, transport: error.quotedTransport)
        guard let slot = table.find(key, hash: key.tableHash), table[slot].realServerID == source.server else {
            return drop(.icmpErrorWithoutConnection)
        }
        guard clientSideMAC != .zero else { return drop(.clientNextHopUnknown) }
        DirectRouting.rewrite(&frame, to: clientSideMAC, from: settings.virtualMAC)
        NetworkAddressTranslation.rewriteQuotedDestination(&frame, of: error, to: service.address, port: service.port)
        counters[.icmpErrorsRelayed] &+= 1
        return .transmitOnFront(length: frame.byteCount, checksum: TransportChecksum(
            start: error.icmpOffset, fieldOffset: ICMPHeader.checksumOffset, end: error.networkOffset + error.packetLength))
    }

    /// ARP on the back segment: answer "who has the gateway?" with the gateway MAC (the duty
    /// moves with the VIP's, so one director of a pair answers).
    private mutating func answerForGateway(_ message: ARPMessage, _ frame: inout MutableRawSpan) -> Verdict {
        guard message.operation == .request, settings.answersARP, let gateway = settings.gateway,
              message.targetAddress == gateway.address else {
            return drop(.arpNotForVirtualAddress)
        }
        return reply(to: message, &frame, from: gateway.mac)
    }

    /// Where replies go when this worker has not seen a client frame yet (the peer's next hop,
    /// handed over with a takeover): the router the clients' frames come through.
    public mutating func learnClientSideMAC(_ mac: MACAddress) {
        if clientSideMAC == .zero && mac != .zero && !mac.isGroup { clientSideMAC = mac }
    }

    /// The transmit stage's outcome for a `.transmitOnFront` frame (see `countTransmission`).
    @inline(__always)
    public mutating func countReplyTransmission(length: Int, queued: Bool) {
        if queued {
            counters[.repliesForwarded] &+= 1
            counters[.bytesForwarded] &+= UInt64(length)
        } else {
            counters[drop: .transmitRingFull] &+= 1
        }
    }

    @discardableResult @inline(__always)
    private mutating func drop(_ reason: DropReason) -> Verdict {
        counters[drop: reason] &+= 1
        return .drop
    }

    // MARK: - Beside the pipeline

    /// Incremental expiry: examines at most `budget` slots. Call once per loop iteration.
    public mutating func expire(now: UInt64, budget: Int) {
        table.expire(now: now, budget: budget) { entry in
            // A replica's end is the peer's to report; it never counted in this worker's load.
            if entry.isReplica {
                counters[.replicasExpired] &+= 1
                return
            }
            load.connectionClosed(entry.realServerID, state: entry.state)
            counters[.connectionsExpired] &+= 1
            changes.record(.removed(entry, .expired))
        }
    }

    // MARK: - Replicas from the peer

    /// Applies a peer's change to this worker's shard. A replica never overrides this worker's
    /// own entry for the same flow (here, this worker is the authority) unless the peer claims
    /// the flow: it created it or took it over, so it sees the flow's packets and this worker no
    /// longer does. A replica never counts in the load the least-connection schedulers see until
    /// it turns live.
    public mutating func apply(_ update: ReplicaUpdate<IPv4Address>, now: UInt64) {
        switch update {
        case let .upsert(key, state, realServerID, lifetime, claimsFlow, proven):
            let hash = key.tableHash
            if let slot = table.find(key, hash: hash) {
                if !table[slot].isReplica {
                    guard claimsFlow else { return }
                    load.connectionClosed(table[slot].realServerID, state: table[slot].state)
                    table[slot].isReplica = true
                    counters[.replicasYielded] &+= 1
                }
                table[slot].state = state
                table[slot].realServerID = realServerID
                table[slot].expiresAt = now &+ lifetime
                table[slot].replicaEpoch = replicaEpoch
                table[slot].isProven = proven
                counters[.replicasApplied] &+= 1
                return
            }
            var entry = ConnectionEntry(key: key, keyHash: hash, state: state, realServerID: realServerID,
                                        expiresAt: now &+ lifetime, isReplica: true)
            entry.replicaEpoch = replicaEpoch
            entry.isProven = proven
            // Own connections first: a replica may take the place of another unproven replica,
            // never of one of this worker's own flows.
            switch table.insert(entry, reclaimingOwnEntries: false) {
            case .inserted, .insertedByReclaiming:
                counters[.replicasApplied] &+= 1
            case .full:
                counters[drop: .replicaTableFull] &+= 1
            }
        case let .remove(key):
            if let slot = table.find(key, hash: key.tableHash), table[slot].isReplica {
                table.remove(at: slot)
                counters[.replicasRemoved] &+= 1
            }
        }
    }

    /// A snapshot of the peer's table has been asked for: replicas written from now on belong
    /// to the new epoch.
    public mutating func beginResync() {
        replicaEpoch &+= 1
        purge = nil
    }

    /// The snapshot is complete: replicas of earlier epochs are removed, in steps of
    /// `purgeStaleReplicas`.
    public mutating func completeResync() {
        purge = TableWalk()
    }

    /// One bounded step of removing stale replicas, while a purge is due.
    public mutating func purgeStaleReplicas(budget: Int) {
        guard var walk = purge else { return }
        let epoch = replicaEpoch
        var removed: UInt64 = 0
        table.continueWalk(&walk, budget: budget) { entry in
            guard entry.isReplica, entry.replicaEpoch != epoch else { return .keep }
            removed += 1
            return .remove
        }
        counters[.replicasRemoved] &+= removed
        purge = walk.isFinished(in: table) ? nil : walk
    }

    /// Counts a replica naming a real server this director does not know.
    public mutating func countUnknownReplicaServer() {
        counters[drop: .replicaUnknownRealServer] &+= 1
    }

    /// The transmit stage's outcome for a `.transmitOnBack` frame: forwarded once the ring has
    /// taken it, otherwise a counted drop. (`process` cannot know; it only decides.)
    @inline(__always)
    public mutating func countTransmission(length: Int, queued: Bool) {
        if queued {
            counters[.framesForwarded] &+= 1
            counters[.bytesForwarded] &+= UInt64(length)
        } else {
            counters[drop: .transmitRingFull] &+= 1
        }
    }
}
