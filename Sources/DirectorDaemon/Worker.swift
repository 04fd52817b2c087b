import CDirectorShim
import DirectorCore
import DirectorWire
import PacketIO
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What a worker needs to start: its place, its interfaces and its share of the work.
struct WorkerPlan: Sendable {
    let index: Int
    let placement: NUMAPlacement
    let front: NetworkInterface
    let back: NetworkInterface
    let receiveRing: ReceiveRingGeometry
    let tableCapacity: Int
    let settings: ForwarderSettings
    let fanoutGroup: UInt16
    let bucketCount: UInt32
    let ownership: BucketOwnership
    /// How many workers the director runs (the back filters split the replies among them).
    let workerCount: Int
    /// The XDP program the worker offers its established flows to (nil: `fast_path: off`).
    let fastPath: XDPFastPath?
}

/// The rings between a worker and the sync thread, and the worker's wake-up call. Created by
/// the director before the workers start, so the sync thread can hold them too.
final class WorkerSyncLink: Sendable {
    /// Worker → sync thread: the worker's table changes and snapshot entries.
    let outbound = SingleProducerRing<WorkerReport>(capacity: 1 << 16)
    /// Sync thread → worker: the peer's records and resync steps.
    let inbound = SingleProducerRing<WorkerInstruction>(capacity: 1 << 16)
    let wakeup: WorkerWakeup

    init() throws(WorkerError) {
        wakeup = try WorkerWakeup()
    }
}

/// One worker: a pinned thread running DPDK-style run-to-completion — wait for a block, process
/// every frame in it, flush the transmit ring once, then do the housekeeping that is due
/// (expiry, counters, a new snapshot). Everything it touches per packet is its own.
final class Worker: @unchecked Sendable {
    let plan: WorkerPlan
    private let snapshots: SnapshotExchange
    private let board: CounterBoard
    private let trafficBoard: TrafficBoard
    let link: WorkerSyncLink?
    private let stopping: Atomic<Bool>
    /// Loop iterations completed: the sync thread waits on it to know the worker has finished
    /// every frame it held and applied every instruction handed to it before.
    let iterations = Atomic<UInt64>(0)
    private let answersARP: Atomic<Bool>
    /// nil until the worker has set itself up; then "" for success or the error text.
    private let startup = Mutex<String?>(nil)
    private var thread: pthread_t?
    /// The receive socket, once the worker has opened it; the director swaps its filter.
    private let receiveSocket = Atomic<Int32>(-1)
    /// The back interface's receive socket (NAT replies), -1 without NAT services.
    private let backReceiveSocket = Atomic<Int32>(-1)
    /// Whether the front interface is down as the receive socket last reported it.
    let frontLinkDown = Atomic<Bool>(false)
    /// The MAC the worker's client frames come from (`Forwarder.clientSideMAC`), for the peer.
    let clientNextHop = Atomic<UInt64>(0)
    /// Fault injection (`director fault stall-worker`): until this CLOCK_MONOTONIC time (ms) the
    /// worker sleeps instead of working, as a hung worker would.
    let stalledUntil = Atomic<UInt64>(0)
    /// Requests for `director connections`.
    let listings = ConnectionListingMailbox()

    /// How long a worker waits for frames before doing housekeeping anyway.
    static let pollTimeoutMilliseconds: Int32 = 10
    /// How often the kernel's ring-drop count is read, busy or idle (ms).
    static let dropReadIntervalMilliseconds: UInt64 = 100

    init(plan: WorkerPlan, snapshots: SnapshotExchange, board: CounterBoard, trafficBoard: TrafficBoard, link: WorkerSyncLink?) {
        self.plan = plan
        self.snapshots = snapshots
        self.board = board
        self.trafficBoard = trafficBoard
        self.link = link
        stopping = Atomic(false)
        answersARP = Atomic(plan.settings.answersARP)
    }

    func requestStop() {
        stopping.store(true, ordering: .relaxed)
        link?.wakeup.ring()
    }

    /// Whether this worker answers ARP for the virtual addresses (the pair moves the duty).
    func setAnswersARP(_ answers: Bool) {
        answersARP.store(answers, ordering: .relaxed)
        link?.wakeup.ring()
    }

    /// Returns once the worker has gone twice round its loop since the call: whatever it held
    /// or was handed before is done. False if that took longer than `timeoutNanoseconds`.
    func quiesce(timeoutNanoseconds: UInt64) -> Bool {
        let start = iterations.load(ordering: .acquiring)
        let deadline = director_monotonic_nanoseconds() + timeoutNanoseconds
        while iterations.load(ordering: .acquiring) < start + 2 {
            link?.wakeup.ring()
            if director_monotonic_nanoseconds() > deadline { return false }
            usleep(50)
        }
        return true
    }

    /// The receive socket on the front interface (-1 before the worker has opened it): frames
    /// sent through it leave by the front (ARP replies, gratuitous ARP, ACK probes).
    var frontSocket: Int32 { receiveSocket.load(ordering: .acquiring) }

    /// The receive socket on the back interface (-1 without NAT): frames sent through it leave
    /// by the back (gratuitous ARP for the NAT gateway).
    var backSocket: Int32 { backReceiveSocket.load(ordering: .acquiring) }

    /// Replaces this worker's ownership filter (atomic in the kernel; the ring stays open).
    func attach(_ ownership: BucketOwnership) throws(SystemCallError) {
        let socket = receiveSocket.load(ordering: .acquiring)
        guard socket >= 0 else { return }
        try OwnershipFilter.attach(ownership, to: socket)
        let backSocket = backReceiveSocket.load(ordering: .acquiring)
        if backSocket >= 0, let gateway = plan.settings.gateway {
            try ReplyFilter.attach(ownership, gatewayMAC: gateway.mac, gatewayAddress6: gateway.address6, worker: plan.index,
                                   workers: plan.workerCount, to: backSocket)
        }
    }

    /// Starts the thread and waits until its rings and table exist (or failed).
    func start() throws(WorkerError) {
        let box = Unmanaged.passRetained(self)
        var handle = pthread_t()
        let result = pthread_create(&handle, nil, { argument in
            let worker = Unmanaged<Worker>.fromOpaque(argument!).takeRetainedValue()
            worker.run()
            return nil
        }, box.toOpaque())
        guard result == 0 else {
            box.release()
            throw WorkerError(worker: plan.index, message: "pthread_create failed (errno \(result))")
        }
        thread = handle
        while true {
            if let outcome = startup.withLock({ $0 }) {
                if outcome.isEmpty { return }
                throw WorkerError(worker: plan.index, message: outcome)
            }
            usleep(1_000)
        }
    }

    func join() {
        if let thread { pthread_join(thread, nil) }
        thread = nil
    }

    private func run() {
        _ = director_name_current_thread("worker \(plan.index)")
        do {
            try plan.placement.pinCurrentThread()
            // Rings after pinning: the kernel allocates them on the node of the calling thread.
            var receive = try PacketReceiveRing(
                interface: plan.front, geometry: plan.receiveRing, fanoutGroup: plan.fanoutGroup,
                fanoutProgram: FanoutProgram.instructions(bucketCount: plan.bucketCount), ownership: plan.ownership)
            receiveSocket.store(receive.socket, ordering: .releasing)
            var transmit = try PacketTransmitRing(interface: plan.back)
            // NAT: the servers' replies come in on the back and leave by the front.
            var replies: PacketReceiveRing?
            var frontTransmit: PacketTransmitRing?
            if let gateway = plan.settings.gateway {
                let ring = try PacketReceiveRing(
                    interface: plan.back, geometry: plan.receiveRing, fanoutGroup: 0, fanoutProgram: nil,
                    filter: ReplyFilter.instructions(for: plan.ownership, gatewayMAC: gateway.mac, gatewayAddress6: gateway.address6,
                                                     worker: plan.index, workers: plan.workerCount))
                try ring.acceptFrames(to: gateway.mac, on: plan.back)
                if let address6 = gateway.address6 { try ring.acceptFrames(to: address6.solicitedNodeMulticast.multicastMAC, on: plan.back) }
                backReceiveSocket.store(ring.socket, ordering: .releasing)
                replies = consume ring
                frontTransmit = try PacketTransmitRing(interface: plan.front)
            }
            // The IPv6 shard has the same capacity, in memory left untouched until IPv6 flows
            // arrive (slots are spread at random: a few thousand flows make most of it resident).
            guard let table = ConnectionTable<IPv4Address>(capacity: plan.tableCapacity, memory: plan.placement.tableMemory),
                  let table6 = ConnectionTable<IPv6Address>(capacity: plan.tableCapacity, memory: plan.placement.untouchedTableMemory) else {
                startup.withLock { $0 = "could not allocate connection tables of \(plan.tableCapacity) entries" }
                return
            }
            var forwarder = Forwarder(table: table, table6: table6, services: snapshots.snapshot, settings: plan.settings,
                                      changes: SyncFeed(ring: link?.outbound))
            board.publish(worker: plan.index, gauge: .tableCapacity, UInt64(plan.tableCapacity))
            board.publish(worker: plan.index, gauge: .numaNode, UInt64(plan.placement.node ?? 0))
            board.publish(worker: plan.index, gauge: .receiveRingBytes, UInt64(plan.receiveRing.byteCount * (replies == nil ? 1 : 2)))
            startup.withLock { $0 = "" }
            loop(&receive, &transmit, &replies, &frontTransmit, &forwarder)
        } catch {
            startup.withLock { $0 = "\(error)" }
        }
    }

    private func loop(_ receive: inout PacketReceiveRing, _ transmit: inout PacketTransmitRing,
                      _ replies: inout PacketReceiveRing?, _ frontTransmit: inout PacketTransmitRing?, _ forwarder: inout Forwarder<SyncFeed>) {
        let frontSocket = receive.socket
        let backSocket = replies?.socket ?? -1
        var generation = forwarder.services.generation
        var ringDrops: UInt64 = 0
        var nextDropRead: UInt64 = 0
        var nextTrafficPublish: UInt64 = 0
        var housekeptAt: UInt64 = 0
        var linkDownSince: UInt64?
        var snapshotWalk: SnapshotWalk?
        var probeWalk: ProbeWalk?
        var listing: ConnectionListingMailbox.Walk?
        // Enough slots per call that an idle worker sweeps its whole shard in about ten seconds.
        let idleSweepBudget = max(1024, forwarder.table.slotCount / 1000)
        let wakeupDescriptor = link?.wakeup.descriptor ?? -1
        while !stopping.load(ordering: .relaxed) {
            sleepWhileStalled()
            // A table walk for the peer's snapshot goes on without waiting for traffic.
            // A probe walk waits for traffic until the worker has seen the clients' next hop.
            if listing == nil, let request = listings.takeRequest() { listing = ConnectionListingMailbox.Walk(request) }
            let walking = snapshotWalk != nil || listing != nil || (probeWalk.map { forwarder.clientSideMAC != .zero || $0.peerNextHop != .zero } ?? false)
            let timeout = walking ? 0 : Worker.pollTimeoutMilliseconds
            var woken = false
            let readiness = receive.waitForFrames(timeoutMilliseconds: (replies?.hasFrames ?? false) ? 0 : timeout,
                                                  orReadable: wakeupDescriptor, readable: &woken, alsoWatching: backSocket)
            let now = director_monotonic_nanoseconds() / 1_000_000
            if case .failed(let code) = readiness {
                noteReceiveError(code, now: now, downSince: &linkDownSince)
            } else if readiness == .ready, let since = linkDownSince {
                linkDownSince = nil
                frontLinkDown.store(false, ordering: .releasing)
                Log.info("worker \(plan.index): frames arrive again on \(plan.front.name) after \(now - since) ms")
            }
            if let link {
                // Read the eventfd only when it fired (no system call per burst otherwise); when
                // frames were ready without a poll, a pending wake-up shows at the next poll.
                if woken { link.wakeup.clear() }
                forwarder.changes.changedAt = director_realtime_nanoseconds()
                follow(link.inbound, &forwarder, &snapshotWalk, &probeWalk, now: now)
            }
            if readiness == .ready {
                defer { if forwarder.hasFastPathRequests { carryOut(&forwarder) } }
                _ = receive.drainBurst(lookahead: { forwarder.prefetchEntry(of: $0) }) { frame, metadata in
                    switch forwarder.process(&frame, now: now, checksumPending: metadata.checksumPending, vlanTagged: metadata.vlanTag.isPresent) {
                    case .transmitOnBack(let length, let checksum):
                        let queued = transmit.enqueue(frame.bytes.extracting(0..<length), pendingChecksum: metadata.checksumPending ? checksum : nil,
                                                      vlanTag: metadata.vlanTag)
                        forwarder.countTransmission(length: length, queued: queued)
                    case .answer(let length):
                        _ = PacketReceiveRing.send(frame.bytes.extracting(0..<length), on: frontSocket, vlanTag: metadata.vlanTag)
                    case .transmitOnFront, .drop:
                        break
                    }
                }
            }
            let repliesReady = replies?.hasFrames ?? false
            if repliesReady {
                _ = replies!.drainBurst { frame, metadata in
                    switch forwarder.processReply(&frame, now: now, checksumPending: metadata.checksumPending) {
                    case .transmitOnFront(let length, let checksum):
                        let queued = frontTransmit!.enqueue(frame.bytes.extracting(0..<length), pendingChecksum: metadata.checksumPending ? checksum : nil,
                                                            vlanTag: metadata.vlanTag)
                        forwarder.countReplyTransmission(length: length, queued: queued)
                    case .answer(let length):
                        _ = PacketReceiveRing.send(frame.bytes.extracting(0..<length), on: backSocket, vlanTag: metadata.vlanTag)
                    case .transmitOnBack, .drop:
                        break
                    }
                }
            }
            // Also after an idle wait: frames a failed send left queued go out with the next try.
            if transmit.hasPending, let failure = transmit.flush() { transmitErrors.count(failure) }
            if frontTransmit?.hasPending ?? false, let failure = frontTransmit!.flush() { transmitErrors.count(failure) }
            if let walk = snapshotWalk, let outbound = link?.outbound {
                snapshotWalk = continueSnapshot(walk, &forwarder, outbound)
            }
            if let walk = probeWalk {
                probeWalk = continueProbes(walk, &forwarder, on: frontSocket, now: now)
            }
            if listing != nil, listings.step(&listing!, table: &forwarder.table, table6: &forwarder.table6) { listing = nil }
            let busy = readiness == .ready || repliesReady
            // Housekeeping once a millisecond while busy, not once a burst: a TPACKET_V2 ring hands
            // over a few frames at a time, and the sweep and the counters would cost more than
            // the frames.
            if !busy || now != housekeptAt {
                housekeptAt = now
                if let fastPath = plan.fastPath {
                    // Before the snapshot below: a flush follows a new snapshot, so a worker
                    // that sees the new generation also takes the services it was made for.
                    forwarder.fastPathGeneration = fastPath.generation
                    forwarder.expire(now: now, budget: busy ? 256 : idleSweepBudget) { fastPath.lastSeenMilliseconds($0) }
                    if forwarder.hasFastPathRequests { carryOut(&forwarder) }
                } else {
                    forwarder.expire(now: now, budget: busy ? 256 : idleSweepBudget)
                }
                forwarder.purgeStaleReplicas(budget: busy ? 1024 : idleSweepBudget)
                publish(&forwarder)
                // By time, not only when idle: an overloaded worker is never idle, and that is
                // when the count matters.
                if now >= nextDropRead {
                    nextDropRead = now + Worker.dropReadIntervalMilliseconds
                    ringDrops &+= receive.takeDropCount() &+ (replies?.takeDropCount() ?? 0)
                    board.publish(worker: plan.index, gauge: .ringDrops, ringDrops)
                }
                if now >= nextTrafficPublish {
                    nextTrafficPublish = now + TrafficBoard.publishIntervalMilliseconds
                    trafficBoard.publish(worker: plan.index, load: forwarder.load, traffic: forwarder.traffic, table: forwarder.services)
                }
                let answers = answersARP.load(ordering: .relaxed)
                if snapshots.generation != generation || answers != forwarder.settings.answersARP {
                    let snapshot = snapshots.snapshot
                    var settings = forwarder.settings
                    settings.answersARP = answers
                    if let timeouts = snapshot.timeouts { settings.timeouts = timeouts }
                    forwarder.install(snapshot, settings: settings)
                    generation = snapshot.generation
                }
            }
            iterations.add(1, ordering: .releasing)
        }
    }

    /// Transmit errors by kind, published as counters.
    private var transmitErrors = TransmitErrorCounts()
    /// Offers the kernel refused (the flows stay on the ring).
    private var fastPathOffersRefused: UInt64 = 0

    /// Carries out the pipeline's offers and withdrawals on the XDP program's map, in order; a
    /// lost withdrawal flushes the whole map instead (see `FastPathRequests`).
    private func carryOut(_ forwarder: inout Forwarder<SyncFeed>) {
        guard let fastPath = plan.fastPath else { return }
        let now = director_monotonic_nanoseconds()
        let generation = forwarder.fastPathGeneration
        let outcome = forwarder.fastPathRequests.drain { request in
            switch request {
            case .offer(let flow):
                if !fastPath.offer(flow, generation: generation, nowNanoseconds: now) { fastPathOffersRefused &+= 1 }
            case .withdraw(let flow):
                fastPath.withdraw(flow)
            }
        }
        if outcome.flush {
            fastPath.flush()
            forwarder.fastPathGeneration = fastPath.generation
        }
    }

    /// The receive socket reported an error. ENETDOWN: the front interface went down; the kernel
    /// takes the socket off the interface and puts it back (in its fan-out group) when the
    /// interface comes up, so the worker goes on waiting, without spinning: the error is read.
    private func noteReceiveError(_ code: Int32, now: UInt64, downSince: inout UInt64?) {
        if code == ENETDOWN || code == ENXIO {
            guard downSince == nil else { return }
            downSince = now
            frontLinkDown.store(true, ordering: .releasing)
            linkDownEvents &+= 1
            board.publish(worker: plan.index, gauge: .frontLinkDownEvents, linkDownEvents)
            Log.warning("worker \(plan.index): \(plan.front.name) is down (\(String(cString: strerror(code)))); waiting for it to come back")
        } else {
            receiveErrors &+= 1
            board.publish(worker: plan.index, gauge: .receiveErrors, receiveErrors)
        }
    }

    private var linkDownEvents: UInt64 = 0
    private var receiveErrors: UInt64 = 0

    /// Fault injection: sleeps, in short naps, while a stall is set.
    private func sleepWhileStalled() {
        while director_monotonic_nanoseconds() / 1_000_000 < stalledUntil.load(ordering: .relaxed), !stopping.load(ordering: .relaxed) {
            usleep(1_000)
        }
    }

    /// Carries out what the sync thread handed over, in order.
    private func follow(_ inbound: SingleProducerRing<WorkerInstruction>, _ forwarder: inout Forwarder<SyncFeed>,
                        _ snapshotWalk: inout SnapshotWalk?, _ probeWalk: inout ProbeWalk?, now: UInt64) {
        let wallClock = forwarder.changes.changedAt
        inbound.drain(limit: inbound.capacity) { instruction in
            switch instruction {
            case .apply(let update, let changedAt):
                forwarder.apply(update, now: now)
                board.recordLag(worker: plan.index, microseconds: wallClock > changedAt ? (wallClock - changedAt) / 1_000 : 0)
            case .apply6(let update, let changedAt):
                forwarder.apply(update, now: now)
                board.recordLag(worker: plan.index, microseconds: wallClock > changedAt ? (wallClock - changedAt) / 1_000 : 0)
            case .beginResync:
                forwarder.beginResync()
            case .completeResync:
                forwarder.completeResync()
            case .walkForSnapshot(let requestID):
                snapshotWalk = SnapshotWalk(requestID: requestID)
            case .probeReplicas(let buckets, let nextHop):
                // NAT replies of flows taken over go where the peer sent its clients' frames.
                forwarder.learnClientSideMAC(nextHop)
                probeWalk = ProbeWalk(buckets: buckets, peerNextHop: nextHop, waitForMACUntil: now + Worker.probeMACWaitMilliseconds)
            }
        }
    }

    /// The walk answering the peer's snapshot request: the IPv4 shard, then the IPv6 one.
    struct SnapshotWalk {
        var requestID: UInt64
        var walk = TableWalk()
        var inIPv6Shard = false
    }

    /// One bounded step of the table walk for the peer's snapshot; nil once the end is reported.
    private func continueSnapshot(_ state: SnapshotWalk, _ forwarder: inout Forwarder<SyncFeed>,
                                  _ outbound: SingleProducerRing<WorkerReport>) -> SnapshotWalk? {
        var state = state
        let requestID = state.requestID
        if !state.inIPv6Shard {
            forwarder.table.continueWalk(&state.walk, budget: 8192) { entry in
                outbound.push(.snapshotEntry(entry, requestID: requestID)) ? .keep : .pause
            }
            guard state.walk.isFinished(in: forwarder.table) else { return state }
            state.inIPv6Shard = true
            state.walk = TableWalk()
        }
        forwarder.table6.continueWalk(&state.walk, budget: 8192) { entry in
            outbound.push(.snapshotEntry6(entry, requestID: requestID)) ? .keep : .pause
        }
        guard state.walk.isFinished(in: forwarder.table6) else { return state }
        return outbound.push(.snapshotEnd(requestID: requestID)) ? nil : state
    }

    /// One bounded step of probing the clients of replicas taken over (rare: after a peer's death
    /// or a handover).
    /// A worker that just took buckets over may not have created or taken over a flow yet, and
    /// the peer may not have said where its client frames come from: it waits this long for one
    /// or the other to learn where to send the probes.
    static let probeMACWaitMilliseconds: UInt64 = 2_000

    /// The probes' walk: the IPv4 shard, then the IPv6 one.
    struct ProbeWalk {
        var buckets: BucketOwnership
        var walk = TableWalk()
        var inIPv6Shard = false
        var peerNextHop: MACAddress
        var waitForMACUntil: UInt64
    }

    private func continueProbes(_ state: ProbeWalk, _ forwarder: inout Forwarder<SyncFeed>, on socket: Int32, now: UInt64) -> ProbeWalk? {
        var state = state
        let virtualMAC = forwarder.settings.virtualMAC
        let clientSide = forwarder.clientSideMAC != .zero ? forwarder.clientSideMAC : state.peerNextHop
        guard clientSide != .zero else { return now < state.waitForMACUntil ? state : nil }
        var sent: UInt64 = 0
        let buckets = state.buckets
        func send(_ frame: [UInt8]) {
            if frame.withUnsafeBytes({ PacketReceiveRing.send($0.bytes, on: socket) }) { sent += 1 }
        }
        if !state.inIPv6Shard {
            forwarder.table.continueWalk(&state.walk, budget: 4096) { entry in
                if AckProbe.applies(to: entry),
                   buckets.owns(ClientBucket.bucket(address: entry.clientAddress, port: entry.clientPort, bucketCount: buckets.bucketCount)) {
                    send(AckProbe.frame(for: entry, from: virtualMAC, to: clientSide))
                }
                return .keep
            }
            if state.walk.isFinished(in: forwarder.table) {
                state.inIPv6Shard = true
                state.walk = TableWalk()
            }
        } else {
            forwarder.table6.continueWalk(&state.walk, budget: 4096) { entry in
                if AckProbe.applies(to: entry),
                   buckets.owns(ClientBucket.bucket(address: entry.clientAddress, port: entry.clientPort, bucketCount: buckets.bucketCount)) {
                    send(AckProbe.frame(for: entry, from: virtualMAC, to: clientSide))
                }
                return .keep
            }
        }
        forwarder.counters[.ackProbesSent] &+= sent
        return state.inIPv6Shard && state.walk.isFinished(in: forwarder.table6) ? nil : state
    }

    private func publish(_ forwarder: inout Forwarder<SyncFeed>) {
        clientNextHop.store(forwarder.clientSideMAC.rawValue, ordering: .relaxed)
        board.publish(worker: plan.index, counters: forwarder.counters)
        board.publish(worker: plan.index, gauge: .tableEntries, UInt64(forwarder.table.count + forwarder.table6.count))
        let counts = forwarder.changes.counts
        board.publish(worker: plan.index, gauge: .changesCreated, UInt64(counts.created))
        board.publish(worker: plan.index, gauge: .changesStateChanged, UInt64(counts.stateChanges))
        board.publish(worker: plan.index, gauge: .changesRemoved, UInt64(counts.removals))
        board.publish(worker: plan.index, gauge: .changesRefreshed, UInt64(counts.refreshes))
        board.publish(worker: plan.index, gauge: .syncRingFull, forwarder.changes.ringFull)
        board.publish(worker: plan.index, gauge: .transmitErrorsNetworkDown, transmitErrors.networkDown)
        board.publish(worker: plan.index, gauge: .transmitErrorsNoBuffers, transmitErrors.noBuffers)
        board.publish(worker: plan.index, gauge: .transmitErrorsOther, transmitErrors.other)
        if plan.fastPath != nil { board.publish(worker: plan.index, gauge: .fastPathOffersRefused, fastPathOffersRefused) }
    }
}

/// Failed sends of the transmit ring, by errno: the frames stay queued and go with the next try.
struct TransmitErrorCounts {
    /// ENETDOWN, ENXIO: the back interface is down.
    var networkDown: UInt64 = 0
    /// ENOBUFS, EAGAIN: the device queue or the socket's send buffer is full.
    var noBuffers: UInt64 = 0
    var other: UInt64 = 0

    mutating func count(_ code: Int32) {
        switch code {
        case ENETDOWN, ENXIO: networkDown &+= 1
        case ENOBUFS, EAGAIN: noBuffers &+= 1
        default: other &+= 1
        }
    }
}

struct WorkerError: Error, CustomStringConvertible {
    let worker: Int
    let message: String
    var description: String { "worker \(worker): \(message)" }
}
