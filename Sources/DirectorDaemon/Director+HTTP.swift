import CDirectorShim
#if canImport(Glibc)
import Glibc
#endif

/// What `director.metrics_listen` serves.
extension Director {
    /// Everything the status page shows, in one object (`/status.json`).
    struct StatusReport: Codable, Sendable {
        var node: UInt8
        var version: String
        var uptimeSeconds: Double
        var buckets: BucketsJSONReport
        /// nil for a director without a peer.
        var pair: SyncJSONReport?
        var services: ServicesReport

        enum CodingKeys: String, CodingKey {
            case node, version, uptimeSeconds = "uptime_seconds", buckets, pair, services
        }
    }

    func statusReport() -> StatusReport? {
        guard let services = servicesReport() else { return nil }
        return StatusReport(node: configuration.nodeID, version: DirectorVersion.current,
                            uptimeSeconds: Double(director_monotonic_nanoseconds() - startedAtMonotonic) / 1e9,
                            buckets: bucketsJSONReport(), pair: sync.flatMap { syncJSONReport($0) }, services: services)
    }

    func startMetricsServer() throws {
        guard let listen = configuration.metricsListen else { return }
        let cpuCount = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let cpu = HealthChecker.spareCPU(of: cpuCount, busy: configuration.workerCPUs + [configuration.peer?.syncCPU].compactMap { $0 })
        metricsServer = try MetricsServer(listen: listen, cpu: cpu) { [weak self] path in
            guard let self else { return .text(.serviceUnavailable, "stopping\n") }
            return self.answerHTTP(path)
        }
        Log.info("metrics: http://\(listen)/metrics, status page http://\(listen)/\(cpu.map { " (served from CPU \($0))" } ?? "")")
    }

    func answerHTTP(_ path: String) -> MetricsServer.Response {
        switch path {
        case "/metrics":
            return MetricsServer.Response(status: .ok, contentType: MetricsExposition.contentType, body: metricsText())
        case "/", "/index.html":
            return MetricsServer.Response(status: .ok, contentType: "text/html; charset=utf-8", body: StatusPage.html)
        case "/status.json":
            guard let report = statusReport() else { return .text(.serviceUnavailable, "not started\n") }
            return MetricsServer.Response(status: .ok, contentType: "application/json", body: JSONReport.encode(report))
        default:
            return .text(.notFound, "not found: /metrics, /status.json and the status page at /\n")
        }
    }
}
