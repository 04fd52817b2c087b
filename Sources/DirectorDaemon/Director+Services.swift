import CDirectorShim
import DirectorCore
import DirectorSync
import DirectorWire

/// `director services`: the services, their servers' health, connections and traffic.
extension Director {
    /// `services [stats|rate] [json]`.
    func servicesCommand(_ words: [Substring]) -> String {
        var view = ServicesReport.View.connections, json = false
        for word in words {
            switch word {
            case "stats": view = .stats
            case "rate": view = .rate
            case "json": json = true
            default: return "error: services [stats|rate] [json]: unknown option \"\(word)\"\n"
            }
        }
        guard let report = servicesReport() else { return "not started\n" }
        return json ? report.json() : report.text(view)
    }

    func servicesReport() -> ServicesReport? {
        guard let table = currentServicesIfStarted else { return nil }
        let own = checker.statuses.withLock { $0 }
        let board = health.withLock { $0 }
        let fallbacks = Set(live.withLock { $0.services.compactMap { service in service.fallback.map { HealthKey(service, $0) } } })
        func word(_ isUp: Bool?) -> String? { isUp.map { $0 ? "up" : "down" } }
        func server(_ member: RealServer, key: HealthKey?) -> ServicesReport.Server {
            let figures = serverFigures(member.id)
            var health = "unchecked", here: String?, peer: String?
            if let key {
                here = word(own[key]?.isUp)
                peer = word(board.peer[key]?.isUp)
                if fallbacks.contains(key) { health = "fallback" } else if here != nil || peer != nil { health = board.down.contains(key) ? "down" : "up" }
            }
            return ServicesReport.Server(
                address: "\(member.address)", port: member.port, weight: member.weight, mac: member.mac == .zero ? nil : member.mac.description,
                health: health, healthHere: here, healthPeer: peer, activeConnections: figures.activeConnections,
                inactiveConnections: figures.inactiveConnections, stats: figures.traffic, rates: rates.server(member.id))
        }
        let services = table.services.map { service in
            let servers = service.pool.map { member in
                server(member, key: HealthKey(service, member))
            }
            return ServicesReport.Service(
                transport: "\(service.transport)", address: "\(service.address)", port: service.port, scheduler: service.scheduler.kind.rawValue,
                forwarding: service.forwarding.rawValue, activeConnections: servers.reduce(0) { $0 + $1.activeConnections },
                inactiveConnections: servers.reduce(0) { $0 + $1.inactiveConnections }, stats: serviceTraffic(service.statisticsID),
                rates: rates.service(service.statisticsID), realServers: servers)
        }
        return ServicesReport(node: configuration.nodeID, services: services, retired: table.retired.map { server($0, key: nil) })
    }

    /// A real server's connections and traffic: what the workers forwarded through the ring, and
    /// what the XDP fast path forwarded of the flows they offered it.
    func serverFigures(_ id: UInt16) -> ServerFigures {
        var figures = trafficBoard.server(id)
        if let forwarded = fastPath?.serverTraffic(id) {
            figures.traffic = figures.traffic + Traffic(packets: forwarded.packets, bytes: forwarded.bytes)
        }
        return figures
    }

    /// The same for a virtual service's traffic.
    func serviceTraffic(_ id: UInt16) -> Traffic {
        let ring = trafficBoard.service(id)
        guard let forwarded = fastPath?.serviceTraffic(id) else { return ring }
        return ring + Traffic(packets: forwarded.packets, bytes: forwarded.bytes)
    }

    /// Once a second (maintenance thread): the totals the rates are computed from.
    func sampleRates() {
        guard let table = currentServicesIfStarted else { return }
        var servers: [UInt16: Traffic] = [:], services: [UInt16: Traffic] = [:]
        for id in table.realServerIDsInUse { servers[id] = serverFigures(id).traffic }
        for service in table.services { services[service.statisticsID] = serviceTraffic(service.statisticsID) }
        rates.record(TrafficRates.Sample(at: director_monotonic_nanoseconds(), servers: servers, services: services))
    }
}

extension Director {
    /// Per service and per real server: connections and traffic (as `ipvsadm --stats`, and as
    /// node_exporter's ipvs collector names its labels), weight and health. A real server in two
    /// services has its total under each (see `ServicesReport`).
    func trafficMetricFamilies() -> [MetricFamily] {
        guard let report = servicesReport() else { return [] }
        var serviceConnections = MetricFamily("director_service_connections_total", .counter, "Connections scheduled for the virtual service.")
        var servicePackets = MetricFamily("director_service_packets_total", .counter, "Packets forwarded for the virtual service (clients' direction).")
        var serviceBytes = MetricFamily("director_service_bytes_total", .counter, "IP bytes forwarded for the virtual service (clients' direction).")
        var connections = MetricFamily("director_real_server_connections_total", .counter, "Connections scheduled to the real server.")
        var packets = MetricFamily("director_real_server_packets_total", .counter, "Packets forwarded to the real server.")
        var bytes = MetricFamily("director_real_server_bytes_total", .counter, "IP bytes forwarded to the real server.")
        var active = MetricFamily("director_real_server_active_connections", .gauge, "The real server's ESTABLISHED connections this director forwards.")
        var inactive = MetricFamily("director_real_server_inactive_connections", .gauge, "The real server's connections in other states this director forwards.")
        var weight = MetricFamily("director_real_server_weight", .gauge, "The weight in force (0 while drained, out of service or retired).")
        var up = MetricFamily("director_real_server_up", .gauge, "1 unless the pair's health checks have the real server out of service.")
        for service in report.services {
            let serviceLabel = [("service", service.name)]
            serviceConnections.add(service.stats.connections, serviceLabel)
            servicePackets.add(service.stats.packets, serviceLabel)
            serviceBytes.add(service.stats.bytes, serviceLabel)
            for server in service.realServers {
                let labels = serviceLabel + [("real_server", server.name)]
                connections.add(server.stats.connections, labels)
                packets.add(server.stats.packets, labels)
                bytes.add(server.stats.bytes, labels)
                active.add(server.activeConnections, labels)
                inactive.add(server.inactiveConnections, labels)
                weight.add(UInt64(server.weight), labels)
                up.add(server.health == "down" ? 0 : 1, labels)
            }
        }
        return [serviceConnections, servicePackets, serviceBytes, connections, packets, bytes, active, inactive, weight, up]
    }
}
