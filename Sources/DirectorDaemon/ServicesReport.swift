import DirectorCore
import Foundation

/// The virtual services and their real servers as `director services` shows them: what the
/// director applies (weights after health checks), the pair's health verdicts, and per-server
/// connections and traffic as the workers counted them. Its JSON (`--json`) is a stable shape:
/// fields are added, never renamed or removed.
///
/// The workers count per real server (its address and port) and per service, not per pair of
/// the two: a real server in two services shows the same figures, its total, in both (IPVS
/// keeps them per service). A service's traffic is its own, counted apart; its connection
/// counts are its servers' sums, so they hold the other service's too when a server is shared.
struct ServicesReport: Codable, Sendable, Equatable {
    var node: UInt8
    var services: [Service]
    /// Servers a reload removed whose connections still go on.
    var retired: [Server]

    struct Service: Codable, Sendable, Equatable {
        var transport: String
        var address: String
        var port: UInt16
        var scheduler: String
        var forwarding: String
        var activeConnections: UInt64
        var inactiveConnections: UInt64
        var stats: Traffic
        var rates: Rate
        var realServers: [Server]

        var name: String { "\(transport):" + ServicesReport.endpoint(address, port) }

        enum CodingKeys: String, CodingKey {
            case transport = "protocol", address, port, scheduler, forwarding
            case activeConnections = "active_connections", inactiveConnections = "inactive_connections"
            case stats, rates, realServers = "real_servers"
        }
    }

    struct Server: Codable, Sendable, Equatable {
        var address: String
        var port: UInt16
        /// The weight in force: 0 while drained, out of service or retired.
        var weight: UInt32
        /// nil until resolved by ARP.
        var mac: String?
        /// The pair's verdict: "up", "down", "unchecked", or "fallback" (the service's fallback).
        var health: String
        /// Each side's own checks: "up", "down", or nil when that side does not check it.
        var healthHere: String?
        var healthPeer: String?
        var activeConnections: UInt64
        var inactiveConnections: UInt64
        var stats: Traffic
        var rates: Rate

        var name: String { ServicesReport.endpoint(address, port) }

        enum CodingKeys: String, CodingKey {
            case address, port, weight, mac, health
            case healthHere = "health_here", healthPeer = "health_peer"
            case activeConnections = "active_connections", inactiveConnections = "inactive_connections"
            case stats, rates
        }
    }

    /// What `director services` prints: `--stats` and `--rate` as `ipvsadm -L -n --stats/--rate`
    /// (only the "in" columns: a DR director never sees the servers' answers).
    enum View: String, Sendable { case connections, stats, rate }

    /// "198.18.0.100:80" or "[2001:2::100]:80", as `ipvsadm -L -n` writes them.
    static func endpoint(_ address: String, _ port: UInt16) -> String {
        address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
    }

    func text(_ view: View) -> String {
        var lines: [String]
        switch view {
        case .connections:
            lines = ["Prot LocalAddress:Port Scheduler  ActiveConn InActConn",
                     "  -> RemoteAddress:Port  Forward Weight ActiveConn InActConn MAC Health"]
        case .stats:
            lines = [ServicesReport.columns("Prot LocalAddress:Port", ["Conns", "InPkts", "InBytes"]),
                     ServicesReport.columns("  -> RemoteAddress:Port", [])]
        case .rate:
            lines = [ServicesReport.columns("Prot LocalAddress:Port", ["CPS", "InPPS", "InBPS"]),
                     ServicesReport.columns("  -> RemoteAddress:Port", [])]
        }
        for service in services {
            let head = "\(service.transport.uppercased())  " + ServicesReport.endpoint(service.address, service.port)
            switch view {
            case .connections:
                lines.append("\(head) \(service.scheduler)  \(service.activeConnections) \(service.inactiveConnections)")
            case .stats: lines.append(ServicesReport.columns(head, ServicesReport.totals(service.stats)))
            case .rate: lines.append(ServicesReport.columns(head, ServicesReport.perSecond(service.rates)))
            }
            // ipvsadm's names for the methods.
            let method = service.forwarding == ForwardingMethod.nat.rawValue ? "Masq" : "Route"
            for server in service.realServers { lines.append(line(server, view, method: method)) }
        }
        if !retired.isEmpty {
            lines.append("Removed by a reload (their connections go on until they end):")
            for server in retired { lines.append(line(server, view, method: "-")) }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private func line(_ server: Server, _ view: View, method: String) -> String {
        let head = "  -> \(server.name)"
        switch view {
        case .connections:
            let health = server.health == "up" || server.health == "down"
                ? "\(server.health) (here \(server.healthHere ?? "-"), peer \(server.healthPeer ?? "-"))" : server.health
            return "\(head)  \(method)   \(server.weight)  \(server.activeConnections) \(server.inactiveConnections)  \(server.mac ?? "unresolved")  \(health)"
        case .stats: return ServicesReport.columns(head, ServicesReport.totals(server.stats))
        case .rate: return ServicesReport.columns(head, ServicesReport.perSecond(server.rates))
        }
    }

    private static func totals(_ traffic: Traffic) -> [String] {
        [String(traffic.connections), String(traffic.packets), String(traffic.bytes)]
    }

    private static func perSecond(_ rate: Rate) -> [String] {
        [rate.connectionsPerSecond, rate.packetsPerSecond, rate.bytesPerSecond].map { String(Int($0.rounded())) }
    }

    /// A name padded to 34 columns, then right-aligned figures of 12.
    private static func columns(_ name: String, _ figures: [String]) -> String {
        let padded = name.count >= 34 ? name + " " : name + String(repeating: " ", count: 34 - name.count)
        let rest = figures.map { String(repeating: " ", count: max(1, 12 - $0.count)) + $0 }.joined()
        return figures.isEmpty ? name : padded + rest
    }

    func json() -> String { JSONReport.encode(self) }
}
