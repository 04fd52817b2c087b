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
            let figures = trafficBoard.server(member.id)
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
                server(member, key: HealthKey(virtualAddress: service.address, virtualPort: service.port, transport: service.transport,
                                              serverAddress: member.address, serverPort: member.port))
            }
            return ServicesReport.Service(
                transport: "\(service.transport)", address: "\(service.address)", port: service.port, scheduler: service.scheduler.kind.rawValue,
                forwarding: service.forwarding.rawValue, activeConnections: servers.reduce(0) { $0 + $1.activeConnections },
                inactiveConnections: servers.reduce(0) { $0 + $1.inactiveConnections }, stats: trafficBoard.service(service.statisticsID),
                rates: rates.service(service.statisticsID), realServers: servers)
        }
        return ServicesReport(node: configuration.nodeID, services: services, retired: table.retired.map { server($0, key: nil) })
    }

    /// Once a second (maintenance thread): the totals the rates are computed from.
    func sampleRates() {
        guard let table = currentServicesIfStarted else { return }
        var servers: [UInt16: Traffic] = [:], services: [UInt16: Traffic] = [:]
        for id in table.realServerIDsInUse { servers[id] = trafficBoard.server(id).traffic }
        for service in table.services { services[service.statisticsID] = trafficBoard.service(service.statisticsID) }
        rates.record(TrafficRates.Sample(at: director_monotonic_nanoseconds(), servers: servers, services: services))
    }
}
