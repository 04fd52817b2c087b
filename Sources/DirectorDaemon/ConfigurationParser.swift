import DirectorCore
import DirectorSync
import DirectorWire
import PacketIO
import Yams
#if canImport(Glibc)
import Glibc
#endif

/// Reads the YAML config into a validated `Configuration`. Unknown fields are errors (a typo
/// must not silently fall back to a default), and every error names its field's path, e.g.
/// `services[0].real_servers[2].weight: expected a whole number from 0 to 65535, got "heavy"`.
public enum ConfigurationParser {
    public static func parse(yaml text: String) throws(ConfigurationError) -> Configuration {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else { throw ConfigurationError(field: "", problem: "the file is empty") }
            root = node
        } catch let error as ConfigurationError {
            throw error
        } catch {
            throw ConfigurationError(field: "", problem: "not valid YAML: \(error)")
        }
        let top = try Fields(root, path: "", known: ["director", "timeouts", "services"])
        let director = try Fields(try top.required("director"), path: "director", known: [
            "front_interface", "back_interface", "workers", "connection_capacity", "control_socket",
            "hide_frames_from_host", "virtual_mac", "answer_arp", "bucket_count", "node_id", "peer", "buckets",
            "receive_ring", "allow_fault_injection", "notify", "metrics_listen", "lock_memory", "nat_gateway",
            "fast_path", "fast_path_flows",
        ])
        let front = try director.string("front_interface", required: true)!
        try checkInterfaceName(front, field: "director.front_interface")
        let back = try director.string("back_interface") ?? front
        try checkInterfaceName(back, field: "director.back_interface")
        let cpus = try director.integerList("workers", range: 0...4095) ?? [0]
        guard !cpus.isEmpty else { throw ConfigurationError(field: "director.workers", problem: "needs at least one CPU") }
        guard Set(cpus).count == cpus.count else { throw ConfigurationError(field: "director.workers", problem: "lists a CPU twice") }
        let capacity = try director.integer("connection_capacity", range: 1...(1 << 31)) ?? 1_048_576
        guard capacity >= cpus.count else {
            throw ConfigurationError(field: "director.connection_capacity", problem: "must be at least one connection per worker")
        }
        let buckets = try director.integer("bucket_count", range: 1...65536) ?? 1024
        guard buckets & (buckets - 1) == 0 else {
            throw ConfigurationError(field: "director.bucket_count", problem: "must be a power of two, got \(buckets)")
        }
        let nodeID = UInt8(try director.integer("node_id", range: 1...255) ?? 1)
        var peer: Configuration.Peer?
        if let node = director.optional("peer") {
            peer = try parsePeer(node, nodeID: nodeID)
        }
        // Default: alone, every bucket; in a pair, an even split, the lower id taking the lower half.
        var ownership = BucketOwnership.all(UInt32(buckets))
        if let peer { ownership = .evenShare(UInt32(buckets), node: nodeID < peer.nodeID ? 0 : 1, of: 2) }
        if let text = try director.string("buckets") {
            guard let parsed = Configuration.parseBuckets(text, bucketCount: UInt32(buckets)) else {
                throw ConfigurationError(field: "director.buckets", problem: "expected all, none or ranges like 0-511,600 below bucket_count (\(buckets)), got \"\(text)\"")
            }
            ownership = parsed
        }
        let receiveRing = try director.optional("receive_ring").map { (node) throws(ConfigurationError) in try parseReceiveRing(node) } ?? .standard
        var virtualMAC: MACAddress?
        if let text = try director.string("virtual_mac") {
            guard let mac = MACAddress(text), !mac.isGroup, mac != .zero else {
                throw ConfigurationError(field: "director.virtual_mac", problem: "expected a unicast MAC like 02:00:00:00:00:01, got \"\(text)\"")
            }
            virtualMAC = mac
        }

        var timeouts = ConnectionTimeouts()
        if let node = top.optional("timeouts") {
            let fields = try Fields(node, path: "timeouts", known: Array(timeoutFields.keys))
            for (name, keyPath) in timeoutFields {
                if let seconds = try fields.seconds(name) { timeouts[keyPath: keyPath] = seconds }
            }
        }

        let serviceNodes = try top.list("services", required: true)!
        guard !serviceNodes.isEmpty else { throw ConfigurationError(field: "services", problem: "needs at least one virtual service") }
        var services: [Configuration.ServiceConfig] = []
        var seen = Set<String>()
        for (index, node) in serviceNodes.enumerated() {
            let service = try parseService(node, path: "services[\(index)]")
            let identity = "\(service.transport) " + service.address.description(port: service.port)
            guard seen.insert(identity).inserted else {
                throw ConfigurationError(field: "services[\(index)]", problem: "\(identity) is defined twice")
            }
            services.append(service)
        }
        var metricsListen: Configuration.ListenAddress?
        if let text = try director.string("metrics_listen") {
            guard let listen = Configuration.ListenAddress(text) else {
                throw ConfigurationError(field: "director.metrics_listen", problem: "expected an IPv4 address and port like 127.0.0.1:9117, got \"\(text)\"")
            }
            metricsListen = listen
        }
        var configuration = Configuration(
            frontInterface: front, backInterface: back, workerCPUs: cpus, connectionCapacity: capacity,
            controlSocket: try director.string("control_socket") ?? Configuration.defaultControlSocket,
            hidesFramesFromHost: try director.bool("hide_frames_from_host") ?? true,
            // One ARP answer per pair while both live: the lower node id (the survivor takes it over).
            virtualMAC: virtualMAC, answersARP: try director.bool("answer_arp") ?? (peer.map { nodeID < $0.nodeID } ?? true),
            bucketCount: UInt32(buckets), nodeID: nodeID, peer: peer, initialOwnership: ownership,
            receiveRing: receiveRing, allowsFaultInjection: try director.bool("allow_fault_injection") ?? false,
            timeouts: timeouts, services: services,
            notifyCommand: try director.optional("notify").map { (node) throws(ConfigurationError) in try parseCommand(node, path: "director.notify") })
        configuration.metricsListen = metricsListen
        configuration.locksMemory = try director.bool("lock_memory") ?? true
        if let text = try director.string("fast_path") {
            guard let mode = Configuration.FastPathMode(rawValue: text) else {
                throw ConfigurationError(field: "director.fast_path", problem: "expected xdp, xdp-driver, xdp-generic or off, got \"\(text)\"")
            }
            configuration.fastPath = mode
        }
        configuration.fastPathFlows = try director.integer("fast_path_flows", range: 1024...(1 << 24)) ?? configuration.fastPathFlows
        if let node = director.optional("nat_gateway") {
            configuration.natGateway = try parseNATGateway(node)
        }
        try checkTranslation(configuration)
        return configuration
    }

    /// `director.nat_gateway`: the address NAT real servers route through, and its MAC.
    static func parseNATGateway(_ node: Node) throws(ConfigurationError) -> Configuration.NATGatewayConfig {
        let path = "director.nat_gateway"
        let fields = try Fields(node, path: path, known: ["address", "address6", "mac"])
        var mac: MACAddress?
        if let text = try fields.string("mac") {
            guard let value = MACAddress(text), !value.isGroup, value != .zero else {
                throw ConfigurationError(field: path + ".mac", problem: "expected a unicast MAC like 02:00:00:00:02:fe, got \"\(text)\"")
            }
            mac = value
        }
        var address6: IPv6Address?
        if let address = try fields.anyAddress("address6") {
            guard let value = address.v6, address.isPlausibleHostAddress else {
                throw ConfigurationError(field: path + ".address6", problem: "expected a global IPv6 address like 2001:2:0:2::fe, got \"\(address)\"")
            }
            address6 = value
        }
        return Configuration.NATGatewayConfig(address: try fields.address("address", required: true)!, address6: address6, mac: mac)
    }

    /// What NAT needs beyond each service's own fields: a gateway for the replies, a back
    /// interface of its own for them, and real-server endpoints that name one NAT service each
    /// (a reply carries no VIP: its source endpoint is what finds its service).
    static func checkTranslation(_ configuration: Configuration) throws(ConfigurationError) {
        let translating = configuration.services.enumerated().filter { $0.element.forwarding == .nat }
        guard let first = translating.first else { return }
        guard let gateway = configuration.natGateway else {
            throw ConfigurationError(field: "director.nat_gateway", problem: "is required by services[\(first.offset)] (forwarding: nat): the address the real servers use as their default gateway, which the director answers for")
        }
        guard configuration.backInterface != configuration.frontInterface else {
            throw ConfigurationError(field: "director.back_interface", problem: "NAT (services[\(first.offset)]) needs a back interface of its own, apart from front_interface (\(configuration.frontInterface))")
        }
        if let service = configuration.services.firstIndex(where: { $0.address == gateway.address }) {
            throw ConfigurationError(field: "director.nat_gateway.address", problem: "\(gateway.address) is the virtual address of services[\(service)]")
        }
        if let ipv6 = translating.first(where: { $0.element.address.isIPv6 }), gateway.address6 == nil {
            throw ConfigurationError(field: "director.nat_gateway.address6", problem: "is required by services[\(ipv6.offset)] (IPv6, forwarding: nat): the address the IPv6 real servers use as their default gateway")
        }
        if let address6 = gateway.address6, let service = configuration.services.firstIndex(where: { $0.address == address6 }) {
            throw ConfigurationError(field: "director.nat_gateway.address6", problem: "\(address6) is the virtual address of services[\(service)]")
        }
        var owners: [String: Int] = [:]
        for (index, service) in translating {
            for server in service.realServers + [service.fallback].compactMap({ $0 }) {
                let endpoint = "\(service.transport) " + server.address.description(port: server.port)
                if let other = owners[endpoint], other != index {
                    throw ConfigurationError(field: "services[\(index)].real_servers", problem: "\(endpoint) is also a real server of services[\(other)]; with NAT a server's address and port serve one service (its replies name no VIP): give it another port here")
                }
                owners[endpoint] = index
            }
        }
    }

    /// `director.receive_ring`: the format, then sizes that default to the format's own.
    static func parseReceiveRing(_ node: Node) throws(ConfigurationError) -> ReceiveRingGeometry {
        let path = "director.receive_ring"
        let fields = try Fields(node, path: path, known: ["format", "block_size", "block_count", "frame_size", "retire_timeout_ms"])
        var geometry = ReceiveRingGeometry.standard
        if let name = try fields.string("format") {
            guard let format = ReceiveRingGeometry.Format(rawValue: name) else {
                throw ConfigurationError(field: path + ".format", problem: "expected tpacket_v3 (blocks, the default) or tpacket_v2 (frame by frame, lowest delay), got \"\(name)\"")
            }
            if format == .tpacketV2 { geometry = .lowLatency }
        }
        if let value = try fields.integer("block_size", range: 4096...(1 << 26)) { geometry.blockSize = UInt32(value) }
        if let value = try fields.integer("block_count", range: 2...(1 << 20)) { geometry.blockCount = UInt32(value) }
        if let value = try fields.integer("frame_size", range: 16...(1 << 16)) { geometry.frameSize = UInt32(value) }
        if let value = try fields.integer("retire_timeout_ms", range: 1...1000) { geometry.retireTimeoutMilliseconds = UInt32(value) }
        if let problem = geometry.problem { throw ConfigurationError(field: path, problem: problem) }
        return geometry
    }

    /// Milliseconds as the file writes seconds (what `Fields.seconds` reads back).
    static func secondsText(_ milliseconds: UInt64) -> String {
        milliseconds % 1000 == 0 ? String(milliseconds / 1000) : String(Double(milliseconds) / 1000)
    }

    nonisolated(unsafe) static let timeoutFields: [String: WritableKeyPath<ConnectionTimeouts, UInt64>] = [
        "tcp_established": \.established, "tcp_syn_sent": \.synSent, "tcp_syn_recv": \.synReceived,
        "tcp_fin_wait": \.finWait, "tcp_time_wait": \.timeWait, "tcp_close": \.close, "tcp_close_wait": \.closeWait,
        "tcp_last_ack": \.lastAck, "tcp_listen": \.listen, "tcp_synack": \.synAck, "udp": \.udp,
    ]

    static func parsePeer(_ node: Node, nodeID: UInt8) throws(ConfigurationError) -> Configuration.Peer {
        let path = "director.peer"
        let fields = try Fields(node, path: path, known: [
            "node_id", "address", "local_address", "sync_port", "heartbeat_port", "key", "key_file", "heartbeat_interval_ms",
            "dead_after_missed", "sync_realtime_priority", "sync_cpu", "worker_stall_ms",
        ])
        let peerID = UInt8(try fields.integer("node_id", range: 1...255, required: true)!)
        guard peerID != nodeID else {
            throw ConfigurationError(field: "\(path).node_id", problem: "must differ from director.node_id (\(nodeID))")
        }
        let address = try fields.address("address", required: true)!
        let local = try fields.address("local_address", required: true)!
        guard local != address else {
            throw ConfigurationError(field: "\(path).local_address", problem: "must differ from the peer's address (\(address))")
        }
        let keyText: String
        switch (try fields.string("key"), try fields.string("key_file")) {
        case (let text?, nil):
            keyText = text
        case (nil, let file?):
            guard let contents = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ConfigurationError(field: "\(path).key_file", problem: "cannot read \"\(file)\"")
            }
            if let problem = SecretFile.problem(file) {
                throw ConfigurationError(field: "\(path).key_file", problem: problem)
            }
            keyText = contents
        case (_?, _?):
            throw ConfigurationError(field: "\(path).key", problem: "give key or key_file, not both")
        case (nil, nil):
            throw ConfigurationError(field: "\(path).key", problem: "is required: the pair's shared sync key (key, or key_file), 32 or more hex digits")
        }
        guard let key = Configuration.parseKey(keyText) else {
            throw ConfigurationError(field: "\(path).key", problem: "expected 32 or more hexadecimal digits (16 bytes or more), e.g. from `openssl rand -hex 32`")
        }
        let syncPort = UInt16(try fields.integer("sync_port", range: 1...65535) ?? Int(Configuration.Peer.defaultSyncPort))
        let heartbeatPort = try fields.integer("heartbeat_port", range: 1...65535).map(UInt16.init)
        guard heartbeatPort != syncPort else {
            throw ConfigurationError(field: "\(path).heartbeat_port", problem: "must differ from sync_port (\(syncPort)): heartbeats have a socket of their own")
        }
        let interval = try fields.integer("heartbeat_interval_ms", range: 1...10_000) ?? 10
        let stall = try fields.integer("worker_stall_ms", range: 10...600_000) ?? 1000
        return Configuration.Peer(
            nodeID: peerID, address: address, localAddress: local, syncPort: syncPort, heartbeatPort: heartbeatPort,
            key: key, heartbeatIntervalMilliseconds: interval,
            deadAfterMissed: try fields.integer("dead_after_missed", range: 2...100) ?? SyncSettings.defaultDeadAfterMissed,
            syncRealtimePriority: try fields.integer("sync_realtime_priority", range: 0...99) ?? 10,
            syncCPU: try fields.integer("sync_cpu", range: 0...4095), workerStallMilliseconds: stall)
    }

    static func parseService(_ node: Node, path: String) throws(ConfigurationError) -> Configuration.ServiceConfig {
        let fields = try Fields(node, path: path, known: [
            "address", "port", "protocol", "scheduler", "forwarding", "maglev_table_size", "real_servers",
            "health_check", "on_server_down", "fallback",
        ])
        let address = try fields.anyAddress("address", required: true)!
        guard address.isPlausibleHostAddress else {
            throw ConfigurationError(field: path + ".address", problem: "\(address) cannot be a virtual address (unspecified, loopback, multicast, link-local or IPv4-mapped)")
        }
        let port = UInt16(try fields.integer("port", range: 1...65535, required: true)!)
        let protocolName = try fields.string("protocol") ?? "tcp"
        guard let transport = TransportProtocol.allCases.first(where: { $0.description == protocolName }) else {
            throw ConfigurationError(field: path + ".protocol", problem: "expected tcp or udp, got \"\(protocolName)\"")
        }
        let schedulerName = try fields.string("scheduler") ?? SchedulerKind.maglev.rawValue
        guard let scheduler = SchedulerKind(rawValue: schedulerName) else {
            throw ConfigurationError(field: path + ".scheduler", problem: "expected one of \(SchedulerKind.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(schedulerName)\"")
        }
        let forwardingName = try fields.string("forwarding") ?? "dr"
        guard let forwarding = ForwardingMethod(rawValue: forwardingName) else {
            throw ConfigurationError(field: path + ".forwarding", problem: "expected dr (direct routing) or nat (address and port translation), got \"\(forwardingName)\"")
        }
        let tableSize = try fields.integer("maglev_table_size", range: 3...1_000_003) ?? MaglevScheduler.defaultTableSize
        guard isPrime(tableSize) else {
            throw ConfigurationError(field: path + ".maglev_table_size", problem: "must be a prime (Maglev needs it for full permutations), got \(tableSize)")
        }
        let check = try fields.optional("health_check").flatMap { (node) throws(ConfigurationError) in
            try parseHealthCheck(node, path: path + ".health_check", base: nil)
        }
        let policyName = try fields.string("on_server_down") ?? ServerFailurePolicy.keep.rawValue
        guard let policy = ServerFailurePolicy(rawValue: policyName) else {
            throw ConfigurationError(field: path + ".on_server_down", problem: "expected keep (its connections go on) or reset (their clients get a TCP reset), got \"\(policyName)\"")
        }
        let fallback = try fields.optional("fallback").map { (node) throws(ConfigurationError) in
            try parseServer(node, path: path + ".fallback", servicePort: port, forwarding: forwarding, check: nil, allowsCheck: false)
        }
        if let fallback, fallback.address.isIPv6 != address.isIPv6 {
            throw ConfigurationError(field: path + ".fallback.address", problem: "\(fallback.address) is not of the service's family (\(address)): a service is IPv4 or IPv6 throughout")
        }
        var servers: [Configuration.RealServerConfig] = []
        for (index, serverNode) in (try fields.list("real_servers", required: true)!).enumerated() {
            let serverPath = "\(path).real_servers[\(index)]"
            let entry = try parseServer(serverNode, path: serverPath, servicePort: port, forwarding: forwarding, check: check, allowsCheck: true)
            guard entry.address.isIPv6 == address.isIPv6 else {
                throw ConfigurationError(field: serverPath + ".address", problem: "\(entry.address) is not of the service's family (\(address)): a service is IPv4 or IPv6 throughout")
            }
            guard !servers.contains(where: { $0.address == entry.address && $0.port == entry.port }) else {
                throw ConfigurationError(field: serverPath, problem: "\(entry.address.description(port: entry.port)) is listed twice in this service")
            }
            servers.append(entry)
        }
        guard servers.count < Int(MaglevScheduler.unassigned) else {
            throw ConfigurationError(field: path + ".real_servers", problem: "at most \(Int(MaglevScheduler.unassigned) - 1) real servers per service")
        }
        if let fallback, servers.contains(where: { $0.address == fallback.address && $0.port == fallback.port }) {
            throw ConfigurationError(field: path + ".fallback", problem: "\(fallback.address.description(port: fallback.port)) is one of the service's real servers")
        }
        return Configuration.ServiceConfig(address: address, port: port, transport: transport, scheduler: scheduler,
                                           forwarding: forwarding, maglevTableSize: tableSize, realServers: servers,
                                           healthCheck: check, onServerDown: policy, fallback: fallback)
    }

    /// A real server (or a service's fallback), with the service's check and its own overrides.
    static func parseServer(_ node: Node, path: String, servicePort port: UInt16, forwarding: ForwardingMethod, check: HealthCheck?,
                            allowsCheck: Bool) throws(ConfigurationError) -> Configuration.RealServerConfig {
        let server = try Fields(node, path: path, known: ["address", "port", "mac"] + (allowsCheck ? ["weight", "health_check"] : []))
        let serverPort = UInt16(try server.integer("port", range: 1...65535) ?? Int(port))
        guard forwarding != .directRouting || serverPort == port else {
            throw ConfigurationError(field: path + ".port", problem: "direct routing cannot change the port: must be \(port) like the service, got \(serverPort)")
        }
        var mac: MACAddress?
        if let text = try server.string("mac") {
            guard let value = MACAddress(text), !value.isGroup, value != .zero else {
                throw ConfigurationError(field: path + ".mac", problem: "expected a unicast MAC like 02:00:00:00:00:01, got \"\(text)\"")
            }
            mac = value
        }
        var ownCheck = check
        if let node = server.optional("health_check") {
            ownCheck = try parseHealthCheck(node, path: path + ".health_check", base: check)
        }
        let address = try server.anyAddress("address", required: true)!
        guard address.isPlausibleHostAddress else {
            throw ConfigurationError(field: path + ".address", problem: "\(address) cannot be a real server's address (unspecified, loopback, multicast, link-local or IPv4-mapped)")
        }
        return Configuration.RealServerConfig(
            address: address, port: serverPort,
            weight: UInt32(try server.integer("weight", range: 0...65535) ?? 1), mac: mac, healthCheck: ownCheck)
    }

    /// A `health_check:` mapping over `base` (the service's, for a server's overrides); `none`
    /// turns checking off.
    static func parseHealthCheck(_ node: Node, path: String, base: HealthCheck?) throws(ConfigurationError) -> HealthCheck? {
        if let text = node.scalar?.string {
            guard ["none", "off"].contains(text) else {
                throw ConfigurationError(field: path, problem: "expected a mapping (type, interval, timeout, rise, fall, …) or none, got \"\(text)\"")
            }
            return nil
        }
        let fields = try Fields(node, path: path, known: ["type", "port", "interval", "timeout", "rise", "fall", "path", "status", "body", "command"])
        let typeName = try fields.string("type", required: base == nil) ?? base!.probe.name
        var check = base ?? HealthCheck(probe: .tcp)
        // A type of its own starts that type afresh (https is http's fields over TLS).
        func family(_ name: String) -> String { name == "https" ? "http" : name }
        if family(check.probe.name) != family(typeName) { check.probe = .tcp }
        func absent(_ names: [String]) throws(ConfigurationError) {
            for name in names where fields.optional(name) != nil {
                throw ConfigurationError(field: Fields.join(path, name), problem: "is not a field of a \(typeName) check")
            }
        }
        switch typeName {
        case "tcp":
            try absent(["path", "status", "body", "command"])
            check.probe = .tcp
        case "http", "https":
            try absent(["command"])
            var (requestPath, status, body) = ("/", 200, String?.none)
            if case .http(let basePath, let baseStatus, let baseBody, _) = check.probe { (requestPath, status, body) = (basePath, baseStatus, baseBody) }
            if let text = try fields.string("path") {
                // The path goes into the request line as it is: nothing that could end it.
                guard text.hasPrefix("/"), text.utf8.count <= 1024, !text.contains(where: { $0.isWhitespace || $0.isNewline || $0.asciiValue.map { $0 < 0x20 || $0 == 0x7F } ?? true }) else {
                    throw ConfigurationError(field: Fields.join(path, "path"), problem: "expected a URL path like /health (from /, printable ASCII, no spaces, at most 1024 bytes), got \"\(text)\"")
                }
                requestPath = text
            }
            if let value = try fields.integer("status", range: 100...599) { status = value }
            if let text = try fields.string("body") {
                guard !text.isEmpty, text.utf8.count <= HealthProbe.responseLimit / 2 else {
                    throw ConfigurationError(field: Fields.join(path, "body"), problem: "expected text to find in the answer's body (1 to \(HealthProbe.responseLimit / 2) bytes)")
                }
                body = text
            }
            check.probe = .http(path: requestPath, status: status, bodyContains: body, usesTLS: typeName == "https")
        case "command":
            try absent(["path", "status", "body", "port"])
            if let node = fields.optional("command") {
                check.probe = .command(try parseCommand(node, path: Fields.join(path, "command")))
            } else if case .command = check.probe {
            } else {
                throw ConfigurationError(field: Fields.join(path, "command"), problem: "is required for a command check: the program and its arguments")
            }
        default:
            throw ConfigurationError(field: Fields.join(path, "type"), problem: "expected tcp, http, https or command, got \"\(typeName)\"")
        }
        if let value = try fields.integer("port", range: 1...65535) { check.port = UInt16(value) }
        if let value = try fields.seconds("interval") { check.intervalMilliseconds = value }
        if let value = try fields.seconds("timeout") { check.timeoutMilliseconds = value }
        guard check.intervalMilliseconds >= 10, check.intervalMilliseconds <= 3_600_000 else {
            throw ConfigurationError(field: Fields.join(path, "interval"), problem: "expected seconds from 0.01 to 3600, got \(Double(check.intervalMilliseconds) / 1000)")
        }
        guard check.timeoutMilliseconds >= 10, check.timeoutMilliseconds <= check.intervalMilliseconds else {
            throw ConfigurationError(field: Fields.join(path, "timeout"), problem: "expected seconds from 0.01 to the interval (\(Double(check.intervalMilliseconds) / 1000)), got \(Double(check.timeoutMilliseconds) / 1000)")
        }
        if let value = try fields.integer("rise", range: 1...100) { check.rise = value }
        if let value = try fields.integer("fall", range: 1...100) { check.fall = value }
        return check
    }

    /// A program to run and its arguments: a list (or one path), the program an absolute path
    /// to an executable file.
    static func parseCommand(_ node: Node, path: String) throws(ConfigurationError) -> [String] {
        var words: [String]
        switch node {
        case .scalar(let scalar): words = [scalar.string]
        case .sequence(let sequence):
            words = []
            for (index, item) in sequence.enumerated() {
                guard let text = item.scalar?.string else { throw ConfigurationError(field: "\(path)[\(index)]", problem: "expected text") }
                words.append(text)
            }
        default: throw ConfigurationError(field: path, problem: "expected a program and its arguments, as a list")
        }
        guard let program = words.first, program.hasPrefix("/") else {
            throw ConfigurationError(field: path, problem: "expected an absolute path to a program first, got \"\(words.first ?? "")\"")
        }
        guard access(program, X_OK) == 0 else {
            throw ConfigurationError(field: path, problem: "\(program) is not an executable file here")
        }
        return words
    }

    static func checkInterfaceName(_ name: String, field: String) throws(ConfigurationError) {
        guard !name.isEmpty, name.utf8.count < 16, !name.contains("/"), !name.contains(where: \.isWhitespace) else {
            throw ConfigurationError(field: field, problem: "\"\(name)\" is not a valid interface name (1–15 characters, no '/' or spaces)")
        }
    }

    static func isPrime(_ n: Int) -> Bool {
        guard n >= 2 else { return false }
        var divisor = 2
        while divisor * divisor <= n {
            if n % divisor == 0 { return false }
            divisor += 1
        }
        return true
    }
}

/// A YAML mapping with the path that leads to it, and typed, checked access to its fields.
struct Fields {
    let path: String
    let mapping: [String: Node]

    init(_ node: Node, path: String, known: [String]) throws(ConfigurationError) {
        self.path = path
        guard case .mapping(let mapping) = node else {
            throw ConfigurationError(field: path.isEmpty ? "(top level)" : path, problem: "expected a mapping of fields")
        }
        var fields: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard let key = keyNode.scalar?.string else { throw ConfigurationError(field: path, problem: "a field name is not text") }
            guard known.contains(key) else {
                throw ConfigurationError(field: Fields.join(path, key), problem: "unknown field (known here: \(known.sorted().joined(separator: ", ")))")
            }
            guard fields[key] == nil else { throw ConfigurationError(field: Fields.join(path, key), problem: "given twice") }
            fields[key] = value
        }
        self.mapping = fields
    }

    static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func optional(_ key: String) -> Node? {
        guard let node = mapping[key] else { return nil }
        if case .scalar(let scalar) = node, scalar.style == .plain, ["", "~", "null", "Null", "NULL"].contains(scalar.string) { return nil }
        return node
    }

    func required(_ key: String) throws(ConfigurationError) -> Node {
        guard let node = optional(key) else { throw ConfigurationError(field: Fields.join(path, key), problem: "is required") }
        return node
    }

    private func scalarText(_ key: String, required: Bool) throws(ConfigurationError) -> String? {
        guard let node = required ? try self.required(key) : optional(key) else { return nil }
        guard case .scalar(let scalar) = node else {
            throw ConfigurationError(field: Fields.join(path, key), problem: "expected a single value, not a list or mapping")
        }
        return scalar.string
    }

    func string(_ key: String, required: Bool = false) throws(ConfigurationError) -> String? {
        try scalarText(key, required: required)
    }

    func integer(_ key: String, range: ClosedRange<Int>, required: Bool = false) throws(ConfigurationError) -> Int? {
        guard let text = try scalarText(key, required: required) else { return nil }
        guard let value = Int(text.replacingOccurrences(of: "_", with: "")), range.contains(value) else {
            throw ConfigurationError(field: Fields.join(path, key), problem: "expected a whole number from \(range.lowerBound) to \(range.upperBound), got \"\(text)\"")
        }
        return value
    }

    func bool(_ key: String) throws(ConfigurationError) -> Bool? {
        guard let text = try scalarText(key, required: false) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw ConfigurationError(field: Fields.join(path, key), problem: "expected true or false, got \"\(text)\"")
        }
    }

    /// Seconds (whole or fractional) → milliseconds.
    func seconds(_ key: String) throws(ConfigurationError) -> UInt64? {
        guard let text = try scalarText(key, required: false) else { return nil }
        guard let value = Double(text), value > 0, value <= 86_400 * 30 else {
            throw ConfigurationError(field: Fields.join(path, key), problem: "expected seconds greater than 0 and at most 30 days, got \"\(text)\"")
        }
        return UInt64((value * 1000).rounded())
    }

    func address(_ key: String, required: Bool = false) throws(ConfigurationError) -> IPv4Address? {
        guard let text = try scalarText(key, required: required) else { return nil }
        guard let address = IPv4Address(text) else {
            throw ConfigurationError(field: Fields.join(path, key), problem: "expected an IPv4 address like 198.18.0.100, got \"\(text)\"")
        }
        return address
    }

    /// An address of either family, for services and real servers.
    func anyAddress(_ key: String, required: Bool = false) throws(ConfigurationError) -> IPAddress? {
        guard let text = try scalarText(key, required: required) else { return nil }
        guard let address = IPAddress(text) else {
            throw ConfigurationError(field: Fields.join(path, key), problem: "expected an IPv4 address like 198.18.0.100 or an IPv6 address like 2001:2::100, got \"\(text)\"")
        }
        return address
    }

    func list(_ key: String, required: Bool = false) throws(ConfigurationError) -> [Node]? {
        guard let node = required ? try self.required(key) : optional(key) else { return nil }
        guard case .sequence(let sequence) = node else { throw ConfigurationError(field: Fields.join(path, key), problem: "expected a list") }
        return Array(sequence)
    }

    func integerList(_ key: String, range: ClosedRange<Int>) throws(ConfigurationError) -> [Int]? {
        guard let nodes = try list(key) else { return nil }
        var values: [Int] = []
        for (index, node) in nodes.enumerated() {
            guard let text = node.scalar?.string, let value = Int(text), range.contains(value) else {
                throw ConfigurationError(field: "\(Fields.join(path, key))[\(index)]", problem: "expected a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            values.append(value)
        }
        return values
    }
}
