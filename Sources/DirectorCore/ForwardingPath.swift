import DirectorWire

/// Everything of a worker's pipeline but its connection tables: counters, the change sink,
/// load and traffic counts, settings, services and scheduler positions. Its steps take the
/// table of the frame's family as a parameter, so one generic body serves both families while
/// the `Forwarder` that holds it and the tables passes each to it without overlapping access.
@usableFromInline
struct ForwardingPath<Sink: ConnectionChangeSink>: ~Copyable {
    @usableFromInline var counters = WorkerCounters()
    @usableFromInline var changes: Sink
    @usableFromInline let load = ConnectionLoad()
    @usableFromInline let traffic = TrafficCounters()
    @usableFromInline var settings: ForwarderSettings
    @usableFromInline var services: ServiceTable
    @usableFromInline var cursors: [SchedulerCursor]
    /// Replicas written by `apply` carry this epoch; a resync moves it on, and when the peer's
    /// snapshot is complete the replicas of older epochs are ones the peer no longer has.
    @usableFromInline var replicaEpoch: UInt8 = 0
    /// The source MAC of the frame that last created or took over a connection: the next hop
    /// towards the clients (see `AckProbe`). Learned per new flow, not per frame.
    @usableFromInline var clientSideMAC = MACAddress.zero
    /// Offers and withdrawals for the XDP fast path, carried out by the worker between bursts.
    @usableFromInline var fastPath = FastPathRequests()
    @usableFromInline var fastPathGeneration: UInt32 = 0

    @usableFromInline
    init(services: ServiceTable, settings: ForwarderSettings, changes: consuming Sink) {
        self.services = services
        self.settings = settings
        self.changes = changes
        cursors = Array(repeating: SchedulerCursor(), count: services.services.count)
        if settings.offloadsEstablishedFlows { fastPath.reserve() }
    }

    // MARK: - A client's frame, in the order it meets the steps

    @inline(__always)
    @inlinable mutating func forward<Flow: NetworkFlow>(_ flow: Flow, in table: inout ConnectionTable<Flow.Address>, _ frame: inout MutableRawSpan,
                                             now: UInt64, checksumPending: Bool, offloadable: Bool) -> Verdict {
        guard flow.destinationMAC == settings.virtualMAC else { return drop(.notAddressedToDirector) }
        guard let serviceIndex = Flow.Address.findService(in: services, address: flow.destination, port: flow.destinationPort,
                                                          transport: flow.transport) else {
            return drop(.noVirtualService)
        }
        let key = FlowKey(flow)
        let hash = key.tableHash
        let realServerID: UInt16
        if let slot = table.find(key, hash: hash) {
            if services.resetsConnections(of: table[slot].realServerID) {
                // Its server failed its health check: the client hears so, or the flow starts over.
                if flow.transport == .tcp, !flow.tcpFlags.isOpening {
                    return resetConnection(slot: slot, in: &table, flow: flow, &frame)
                }
                endConnection(slot: slot, in: &table)
                guard let id = admit(key, hash: hash, flow: flow, in: &table, serviceIndex: serviceIndex, now: now) else { return .drop }
                realServerID = id
            } else if flow.transport == .tcp, flow.tcpFlags.isOpening,
                      table[slot].state.hasEnded || services.isQuiesced(table[slot].realServerID) {
                guard let id = reopen(slot: slot, in: &table, serviceIndex: serviceIndex, now: now) else { return .drop }
                realServerID = id
            } else {
                realServerID = refresh(slot: slot, in: &table, flow: flow, frame: frame.bytes, now: now,
                                       serviceIndex: serviceIndex, offloadable: offloadable)
            }
        } else {
            guard let id = admit(key, hash: hash, flow: flow, in: &table, serviceIndex: serviceIndex, now: now) else { return .drop }
            realServerID = id
        }
        let destination = services.destinationMAC(realServerID)
        guard destination != .zero else { return drop(.realServerUnresolved) }
        traffic.countPacket(server: realServerID, service: services.statisticsID(ofService: serviceIndex), bytes: flow.packetLength)
        DirectRouting.rewrite(&frame, to: destination, from: settings.backMAC)
        if services.translates(serviceIndex) {
            let server = Flow.Address.translatedDestination(in: services, of: realServerID)
            flow.translateDestination(of: &frame, to: server.address, port: server.port, checksumPending: checksumPending)
        }
        return .transmitOnBack(length: frame.byteCount, checksum: flow.transportChecksum)
    }

    // MARK: - The XDP fast path

    /// A frame of an existing connection reached the ring while the fast path runs, or for a flow
    /// it carried. A flow whose state left ESTABLISHED (its FIN or RST: the program passes them
    /// here) is withdrawn, the rest of it the ring's; one still offloaded keeps its expiry a
    /// review half a timeout away (so the peer's refresh is never late); an established, proven
    /// direct-routing flow is offered. Out of line: without the fast path, `refresh` pays one
    /// branch for it (measured with callgrind: inlined, the checks cost 30 instructions a frame).
    @inline(never)
    @inlinable mutating func followFastPath<Address>(slot: Int, in table: inout ConnectionTable<Address>, serviceIndex: Int,
                                                    offloadable: Bool, now: UInt64) {
        let entry = table[slot]
        if entry.isOffloaded {
            guard entry.state == .established || entry.state == .udp else {
                withdrawFromFastPath(entry)
                table[slot].isOffloaded = false
                return
            }
            table[slot].expiresAt = now &+ max(settings.timeouts.timeout(for: entry.state) / 2, 1)
        }
        guard settings.offloadsEstablishedFlows, offloadable, !services.translates(serviceIndex) else { return }
        offerToFastPath(slot: slot, in: &table, serverMAC: services.destinationMAC(entry.realServerID),
                        serviceID: services.statisticsID(ofService: serviceIndex), now: now)
    }

    /// Offers an established, proven direct-routing flow to the XDP fast path (once per flush
    /// generation), with the ids the program counts its frames under. Its entry's expiry becomes
    /// the time to ask the program about it: half a timeout away, so the peer still hears of a
    /// busy flow before its replica would expire.
    @inlinable mutating func offerToFastPath<Address>(slot: Int, in table: inout ConnectionTable<Address>, serverMAC: MACAddress,
                                                     serviceID: UInt16, now: UInt64) {
        let entry = table[slot]
        guard serverMAC != .zero, entry.isProven, entry.state == .established || entry.state == .udp,
              !entry.isOffloaded || entry.fastPathGeneration != UInt8(truncatingIfNeeded: fastPathGeneration),
              var flow = fastPathFlow(of: entry, serverMAC: serverMAC) else { return }
        flow.serverID = entry.realServerID
        flow.serviceID = serviceID
        guard fastPath.offer(flow) else { return }
        table[slot].isOffloaded = true
        table[slot].fastPathGeneration = UInt8(truncatingIfNeeded: fastPathGeneration)
        table[slot].expiresAt = now &+ max(settings.timeouts.timeout(for: entry.state) / 2, 1)
        counters[.fastPathOffers] &+= 1
    }

    /// Takes a flow out of the fast path: it ended, moved to the peer or lost its server.
    @inlinable mutating func withdrawFromFastPath<Address>(_ entry: ConnectionEntry<Address>) {
        guard entry.isOffloaded, let flow = fastPathFlow(of: entry, serverMAC: .zero) else { return }
        fastPath.withdraw(flow)
        counters[.fastPathWithdrawals] &+= 1
    }

    @inlinable func fastPathFlow<Address>(of entry: ConnectionEntry<Address>, serverMAC: MACAddress) -> FastPathFlow? {
        guard let client = entry.clientAddress.fastPathAddress, let virtual = entry.virtualAddress.fastPathAddress else { return nil }
        return FastPathFlow(clientAddress: client, virtualAddress: virtual, clientPort: entry.clientPort, virtualPort: entry.virtualPort,
                            transport: entry.key.transport, serverMAC: serverMAC)
    }

    /// An existing connection: advance its state, push its expiry out, return its real server.
    /// The peer hears of a state change at once, and of a flow that merely stays busy once half
    /// its timeout has passed since it last heard (so its replica never expires first).
    @inline(__always)
    @inlinable mutating func refresh<Flow: NetworkFlow>(slot: Int, in table: inout ConnectionTable<Flow.Address>, flow: Flow,
                                                     frame: RawSpan, now: UInt64, serviceIndex: Int, offloadable: Bool) -> UInt16 {
        if table[slot].isReplica { takeOver(slot: slot, in: &table, now: now, from: flow.sourceMAC) }
        let entry = table[slot]
        let isUDP = flow.transport == .udp
        let state = isUDP ? ConnectionState.udp : entry.state.next(afterClientSegment: flow.tcpFlags)
        var timeout = settings.timeouts.timeout(for: state)
        var justProven = false
        if !entry.isProven {
            // Proof of a real client: data once the handshake is done, or a UDP flow's second
            // datagram. Until then an ESTABLISHED entry keeps the SYN_RECV timeout.
            if isUDP || (state == .established && flow.carriesPayload(in: frame)) {
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
            report(.stateChanged(table[slot]))
        } else if justProven {
            // The peer's replica gets the longer life at once, not half a timeout later.
            table[slot].syncedAtSeconds = seconds
            report(.refreshed(table[slot]))
        } else if UInt64(seconds &- entry.syncedAtSeconds) * 2000 >= timeout {
            table[slot].syncedAtSeconds = seconds
            report(.refreshed(table[slot]))
        }
        if entry.isOffloaded || settings.offloadsEstablishedFlows {
            followFastPath(slot: slot, in: &table, serviceIndex: serviceIndex, offloadable: offloadable, now: now)
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
    @inlinable mutating func reopen<Address>(slot: Int, in table: inout ConnectionTable<Address>, serviceIndex: Int, now: UInt64) -> UInt16? {
        let service = services.services[serviceIndex]
        guard let member = service.scheduler.select(table[slot].key, pool: service.pool, cursor: &cursors[serviceIndex], load: load) else {
            drop(.noRealServerAvailable)
            return nil
        }
        let old = table[slot]
        if !old.isReplica { load.connectionClosed(old.realServerID, state: old.state) }
        withdrawFromFastPath(old)
        table[slot].isOffloaded = false
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
        report(.created(table[slot]))
        return realServerID
    }

    /// Ends a connection whose real server failed its health check (its service resets them).
    @inlinable mutating func endConnection<Address>(slot: Int, in table: inout ConnectionTable<Address>) {
        let entry = table[slot]
        table.remove(at: slot)
        withdrawFromFastPath(entry)
        counters[.connectionsReset] &+= 1
        if !entry.isReplica {
            load.connectionClosed(entry.realServerID, state: entry.state)
            report(.removed(entry, .serverFailed))
        }
    }

    /// The client's segment becomes the reset that ends its connection (see `TCPReset`).
    @inlinable mutating func resetConnection<Flow: NetworkFlow>(slot: Int, in table: inout ConnectionTable<Flow.Address>, flow: Flow,
                                                             _ frame: inout MutableRawSpan) -> Verdict {
        endConnection(slot: slot, in: &table)
        // A client's reset needs no answer.
        guard !flow.tcpFlags.contains(.rst) else { return .drop }
        return .answer(length: flow.answerWithReset(in: &frame, from: settings.virtualMAC))
    }

    /// The first packet of a synced flow to arrive here: the replica becomes this worker's own
    /// connection (the peer failed or gave the bucket up) and is reported like a new one.
    @inlinable mutating func takeOver<Address>(slot: Int, in table: inout ConnectionTable<Address>, now: UInt64, from clientSide: MACAddress) {
        clientSideMAC = clientSide
        table[slot].isReplica = false
        table[slot].syncedAtSeconds = UInt16(truncatingIfNeeded: now / 1000)
        counters[.replicasTakenOver] &+= 1
        load.connectionOpened(table[slot].realServerID, state: table[slot].state)
        report(.created(table[slot]))
    }

    /// A flow without an entry: decide whether it may start one, schedule it, record it.
    ///
    /// A frame no honest client sends never makes an entry (see `IPv4Flow.implausibility`). Frames
    /// of a flow that has one skip that check: their addresses and ports passed it when the
    /// entry was made, and the few instructions it costs are not spent on every frame.
    @inlinable mutating func admit<Flow: NetworkFlow>(_ key: FlowKey<Flow.Address>, hash: UInt32, flow: Flow,
                                                   in table: inout ConnectionTable<Flow.Address>, serviceIndex: Int, now: UInt64) -> UInt16? {
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
            withdrawFromFastPath(reclaimed)
            // A replica never counted in this worker's load, and its end is the peer's to report.
            if !reclaimed.isReplica {
                load.connectionClosed(reclaimed.realServerID, state: reclaimed.state)
                report(.removed(reclaimed, .reclaimed))
            }
        case .full:
            drop(.connectionTableFull)
            return nil
        }
        counters[.connectionsCreated] &+= 1
        clientSideMAC = flow.sourceMAC
        load.connectionOpened(realServerID, state: state)
        traffic.countConnection(server: realServerID, service: services.statisticsID(ofService: serviceIndex))
        report(.created(entry))
        return realServerID
    }

    // MARK: - Address resolution for the VIPs

    /// ARP: answer "who has VIP?" with the VIP's MAC, rewriting the request into the reply.
    @inlinable mutating func answer(_ message: ARPMessage, _ frame: inout MutableRawSpan) -> Verdict {
        guard message.operation == .request, settings.answersARP, services.isVirtualAddress(message.targetAddress) else {
            return drop(.arpNotForVirtualAddress)
        }
        return reply(to: message, &frame, from: settings.virtualMAC)
    }

    /// Rewrites an ARP request into the reply "`message.targetAddress` is at `mac`".
    @inlinable mutating func reply(to message: ARPMessage, _ frame: inout MutableRawSpan, from mac: MACAddress) -> Verdict {
        guard let length = ARPCodec.write(
            operation: .reply, into: &frame, ethernetDestination: message.senderMAC, ethernetSource: mac,
            vlanID: message.vlanID, senderMAC: mac, senderAddress: message.targetAddress,
            targetMAC: message.senderMAC, targetAddress: message.senderAddress)
        else { return drop(.arpNotForVirtualAddress) }
        counters[.arpRepliesSent] &+= 1
        return .answer(length: length)
    }

    /// Neighbor Discovery: answer "who has VIP?" (a Neighbor Solicitation for an IPv6 VIP) with
    /// a Neighbor Advertisement carrying the VIP's MAC, as ARP is answered for IPv4 VIPs.
    @inlinable mutating func answer(_ solicitation: NeighborSolicitation, _ frame: inout MutableRawSpan) -> Verdict {
        guard settings.answersARP, services.isVirtualAddress(solicitation.target) else {
            return drop(.neighborSolicitationNotForVirtualAddress)
        }
        return advertise(solicitation, &frame, from: settings.virtualMAC)
    }

    /// Rewrites a solicitation into the advertisement "its target is at `mac`".
    @inlinable mutating func advertise(_ solicitation: NeighborSolicitation, _ frame: inout MutableRawSpan, from mac: MACAddress) -> Verdict {
        // The answer is written over the solicitation, and one without a link-layer option
        // (duplicate address detection sends none) is shorter than the advertisement.
        guard let length = NeighborDiscovery.answer(solicitation, into: &frame, mac: mac) else {
            return drop(.neighborSolicitationTooShortToAnswer)
        }
        counters[.neighborAdvertisementsSent] &+= 1
        return .answer(length: length)
    }

    // MARK: - Shared

    /// Hands `change` to the sink, by its family's overload.
    @inline(__always)
    @inlinable mutating func report<Address: FlowAddress>(_ change: ConnectionChange<Address>) {
        Address.report(change, to: &changes)
    }

    @discardableResult @inline(__always)
    @inlinable mutating func drop(_ reason: DropReason) -> Verdict {
        counters[drop: reason] &+= 1
        return .drop
    }
}
