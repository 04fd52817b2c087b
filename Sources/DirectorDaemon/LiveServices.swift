import DirectorCore
import DirectorSync
import DirectorWire

/// The services and timeouts a director applies now, and a stable id for every real server it
/// has had. Connection entries, load counts and the workers' destination table name real servers
/// by id, so an id is never given to another server while the director runs: a server removed
/// by a reload keeps its id (its connections go on to it: `retired`), and one added again gets
/// its old id back.
struct LiveServices: Sendable {
    private(set) var services: [Configuration.ServiceConfig]
    private(set) var timeouts: ConnectionTimeouts
    private var ids: [ServerKey: UInt16] = [:]
    /// A stable id for every service the director has had, under which its traffic is counted.
    private var serviceIDs: [ServiceKey: UInt16] = [:]
    /// Every real server the director has had, by id, as last configured.
    private var known: [UInt16: Configuration.RealServerConfig] = [:]

    struct ServerKey: Hashable, Sendable {
        var address: IPAddress
        var port: UInt16
    }

    struct ServiceKey: Hashable, Sendable {
        var address: IPAddress
        var port: UInt16
        var transport: TransportProtocol
        init(_ service: Configuration.ServiceConfig) {
            address = service.address
            port = service.port
            transport = service.transport
        }
    }

    /// Ids run from 1; 0 is never a server's.
    static let largestID = Int(UInt16.max)

    init(services: [Configuration.ServiceConfig], timeouts: ConnectionTimeouts) {
        self.services = services
        self.timeouts = timeouts
        for server in LiveServices.servers(of: services) { _ = id(for: server) }
        for service in services { _ = serviceID(for: service) }
    }

    /// Every server the services name: their real servers and their fallbacks.
    static func servers(of services: [Configuration.ServiceConfig]) -> [Configuration.RealServerConfig] {
        services.flatMap(\.realServers) + services.compactMap(\.fallback)
    }

    /// Makes `services` and `timeouts` the live ones; what changed, for the log and the caller.
    /// Throws (changing nothing) if the new servers would need more ids than there are.
    mutating func replace(services new: [Configuration.ServiceConfig], timeouts newTimeouts: ConnectionTimeouts) throws(ConfigurationError) -> ReloadSummary {
        let unseen = Set(LiveServices.servers(of: new).map { ServerKey(address: $0.address, port: $0.port) }).subtracting(ids.keys)
        guard ids.count + unseen.count <= LiveServices.largestID else {
            throw ConfigurationError(field: "services", problem: "more distinct real servers over this director's life than it can number (\(LiveServices.largestID)); restart it")
        }
        let unseenServices = Set(new.map(ServiceKey.init)).subtracting(serviceIDs.keys)
        guard serviceIDs.count + unseenServices.count <= LiveServices.largestID else {
            throw ConfigurationError(field: "services", problem: "more distinct services over this director's life than it can number (\(LiveServices.largestID)); restart it")
        }
        let summary = ReloadSummary(old: services, new: new, timeoutsChanged: newTimeouts != timeouts)
        services = new
        timeouts = newTimeouts
        for server in LiveServices.servers(of: new) { _ = id(for: server) }
        for service in new { _ = serviceID(for: service) }
        return summary
    }

    private mutating func id(for server: Configuration.RealServerConfig) -> UInt16 {
        let key = ServerKey(address: server.address, port: server.port)
        let id = ids[key] ?? UInt16(ids.count + 1)
        ids[key] = id
        known[id] = server
        return id
    }

    private mutating func serviceID(for service: Configuration.ServiceConfig) -> UInt16 {
        let key = ServiceKey(service)
        let id = serviceIDs[key] ?? UInt16(serviceIDs.count + 1)
        serviceIDs[key] = id
        return id
    }

    /// The id under which `service`'s traffic is counted (0 for one not live).
    func statisticsID(of service: Configuration.ServiceConfig) -> UInt16 {
        serviceIDs[ServiceKey(service)] ?? 0
    }

    /// How many live real servers (fallbacks included) and services have an id of `limit` or
    /// more: ids are never reused while the director runs, so a life of reloads can push them
    /// past what a fixed-size counter (the XDP program's) numbers.
    func liveIDs(atOrAbove limit: Int) -> (servers: Int, services: Int) {
        let servers = Set(LiveServices.servers(of: services).map { ServerKey(address: $0.address, port: $0.port) })
        return (servers.filter { Int(ids[$0] ?? 0) >= limit }.count,
                services.filter { Int(statisticsID(of: $0)) >= limit }.count)
    }

    /// The id of the real server at `address`:`port` (0 for one the director never had).
    func id(of address: IPAddress, port: UInt16) -> UInt16 {
        ids[ServerKey(address: address, port: port)] ?? 0
    }

    /// The workers' snapshot: every service with its pool, and the retired servers. A server
    /// `down` (health checks) takes no new connection: weight 0, as a drained one; its
    /// connections are reset when its service says so. A service none of whose servers can take
    /// a connection sends new ones to its fallback, when it has one (the last of its pool).
    func serviceTable(resolvedMACs: [IPAddress: MACAddress], generation: UInt64, down: Set<HealthKey> = []) -> ServiceTable {
        func realServer(_ server: Configuration.RealServerConfig, weight: UInt32) -> RealServer {
            RealServer(id: ids[ServerKey(address: server.address, port: server.port)]!, address: server.address, port: server.port,
                       weight: weight, mac: server.mac ?? resolvedMACs[server.address] ?? .zero)
        }
        var resetting = Set<UInt16>()
        let table = services.map { service in
            var pool = service.realServers.map { server in
                let isDown = down.contains(HealthKey(service, server))
                let member = realServer(server, weight: isDown ? 0 : server.weight)
                if isDown, service.onServerDown == .reset { resetting.insert(member.id) }
                return member
            }
            // The fallback is always in the pool (its connections keep their destination when a
            // server comes back), with a weight only while no other server can take a connection.
            if let fallback = service.fallback {
                pool.append(realServer(fallback, weight: pool.contains { $0.weight > 0 } ? 0 : 1))
            }
            return VirtualService(address: service.address, port: service.port, transport: service.transport, forwarding: service.forwarding,
                                  pool: pool, scheduler: service.scheduler, maglevTableSize: service.maglevTableSize,
                                  statisticsID: statisticsID(of: service))
        }
        let current = Set(LiveServices.servers(of: services).map { ServerKey(address: $0.address, port: $0.port) })
        let retired = known.sorted { $0.key < $1.key }.map(\.value)
            .filter { !current.contains(ServerKey(address: $0.address, port: $0.port)) }
            .map { realServer($0, weight: 0) }
        return ServiceTable(services: table, retired: retired, timeouts: timeouts, generation: generation, resetting: resetting)
    }

    /// Every (service, real server) pair.
    var servedKeys: Set<HealthKey> {
        Set(services.flatMap { service in service.realServers.map { HealthKey(service, $0) } })
    }

    /// Every real server with a health check, with it.
    var healthTargets: [HealthChecker.Target] {
        services.flatMap { service in
            service.realServers.compactMap { server in server.healthCheck.map { HealthChecker.Target(key: HealthKey(service, server), check: $0) } }
        }
    }

    /// The `timeouts:` and `services:` sections of a config file that would run as this does now.
    var yaml: String {
        let seconds = ConfigurationParser.secondsText
        var lines = ["timeouts:"]
        for (name, path) in ConfigurationParser.timeoutFields.sorted(by: { $0.key < $1.key }) {
            lines.append("  \(name): \(seconds(timeouts[keyPath: path]))")
        }
        lines.append("services:")
        for service in services {
            lines += ["  - address: \(yamlText(service.address))", "    port: \(service.port)", "    protocol: \(service.transport)",
                      "    scheduler: \(service.scheduler.rawValue)", "    forwarding: \(service.forwarding.rawValue)"]
            if service.maglevTableSize != MaglevScheduler.defaultTableSize { lines.append("    maglev_table_size: \(service.maglevTableSize)") }
            if let check = service.healthCheck { lines.append("    health_check: \(check.yaml)") }
            if service.onServerDown != .keep { lines.append("    on_server_down: \(service.onServerDown.rawValue)") }
            if let fallback = service.fallback {
                lines.append("    fallback: { address: \(yamlText(fallback.address)), port: \(fallback.port)" + (fallback.mac.map { ", mac: \"\($0)\"" } ?? "") + " }")
            }
            lines.append(service.realServers.isEmpty ? "    real_servers: []" : "    real_servers:")
            for server in service.realServers {
                var check = ""
                if server.healthCheck != service.healthCheck { check = ", health_check: " + (server.healthCheck?.yaml ?? "none") }
                lines.append("      - { address: \(yamlText(server.address)), port: \(server.port), weight: \(server.weight)"
                    + (server.mac.map { ", mac: \"\($0)\"" } ?? "") + check + " }")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// An address as YAML reads it back: IPv6 quoted, since its colons would end a key.
    private func yamlText(_ address: IPAddress) -> String {
        address.isIPv6 ? "\"\(address)\"" : address.description
    }

    /// The virtual addresses of `services`, sorted, as the host-stack guard lists them.
    static func virtualAddresses(_ services: [Configuration.ServiceConfig]) -> [String] {
        Array(Set(services.map(\.address))).sorted().map(\.description)
    }
}

/// What a reload changed, in an operator's words.
struct ReloadSummary: CustomStringConvertible, Sendable {
    var servicesAdded: [String] = []
    var servicesRemoved: [String] = []
    var servicesChanged: [String] = []
    var serversAdded: [String] = []
    var serversRemoved: [String] = []
    var serversReweighted: [String] = []
    var checksChanged: [String] = []
    var notifyChanged = false
    var timeoutsChanged = false

    init(old: [Configuration.ServiceConfig], new: [Configuration.ServiceConfig], timeoutsChanged: Bool) {
        self.timeoutsChanged = timeoutsChanged
        func name(_ service: Configuration.ServiceConfig) -> String { "\(service.transport) " + service.address.description(port: service.port) }
        let before = Dictionary(old.map { (name($0), $0) }, uniquingKeysWith: { first, _ in first })
        let after = Dictionary(new.map { (name($0), $0) }, uniquingKeysWith: { first, _ in first })
        servicesAdded = after.keys.filter { before[$0] == nil }.sorted()
        servicesRemoved = before.keys.filter { after[$0] == nil }.sorted()
        for (key, service) in after.sorted(by: { $0.key < $1.key }) {
            guard let earlier = before[key] else { continue }
            if earlier.scheduler != service.scheduler || earlier.forwarding != service.forwarding || earlier.maglevTableSize != service.maglevTableSize {
                servicesChanged.append("\(key) (\(earlier.scheduler.rawValue) → \(service.scheduler.rawValue))")
            }
            if earlier.onServerDown != service.onServerDown || earlier.fallback != service.fallback {
                checksChanged.append("\(key) (on_server_down \(service.onServerDown.rawValue), fallback \(service.fallback.map { $0.address.description(port: $0.port) } ?? "none"))")
            }
            let earlierServers = Dictionary(earlier.realServers.map { ($0.address.description(port: $0.port), $0) }, uniquingKeysWith: { first, _ in first })
            let servers = Dictionary(service.realServers.map { ($0.address.description(port: $0.port), $0) }, uniquingKeysWith: { first, _ in first })
            serversAdded += servers.keys.filter { earlierServers[$0] == nil }.sorted().map { "\($0) to \(key)" }
            serversRemoved += earlierServers.keys.filter { servers[$0] == nil }.sorted().map { "\($0) from \(key)" }
            for (server, config) in servers.sorted(by: { $0.key < $1.key }) {
                if let was = earlierServers[server], was.weight != config.weight {
                    serversReweighted.append("\(server) in \(key) \(was.weight) → \(config.weight)")
                }
                if let was = earlierServers[server], was.healthCheck != config.healthCheck {
                    checksChanged.append("\(server) in \(key) (\(config.healthCheck?.probe.name ?? "none"))")
                }
            }
        }
    }

    var isEmpty: Bool {
        servicesAdded.isEmpty && servicesRemoved.isEmpty && servicesChanged.isEmpty && serversAdded.isEmpty
            && serversRemoved.isEmpty && serversReweighted.isEmpty && checksChanged.isEmpty && !timeoutsChanged && !notifyChanged
    }

    var description: String {
        guard !isEmpty else { return "no change" }
        var parts: [String] = []
        if !servicesAdded.isEmpty { parts.append("services added: " + servicesAdded.joined(separator: ", ")) }
        if !servicesRemoved.isEmpty { parts.append("services removed (no longer forwarded, their open connections included): " + servicesRemoved.joined(separator: ", ")) }
        if !servicesChanged.isEmpty { parts.append("schedulers changed: " + servicesChanged.joined(separator: ", ")) }
        if !serversAdded.isEmpty { parts.append("real servers added: " + serversAdded.joined(separator: ", ")) }
        if !serversRemoved.isEmpty { parts.append("real servers removed (their connections go on until they end): " + serversRemoved.joined(separator: ", ")) }
        if !serversReweighted.isEmpty { parts.append("weights: " + serversReweighted.joined(separator: ", ")) }
        if !checksChanged.isEmpty { parts.append("health checks changed: " + checksChanged.joined(separator: ", ")) }
        if notifyChanged { parts.append("notify command changed") }
        if timeoutsChanged { parts.append("timeouts changed (for every connection from now on)") }
        return parts.joined(separator: "; ")
    }
}
