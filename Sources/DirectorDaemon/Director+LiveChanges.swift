import DirectorCore
import DirectorWire

extension Director {
    /// `server add|remove|weight|drain SERVICE SERVER [WEIGHT]`, `service add|remove SERVICE
    /// [SCHEDULER]`: one change to the live services, applied between two bursts of the workers
    /// like a reload (connections keep their servers; a removed server's go on until they end).
    /// Not written to the config file: a reload or restart returns to the file
    /// (`config dump` prints what runs now, to put in it).
    func liveChange(_ words: [Substring]) -> String {
        reloadLock.withLock { _ in
            let current = live.withLock { $0 }
            let edited: [Configuration.ServiceConfig]
            switch Result(catching: { () throws(ConfigurationError) in try LiveEdit.apply(words, to: current.services) }) {
            case .success(let services): edited = services
            case .failure(let error): return "error: \(error)\n"
            }
            return apply(services: edited, timeouts: current.timeouts, source: "\(words.joined(separator: " "))")
        }
    }

    /// The running services and timeouts as the config file writes them.
    func configurationDump() -> String {
        live.withLock { $0 }.yaml
    }
}

/// One live change to a list of services, checked as the config file's parser checks the same
/// fields (its messages name the argument that is wrong).
enum LiveEdit {
    static let usage = """
        server add SERVICE SERVER [WEIGHT] | server remove SERVICE SERVER | server weight SERVICE SERVER WEIGHT | \
        server drain SERVICE SERVER | service add SERVICE [SCHEDULER] | service remove SERVICE \
        (SERVICE like 198.18.0.100:80 or udp:198.18.0.100:53; SERVER like 198.18.2.14 or 198.18.2.14:80)
        """

    static func apply(_ words: [Substring], to services: [Configuration.ServiceConfig]) throws(ConfigurationError) -> [Configuration.ServiceConfig] {
        guard words.count >= 3 else { throw ConfigurationError(field: "", problem: usage) }
        var services = services
        let (address, port, transport) = try service(words[2])
        let index = services.firstIndex { $0.address == address && $0.port == port && $0.transport == transport }
        let name = "\(transport) \(address):\(port)"
        switch (words[0], words[1]) {
        case ("service", "add"):
            guard index == nil else { throw ConfigurationError(field: "SERVICE", problem: "\(name) exists already") }
            guard words.count <= 4 else { throw ConfigurationError(field: "", problem: usage) }
            let schedulerName = words.count == 4 ? String(words[3]) : SchedulerKind.maglev.rawValue
            guard let scheduler = SchedulerKind(rawValue: schedulerName) else {
                throw ConfigurationError(field: "SCHEDULER", problem: "expected one of \(SchedulerKind.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(schedulerName)\"")
            }
            services.append(Configuration.ServiceConfig(address: address, port: port, transport: transport, scheduler: scheduler,
                                                        forwarding: .directRouting, maglevTableSize: MaglevScheduler.defaultTableSize, realServers: []))
            return services
        case ("service", "remove"):
            guard let index, words.count == 3 else { throw ConfigurationError(field: "SERVICE", problem: index == nil ? "no service \(name)" : usage) }
            services.remove(at: index)
            return services
        case ("server", let action):
            guard let index else { throw ConfigurationError(field: "SERVICE", problem: "no service \(name)") }
            guard words.count >= 4 else { throw ConfigurationError(field: "", problem: usage) }
            let server = try self.server(words[3], servicePort: port, forwarding: services[index].forwarding)
            let position = services[index].realServers.firstIndex { $0.address == server.address && $0.port == server.port }
            let serverName = "\(server.address):\(server.port)"
            switch action {
            case "add":
                guard position == nil else { throw ConfigurationError(field: "SERVER", problem: "\(serverName) is in \(name) already") }
                guard services[index].realServers.count + 1 < Int(MaglevScheduler.unassigned) else {
                    throw ConfigurationError(field: "SERVER", problem: "at most \(Int(MaglevScheduler.unassigned) - 1) real servers per service")
                }
                var added = Configuration.RealServerConfig(address: server.address, port: server.port, weight: 1, mac: nil,
                                                           healthCheck: services[index].healthCheck)
                if words.count == 5 { added.weight = try weight(words[4]) } else if words.count > 5 { throw ConfigurationError(field: "", problem: usage) }
                services[index].realServers.append(added)
            case "remove", "drain", "weight":
                guard let position else { throw ConfigurationError(field: "SERVER", problem: "\(serverName) is not in \(name)") }
                if action == "remove" {
                    services[index].realServers.remove(at: position)
                } else if action == "drain" {
                    services[index].realServers[position].weight = 0
                } else {
                    guard words.count == 5 else { throw ConfigurationError(field: "", problem: usage) }
                    services[index].realServers[position].weight = try weight(words[4])
                }
            default:
                throw ConfigurationError(field: "", problem: usage)
            }
            return services
        default:
            throw ConfigurationError(field: "", problem: usage)
        }
    }

    /// "198.18.0.100:80", "tcp:198.18.0.100:80" or "udp:198.18.0.100:53".
    static func service(_ text: Substring) throws(ConfigurationError) -> (IPv4Address, UInt16, TransportProtocol) {
        var parts = text.split(separator: ":", omittingEmptySubsequences: false)
        var transport = TransportProtocol.tcp
        if parts.count == 3 {
            guard let named = TransportProtocol.allCases.first(where: { $0.description == parts[0] }) else {
                throw ConfigurationError(field: "SERVICE", problem: "expected tcp or udp before the address, got \"\(parts[0])\"")
            }
            transport = named
            parts.removeFirst()
        }
        guard parts.count == 2, let address = IPv4Address(String(parts[0])), let port = UInt16(parts[1]), port > 0 else {
            throw ConfigurationError(field: "SERVICE", problem: "expected an address and port like 198.18.0.100:80 (udp:… for UDP), got \"\(text)\"")
        }
        return (address, port, transport)
    }

    /// "198.18.2.14" (the service's port) or "198.18.2.14:8080" (not with direct routing).
    static func server(_ text: Substring, servicePort: UInt16, forwarding: ForwardingMethod) throws(ConfigurationError) -> (address: IPv4Address, port: UInt16) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let address = IPv4Address(String(parts[0])) else {
            throw ConfigurationError(field: "SERVER", problem: "expected an address like 198.18.2.14 (or 198.18.2.14:80), got \"\(text)\"")
        }
        var port = servicePort
        if parts.count == 2 {
            guard let given = UInt16(parts[1]), given > 0 else { throw ConfigurationError(field: "SERVER", problem: "expected a port from 1 to 65535, got \"\(parts[1])\"") }
            port = given
        }
        guard forwarding != .directRouting || port == servicePort else {
            throw ConfigurationError(field: "SERVER", problem: "direct routing cannot change the port: must be \(servicePort) like the service, got \(port)")
        }
        return (address, port)
    }

    static func weight(_ text: Substring) throws(ConfigurationError) -> UInt32 {
        guard let value = UInt32(text), value <= 65535 else {
            throw ConfigurationError(field: "WEIGHT", problem: "expected a whole number from 0 to 65535, got \"\(text)\"")
        }
        return value
    }
}
