import CDirectorShim
import DirectorCore
import DirectorSync
import DirectorWire
import PacketIO
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The running director: interfaces, host-stack guard, real-server resolution, the service
/// snapshot, one worker per configured CPU, and the control socket.
public final class Director: @unchecked Sendable {
    /// The configuration it started with. Its `director:` settings hold until a restart; the
    /// services and timeouts in force are `live`'s (a reload changes them).
    public let configuration: Configuration
    /// The file a reload reads (`director reload`, SIGHUP); nil: reload is refused.
    public var configurationPath: String?
    let front: NetworkInterface
    let back: NetworkInterface
    let board: CounterBoard
    let trafficBoard: TrafficBoard
    /// Rates over the last seconds, sampled by the maintenance thread.
    let rates = TrafficRates()
    private(set) var workers: [Worker] = []
    private var snapshots: SnapshotExchange?
    private var control: ControlServer?
    var hostGuard: HostStackGuard?
    private var syncAdmission: SyncAdmission?
    private(set) var sync: SyncThread?
    /// Held from `start` to `stop`: one director per front interface (see `InstanceLock`).
    private var instanceLock: InstanceLock?
    /// Services, timeouts and real-server ids as they are now (a reload or a live change replaces them).
    let live: Mutex<LiveServices>
    private let resolvedMACs = Mutex<[IPAddress: MACAddress]>([:])
    private let maintenanceStop = Atomic<Bool>(false)
    private let servicesStale = Atomic<Bool>(false)
    private var maintenanceThread = DaemonThread(name: "maintenance")
    let startedAtRealtime = director_realtime_nanoseconds()
    let startedAtMonotonic = director_monotonic_nanoseconds()
    var metricsServer: MetricsServer?
    /// The buckets this dispatcher accepts now; changed only through `setOwnership`.
    private let ownership: Mutex<BucketOwnership>
    /// What the pair's health checks say (see `HealthBoard`).
    let health = Mutex(HealthBoard())
    let checker: HealthChecker
    let notifier: Notifier
    /// READY, RELOADING, STOPPING and the watchdog, when systemd runs the director.
    let systemd = SystemdNotifier()
    /// Fault injection: this many coming ownership changes fail as a refused filter would.
    private let failingOwnershipChanges = Atomic<Int>(0)
    /// The XDP program on the front interface, while `fast_path: xdp` runs (nil: off, or it
    /// could not start).
    private(set) var fastPath: XDPFastPath?

    public init(configuration: Configuration) throws {
        self.configuration = configuration
        front = try NetworkInterface(named: configuration.frontInterface)
        back = configuration.backInterface == configuration.frontInterface ? front : try NetworkInterface(named: configuration.backInterface)
        board = CounterBoard(workerCount: configuration.workerCPUs.count)
        trafficBoard = TrafficBoard(workerCount: configuration.workerCPUs.count)
        live = Mutex(LiveServices(services: configuration.services, timeouts: configuration.timeouts))
        notifier = Notifier(command: configuration.notifyCommand)
        // The checks leave by the back interface, where the frames go.
        let cpuCount = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        checker = HealthChecker(device: back.name, cpu: HealthChecker.spareCPU(of: cpuCount, busy: configuration.workerCPUs + [configuration.peer?.syncCPU].compactMap { $0 }))
        // Paired, a dispatcher starts owning nothing: the sync thread gives it its share once it
        // has the peer's table, or every bucket if no peer answers.
        ownership = Mutex(configuration.peer == nil ? configuration.initialOwnership : .none(configuration.bucketCount))
        for (index, cpu) in configuration.workerCPUs.enumerated() where cpu >= cpuCount {
            throw ConfigurationError(field: "director.workers[\(index)]", problem: "CPU \(cpu) does not exist here (this host has CPUs 0–\(cpuCount - 1))")
        }
    }

    public var virtualMAC: MACAddress { configuration.virtualMAC ?? front.mac }

    /// The NAT real servers' gateway, with its MAC settled.
    var natGateway: NATGateway? {
        configuration.natGateway.map { NATGateway(address: $0.address, address6: $0.address6, mac: $0.mac ?? virtualMAC) }
    }

    public func start() throws {
        if let missing = Capability.missing(for: configuration, effective: Capability.effective()) {
            throw StartError(description: missing)
        }
        instanceLock = try InstanceLock(frontInterface: front.name)
        if configuration.locksMemory {
            // On fault, not at once: thread stacks and the sparse per-id arrays stay as small as used.
            guard mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0 else {
                throw StartError(description: "cannot lock the director's memory (director.lock_memory): \(String(cString: strerror(errno)))")
            }
        }
        Log.info("front \(front), back \(back), virtual MAC \(virtualMAC)")
        Log.info(NUMAPlacement.isAvailable ? "NUMA available: worker memory is placed on each CPU's node" : "NUMA unavailable: worker memory comes from the ordinary heap")
        HostSettingsCheck.warnAboutDifferences(interfaces: [front.name, back.name], workerCPUs: configuration.workerCPUs)
        if configuration.hidesFramesFromHost {
            let hostGuard = HostStackGuard(interface: front.name, virtualAddresses: LiveServices.virtualAddresses(configuration.services),
                                           gateway: natGateway.map { (back.name, "\($0.address)", "\($0.mac)") })
            try hostGuard.install()
            self.hostGuard = hostGuard
            Log.info("host stack guard: nftables table netdev \(hostGuard.tableName) drops frames for the virtual addresses before the host stack")
        }
        notifier.start()
        resolveRealServers(onlyMissing: false)
        let exchange = SnapshotExchange(buildServiceTable(generation: 1))
        snapshots = exchange
        var settings = ForwarderSettings(virtualMAC: virtualMAC, backMAC: back.mac, answersARP: configuration.answersARP,
                                         timeouts: configuration.timeouts, gateway: natGateway)
        fastPath = startFastPath()
        settings.offloadsEstablishedFlows = fastPath != nil
        updateFastPathAddresses()
        warnOfUncountedFastPathTraffic()
        if let gateway = natGateway {
            Log.info("NAT gateway \(gateway.address)\(gateway.address6.map { " and \($0)" } ?? "") at \(gateway.mac) on \(back.name): replies come back through it")
        }
        let perWorker = max(1, configuration.connectionCapacity / configuration.workerCPUs.count)
        Log.info("receive ring per worker: \(configuration.receiveRing.summary)")
        let fanoutGroup = UInt16(truncatingIfNeeded: getpid())
        for (index, cpu) in configuration.workerCPUs.enumerated() {
            let plan = WorkerPlan(index: index, placement: NUMAPlacement(cpu: cpu), front: front, back: back,
                                  receiveRing: configuration.receiveRing, tableCapacity: perWorker,
                                  settings: settings, fanoutGroup: fanoutGroup, bucketCount: configuration.bucketCount,
                                  ownership: ownership.withLock { $0 }, workerCount: configuration.workerCPUs.count, fastPath: fastPath)
            do {
                let worker = Worker(plan: plan, snapshots: exchange, board: board, trafficBoard: trafficBoard, link: configuration.peer == nil ? nil : try WorkerSyncLink())
                try worker.start()
                workers.append(worker)
            } catch {
                stop()
                throw error
            }
            Log.info("worker \(index) on CPU \(cpu) (NUMA node \(plan.placement.node.map(String.init) ?? "-")): \(perWorker) connections")
        }
        joinSolicitedNodeGroups()
        let server = try ControlServer(path: configuration.controlSocket) { [weak self] command, caller in
            self?.handle(command, from: caller) ?? "stopping\n"
        }
        server.start()
        control = server
        startMaintenance()
        if let peer = configuration.peer {
            do {
                guard let crossover = NetworkInterface.name(holding: peer.localAddress) else {
                    throw ConfigurationError(field: "director.peer.local_address", problem: "\(peer.localAddress) is on no interface of this host")
                }
                let admission = SyncAdmission(crossover: crossover, local: "\(peer.localAddress)", peer: "\(peer.address)",
                                              ports: [peer.syncPort, peer.heartbeatPort])
                try admission.install()
                syncAdmission = admission
                Log.info("sync admission: nftables table inet \(admission.tableName) takes the pair's ports only from \(peer.address) on \(crossover)")
                let sync = try SyncThread(director: self, peer: peer, crossover: crossover, workers: workers)
                sync.start()
                self.sync = sync
            } catch {
                stop()
                throw error
            }
        }
        startHealthChecks()
        // Last: its thread reads what start sets up (the sync thread among it).
        do {
            try startMetricsServer()
        } catch {
            stop()
            throw error
        }
        Log.info("node \(configuration.nodeID)\(configuration.peer.map { ", peer node \($0.nodeID) at \($0.address)" } ?? ""): "
            + "owns buckets \(ownership.withLock { $0.description }) of \(configuration.bucketCount); \(configuration.answersARP ? "answers" : "does not answer") ARP for the VIPs")
        Log.info("ready: \(live.withLock { $0.services.count }) virtual service(s), control socket \(configuration.controlSocket)")
        systemd.ready()
    }

    public func stop() {
        systemd.stopping()
        maintenanceStop.store(true, ordering: .relaxed)
        maintenanceThread.join()
        metricsServer?.stop()
        metricsServer = nil
        checker.stop()
        sync?.stop()
        sync = nil
        control?.stop()
        control = nil
        for worker in workers { worker.requestStop() }
        for worker in workers { worker.join() }
        workers = []
        // Frames go to the stack (and its guard) again.
        fastPath?.detach()
        fastPath = nil
        hostGuard?.remove()
        hostGuard = nil
        syncAdmission?.remove()
        syncAdmission = nil
        instanceLock = nil
        notifier.stop()
    }

    /// Last in `start`: a check's news may reach every part of the director (the sync thread
    /// among them) from the moment the checker's thread runs.
    private func startHealthChecks() {
        checker.start { [weak self] key, isUp, why in self?.ownHealthChanged(key, isUp: isUp, why: why) }
        refreshHealthChecks()
        let count = live.withLock { $0.healthTargets.count }
        if count > 0 { Log.info("health checks: \(count) real server(s) checked from \(back.name)\(checker.cpu.map { ", on CPU \($0)" } ?? "")") }
    }

    // MARK: - Real servers

    /// ARP for the real servers (fallbacks included) whose MAC is not configured. Unresolved ones are logged and
    /// retried every second by the maintenance thread; their flows are counted drops meanwhile.
    func resolveRealServers(onlyMissing: Bool) {
        let servers = live.withLock { LiveServices.servers(of: $0.services) }
        let configured = Set(servers.filter { $0.mac != nil }.map(\.address))
        let known = resolvedMACs.withLock { $0 }
        let wanted = Array(Set(servers.map(\.address)).subtracting(configured))
            .filter { !onlyMissing || known[$0] == nil }.sorted()
        guard !wanted.isEmpty else { return }
        var found: [IPAddress: MACAddress] = [:]
        let wantedIPv4 = wanted.compactMap(\.v4), wantedIPv6 = wanted.compactMap(\.v6)
        if !wantedIPv4.isEmpty {
            do {
                let resolver = try ARPResolver(interface: back)
                for (address, mac) in resolver.resolve(wantedIPv4) { found[.v4(address)] = mac }
            } catch {
                Log.error("ARP resolution on \(back.name): \(error)")
            }
        }
        if !wantedIPv6.isEmpty {
            do {
                let resolver = try NeighborResolver(interface: back)
                for (address, mac) in resolver.resolve(wantedIPv6) { found[.v6(address)] = mac }
            } catch {
                if !onlyMissing { Log.error("Neighbor Discovery on \(back.name): \(error)") }
            }
        }
        resolvedMACs.withLock { macs in for (address, mac) in found { macs[address] = mac } }
        for address in wanted {
            if let mac = found[address] {
                if known[address] != mac { Log.info("real server \(address) is at \(mac)") }
            } else if !onlyMissing {
                let protocolName = address.isIPv6 ? "Neighbor Discovery" : "ARP"
                Log.warning("real server \(address) did not answer \(protocolName) on \(back.name); retrying every second")
            }
        }
    }

    func buildServiceTable(generation: UInt64) -> ServiceTable {
        let macs = resolvedMACs.withLock { $0 }
        let down = health.withLock { $0.down }
        return live.withLock { $0.serviceTable(resolvedMACs: macs, generation: generation, down: down) }
    }

    /// Takes the rates' sample every second (the first at the start), re-resolves real servers
    /// (missing ones every second, all every 30 s) and publishes a new
    /// snapshot when a MAC changed, or within 20 ms when the pair's health verdict changed on a
    /// thread that must not spend the milliseconds a snapshot takes (the sync thread's turns).
    private func startMaintenance() {
        maintenanceThread.start {
            var tick = 0
            var watchdog = WorkerWatchdog()
            self.sampleRates()
            while !self.maintenanceStop.load(ordering: .relaxed) {
                usleep(20_000)
                tick += 1
                self.feedWatchdog(&watchdog)
                // Alone, the maintenance thread vouches for the XDP program; in a pair, the heartbeats do.
                // Ten seconds: longer than a round of ARP and ND for missing servers on this thread.
                if self.configuration.peer == nil { self.fastPath?.renewLease(until: director_monotonic_nanoseconds() + 10_000_000_000) }
                if self.servicesStale.exchange(false, ordering: .relaxed) { self.publishServices() }
                guard tick % 50 == 0 else { continue }
                self.sampleRates()
                let before = self.resolvedMACs.withLock { $0 }
                self.resolveRealServers(onlyMissing: tick % 1500 != 0)
                if self.resolvedMACs.withLock({ $0 }) != before { self.publishServices() }
            }
        }
    }

    /// What the watchdog's feeder remembers between two looks at the workers.
    struct WorkerWatchdog {
        var fedAt: UInt64 = 0
        var iterations: [UInt64] = []
        var withheld = false
    }

    /// WATCHDOG=1 every half of systemd's `WatchdogSec=`, only while every worker has gone round
    /// its loop since the last time (each does at least every 10 ms, busy or idle): a hung
    /// worker stops the feeding, and systemd restarts the director.
    private func feedWatchdog(_ state: inout WorkerWatchdog) {
        guard let interval = systemd.watchdogFeedNanoseconds else { return }
        let now = director_monotonic_nanoseconds()
        guard now &- state.fedAt >= interval else { return }
        let iterations = workers.map { $0.iterations.load(ordering: .relaxed) }
        let stalled = zip(iterations, state.iterations).enumerated().filter { $0.element.0 == $0.element.1 }.map(\.offset)
        if stalled.isEmpty || state.iterations.isEmpty {
            systemd.watchdog()
            if state.withheld { Log.info("watchdog: every worker makes progress again; feeding systemd's watchdog") }
            state.withheld = false
        } else if !state.withheld {
            state.withheld = true
            Log.error("watchdog: worker(s) \(stalled.map(String.init).joined(separator: ", ")) made no progress in \(interval / 1_000_000) ms; "
                + "withholding systemd's watchdog (it restarts the director)")
        }
        state.fedAt = now
        state.iterations = iterations
    }

    /// Asks the maintenance thread for a new snapshot (see `startMaintenance`).
    func publishServicesSoon() {
        servicesStale.store(true, ordering: .relaxed)
    }

    // MARK: - What the sync thread reads and moves

    var currentOwnership: BucketOwnership { ownership.withLock { $0 } }
    var currentServices: ServiceTable { snapshots!.snapshot }
    /// nil before `start` has built the first snapshot.
    var currentServicesIfStarted: ServiceTable? { snapshots?.snapshot }

    /// A new snapshot of the live services for the workers (they take it between bursts).
    /// Serialised, so that a reload and a MAC change never publish out of order.
    func publishServices() {
        publishing.withLock { _ in
            guard let exchange = snapshots else { return }
            exchange.publish(buildServiceTable(generation: exchange.generation + 1))
            // Servers, weights, health or MACs may have changed: every offloaded flow goes back
            // through its worker once, which offers it again with what is true now.
            updateFastPathAddresses()
            fastPath?.flush()
            joinSolicitedNodeGroups()
        }
    }

    /// Makes the front interface accept the solicited-node groups of the IPv6 virtual addresses
    /// (memberships on the first worker's receive socket, for as long as it lives; one a VIP
    /// no longer needs costs nothing but a few frames passed over). Called with every snapshot.
    func joinSolicitedNodeGroups() {
        guard let socket = workers.first?.frontSocket, socket >= 0 else { return }
        let groups = Set(live.withLock { $0.services.compactMap { $0.address.v6?.solicitedNodeMulticast.multicastMAC } })
        joinedGroups.withLock { joined in
            for group in groups.subtracting(joined).sorted(by: { $0.rawValue < $1.rawValue }) {
                do {
                    try PacketReceiveRing.addMembership(of: group, to: socket, on: front)
                    joined.insert(group)
                } catch {
                    Log.warning("Neighbor Solicitations for IPv6 virtual addresses may not arrive on \(front.name): \(error)")
                }
            }
        }
    }

    private let publishing = Mutex(())
    /// The multicast groups joined on the front interface (`joinSolicitedNodeGroups`).
    private let joinedGroups = Mutex<Set<MACAddress>>([])
    /// One connection listing at a time (each worker has one mailbox).
    let listingLock = Mutex(())
    /// One reload at a time (the control socket's and SIGHUP's).
    let reloadLock = Mutex(())
    var currentServicesGeneration: UInt64 { snapshots!.generation }

    /// Whether the workers answer ARP for the virtual addresses (the survivor of a pair does).
    func setAnswersARP(_ answers: Bool) {
        for worker in workers { worker.setAnswersARP(answers) }
    }

    /// Gratuitous ARP for every IPv4 virtual address and an unsolicited Neighbor Advertisement
    /// for every IPv6 one, from the virtual MAC, on the front interface, through the first
    /// worker's receive socket.
    func announceVirtualAddresses() {
        let addresses = Array(Set(live.withLock { $0.services.map(\.address) })).sorted()
        guard let socket = workers.first?.frontSocket, socket >= 0 else { return }
        let sent = GratuitousARP.announce(addresses.compactMap(\.v4), at: virtualMAC, through: socket)
            + GratuitousARP.announce(addresses.compactMap(\.v6), at: virtualMAC, through: socket)
        if sent < addresses.count { Log.warning("gratuitous ARP and unsolicited Neighbor Advertisements: \(addresses.count - sent) of \(addresses.count) announcements not sent") }
        // The NAT gateway moves with the VIPs: the real servers' ARP caches must follow it.
        if let gateway = natGateway, let backSocket = workers.first?.backSocket, backSocket >= 0,
           GratuitousARP.announce([gateway.address], at: gateway.mac, through: backSocket) == 0 {
            Log.warning("gratuitous ARP for the NAT gateway \(gateway.address) on \(back.name) not sent")
        }
        if let gateway = natGateway, let address6 = gateway.address6, let backSocket = workers.first?.backSocket, backSocket >= 0,
           GratuitousARP.announce([address6], at: gateway.mac, through: backSocket) == 0 {
            Log.warning("unsolicited Neighbor Advertisement for the NAT gateway \(address6) on \(back.name) not sent")
        }
    }

    // MARK: - Bucket ownership

    /// Makes `new` this dispatcher's share: every worker's kernel filter is replaced (atomically
    /// per socket; frames of buckets owned before and after keep flowing).
    public func setOwnership(_ new: BucketOwnership) throws {
        if failingOwnershipChanges.load(ordering: .relaxed) > 0 {
            failingOwnershipChanges.subtract(1, ordering: .relaxed)
            throw SystemCallError(call: "setsockopt", context: "attaching the ownership filter (fault injection)", errno: ENOMEM)
        }
        let old = try ownership.withLock { current in
            // The program first: it drops the frames of buckets given up before the ring sees them.
            try fastPath?.setOwnership(new)
            do {
                for worker in workers { try worker.attach(new) }
            } catch {
                // The ownership stays what it was, in the program too.
                try? fastPath?.setOwnership(current)
                throw error
            }
            defer { current = new }
            return current
        }
        let taken = new.subtracting(old), released = old.subtracting(new)
        if !taken.isEmpty { notifier.notify(["buckets", "taken", taken.description]) }
        if !released.isEmpty { notifier.notify(["buckets", "released", released.description]) }
        Log.info("now owns buckets \(new.description.isEmpty ? "none" : new.description) (\(new.ownedCount) of \(new.bucketCount))")
    }

    /// `buckets [show]`, `buckets own RANGES`, `buckets release RANGES`, `buckets set RANGES`.
    func bucketsCommand(_ words: [Substring]) -> String {
        let current = ownership.withLock { $0 }
        guard ["show", "own", "release", "set", "auto"].contains(words[0]) else {
            return "error: unknown buckets command \"\(words[0])\" (show, own, release, set, auto)\n"
        }
        if words[0] == "auto" {
            guard let sync else { return "error: no peer: buckets move only by command\n" }
            sync.setAutomaticHandover(true)
            return "automatic handovers resumed: the pair returns to its configured split\n"
        }
        if words[0] == "show", words.dropFirst() == ["json"] { return bucketsJSON() }
        guard words[0] != "show" else {
            return "node \(configuration.nodeID) owns \(current.ownedCount) of \(current.bucketCount) buckets: \(current.description.isEmpty ? "none" : current.description)\n"
        }
        guard let ranges = Configuration.parseBuckets(words[1...].joined(separator: ""), bucketCount: current.bucketCount) else {
            return "error: expected all, none or ranges like 0-511,600 below \(current.bucketCount)\n"
        }
        guard words.count >= 2 else { return "error: \(words[0]) needs bucket ranges (all, none, or like 0-511,600)\n" }
        let updated = BucketOwnership(bucketCount: current.bucketCount) { bucket in
            switch words[0] {
            case "own": current.owns(bucket) || ranges.owns(bucket)
            case "release": current.owns(bucket) && !ranges.owns(bucket)
            default: ranges.owns(bucket)
            }
        }
        // An operator's move holds until `buckets auto`: the pair must not undo it.
        sync?.setAutomaticHandover(false)
        do {
            try setOwnership(updated)
        } catch {
            return "error: \(error)\n"
        }
        return "node \(configuration.nodeID) owns \(updated.ownedCount) of \(updated.bucketCount) buckets: \(updated.description.isEmpty ? "none" : updated.description)\n"
    }

    // MARK: - Control commands

    /// Commands that change what the director does (bucket moves, fault injection), as opposed
    /// to the ones that only show it.
    static func changesTheDirector(_ words: [Substring]) -> Bool {
        switch words.first {
        case "buckets": words.count > 1 && words[1] != "show"
        case "fault", "reload", "server", "service": true
        default: false
        }
    }

    func handle(_ command: String, from caller: ControlCaller) -> String {
        let words = command.split(separator: " ")
        if Director.changesTheDirector(words), !caller.mayChange {
            Log.warning("control: refused \"\(command)\" from uid \(caller.uid) (pid \(caller.pid)): it changes the director; root or CAP_NET_ADMIN only")
            return "error: \"\(command)\" changes the director: root or CAP_NET_ADMIN only (you are uid \(caller.uid)); "
                + "stats, services, sync and buckets show are open to the \(ControlServer.operatorGroup) group\n"
        }
        if words.first == "buckets" { return bucketsCommand(Array(words.dropFirst().isEmpty ? ["show"] : words.dropFirst())) }
        if words.first == "fault" { return faultCommand(Array(words.dropFirst())) }
        if words.first == "server" || words.first == "service" { return liveChange(words) }
        if words.first == "services" { return servicesCommand(Array(words.dropFirst())) }
        if words.first == "connections" { return connectionsCommand(Array(words.dropFirst())) }
        switch command {
        case "stats":
            return metricsText()
        case "sync":
            return sync.map { syncReport($0) } ?? "no peer configured: connection sync is off\n"
        case "sync json":
            return sync.map { syncJSON($0) } ?? "{\"peer_state\":\"none\"}\n"
        case "ping":
            return "pong\n"
        case "reload":
            return reload()
        case "config dump":
            return configurationDump()
        default:
            return "unknown command \"\(command)\" (known: stats, services, connections, buckets, sync, reload, server, service, config dump, fault, ping)\n"
        }
    }

    /// Every metric, in the Prometheus text format (`director stats`, `/metrics`).
    func metricsText() -> String {
        var process = MetricFamily("director_start_time_seconds", .gauge, "When the director started, in seconds since the epoch.")
        process.add(.seconds(nanoseconds: startedAtRealtime))
        var workerCount = MetricFamily("director_workers", .gauge, "Worker threads, one per configured CPU.")
        workerCount.add(UInt64(workers.count))
        var build = MetricFamily("director_build_info", .gauge, "1, labelled with the director's version.")
        build.add(1, [("version", DirectorVersion.current)])
        let families = [build, process, workerCount] + board.metricFamilies() + fastPathMetricFamilies() + trafficMetricFamilies() + healthMetricFamilies()
            + (sync.map { syncMetricFamilies($0) } ?? [])
        return MetricsExposition.render(families, node: configuration.nodeID)
    }

    /// `fault stall-worker N MS`: worker N sleeps for MS milliseconds, as a hung worker would.
    /// `fault fail-ownership N`: the next N ownership changes fail, as a refused filter would.
    /// Only when the config allows fault injection (for testing the pair's reactions).
    func faultCommand(_ words: [Substring]) -> String {
        guard configuration.allowsFaultInjection else {
            return "error: fault injection is off (director.allow_fault_injection: true turns it on, for tests only)\n"
        }
        switch words.first {
        case "stall-worker":
            guard words.count == 3, let index = Int(words[1]), workers.indices.contains(index), let milliseconds = UInt64(words[2]),
                  milliseconds <= 600_000 else {
                return "error: fault stall-worker WORKER MILLISECONDS (worker 0–\(workers.count - 1), at most 600000 ms)\n"
            }
            workers[index].stalledUntil.store(director_monotonic_nanoseconds() / 1_000_000 + milliseconds, ordering: .relaxed)
            Log.warning("fault injection: worker \(index) stalls for \(milliseconds) ms")
            return "worker \(index) stalls for \(milliseconds) ms\n"
        case "fail-ownership":
            guard words.count == 2, let count = Int(words[1]), (0...1000).contains(count) else {
                return "error: fault fail-ownership COUNT (0–1000)\n"
            }
            failingOwnershipChanges.store(count, ordering: .relaxed)
            Log.warning("fault injection: the next \(count) ownership change(s) fail")
            return "the next \(count) ownership change(s) fail\n"
        default:
            return "error: fault stall-worker WORKER MILLISECONDS | fault fail-ownership COUNT\n"
        }
    }
}
