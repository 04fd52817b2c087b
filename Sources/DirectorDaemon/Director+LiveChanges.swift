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
        let name = "\(transport) " + address.description(port: port)
        switch (words[0], words[1]) {
        case ("service", "add"):
            guard index == nil else { throw ConfigurationError(field: "SERVICE", problem: "\(name) exists already") }
            guard words.count <= 4 else { throw ConfigurationError(field: "", problem: usage) }
            let schedulerName = words.count == 4 ? String(words[3]) : SchedulerKind.maglev.rawValue
            guard let scheduler = SchedulerKind(rawValue: schedulerName) else {
                throw ConfigurationError(field: "SCHEDULER", problem: "expected one of \(SchedulerKind.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(schedulerName)\"")
            }
            guard address.isPlausibleHostAddress else { throw ConfigurationError(field: "SERVICE", problem: "\(address) cannot be a virtual address (unspecified, loopback, multicast, link-local or IPv4-mapped)") }
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
            let serverName = server.address.description(port: server.port)
            guard server.address.isIPv6 == address.isIPv6 else {
                throw ConfigurationError(field: "SERVER", problem: "\(server.address) is not of the family of \(name): a service is IPv4 or IPv6 throughout")
            }
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
    static func service(_ text: Substring) throws(ConfigurationError) -> (IPAddress, UInt16, TransportProtocol) {
        var rest = text
        var transport = TransportProtocol.tcp
        if let named = TransportProtocol.allCases.first(where: { text.hasPrefix("\($0.description):") }) {
            transport = named
            rest = text.dropFirst(named.description.count + 1)
        }
        // A word of letters before the first colon can only be a protocol (an IPv6 address
        // made of letters alone, like "dead:beef::1", parses as one first).
        if rest == text, endpoint(text) == nil, let colon = text.firstIndex(of: ":"), text[..<colon].allSatisfy(\.isLetter) {
            throw ConfigurationError(field: "SERVICE", problem: "expected tcp or udp before the address, got \"\(text[..<colon])\"")
        }
        guard let (address, port) = endpoint(rest), let port, port > 0 else {
            throw ConfigurationError(field: "SERVICE", problem: "expected an address and port like 198.18.0.100:80 or [2001:2::100]:80 (udp:… for UDP), got \"\(text)\"")
        }
        return (address, port, transport)
    }

    /// "198.18.2.14" or "2001:2::14" (the service's port), "198.18.2.14:8080" or
    /// "[2001:2::14]:8080" (not with direct routing).
    static func server(_ text: Substring, servicePort: UInt16, forwarding: ForwardingMethod) throws(ConfigurationError) -> (address: IPAddress, port: UInt16) {
        guard let (address, given) = endpoint(text) else {
            throw ConfigurationError(field: "SERVER", problem: "expected an address like 198.18.2.14 or 2001:2::14 (with a port: 198.18.2.14:80, [2001:2::14]:80), got \"\(text)\"")
        }
        if let given, given == 0 { throw ConfigurationError(field: "SERVER", problem: "expected a port from 1 to 65535, got 0") }
        guard address.isPlausibleHostAddress else {
            throw ConfigurationError(field: "SERVER", problem: "\(address) cannot be a real server's address (unspecified, loopback, multicast, link-local or IPv4-mapped)")
        }
        let port = given ?? servicePort
        guard forwarding != .directRouting || port == servicePort else {
            throw ConfigurationError(field: "SERVER", problem: "direct routing cannot change the port: must be \(servicePort) like the service, got \(port)")
        }
        return (address, port)
    }

    /// An address with an optional port, as `ipvsadm` writes them: `a.b.c.d`, `a.b.c.d:port`,
    /// a bare IPv6 address or `[IPv6]:port`. nil for anything else (a port beyond 65535 included).
    static func endpoint(_ text: Substring) -> (IPAddress, UInt16?)? {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), let address = IPv6Address(String(text[text.index(after: text.startIndex)..<close])) else { return nil }
            let tail = text[text.index(after: close)...]
            if tail.isEmpty { return (.v6(address), nil) }
            guard tail.hasPrefix(":"), let port = UInt16(tail.dropFirst()) else { return nil }
            return (.v6(address), port)
        }
        if let address = IPAddress(String(text)) { return (address, nil) }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPv4Address(String(parts[0])), let port = UInt16(parts[1]) else { return nil }
        return (.v4(address), port)
    }

    static func weight(_ text: Substring) throws(ConfigurationError) -> UInt32 {
        guard let value = UInt32(text), value <= 65535 else {
            throw ConfigurationError(field: "WEIGHT", problem: "expected a whole number from 0 to 65535, got \"\(text)\"")
        }
        return value
    }
}
