import CDirectorShim
import DirectorCore
import DirectorWire
#if canImport(Glibc)
import Glibc
#endif

/// `director connections`: the connection table, walked by the workers themselves.
extension Director {
    /// The most a listing returns, whatever its limit says: a reply stays within about 11 MB of
    /// text (20 MB of JSON), and each worker hands over at most this many 32-byte entries.
    static let connectionListingCeiling = 100_000
    /// How long the workers get to walk their shards (a million slots take a busy worker about
    /// 64 ms); a worker that does not answer by then (stalled) is named in the report.
    static let connectionListingTimeoutNanoseconds: UInt64 = 2_000_000_000

    /// `connections [service ADDRESS:PORT] [server ADDRESS:PORT] [client ADDRESS] [limit N] [json]`.
    func connectionsCommand(_ words: [Substring]) -> String {
        var filter = ConnectionFilter(), limit = Director.connectionListingCeiling, json = false
        var index = 0
        func value() -> String? {
            index += 1
            return index < words.count ? String(words[index]) : nil
        }
        while index < words.count {
            switch words[index] {
            case "service":
                guard let text = value(), let (address, port) = LiveEdit.endpoint(Substring(text)), let port else {
                    return "error: connections: service wants ADDRESS:PORT (like 198.18.0.100:80 or [2001:2::100]:80)\n"
                }
                filter.virtualAddress = address
                filter.virtualPort = port
            case "server":
                guard let text = value(), let (address, port) = LiveEdit.endpoint(Substring(text)), let port else {
                    return "error: connections: server wants ADDRESS:PORT (like 198.18.2.11:80 or [2001:2:0:2::11]:80)\n"
                }
                let id = live.withLock { $0.id(of: address, port: port) }
                // A server never had: nothing can match (id 0 is nobody's).
                filter.realServerID = id
            case "client":
                guard let text = value(), let address = IPAddress(text) else { return "error: connections: client wants an IPv4 or IPv6 address\n" }
                filter.clientAddress = address
            case "limit":
                guard let text = value(), let count = Int(text), count > 0 else { return "error: connections: limit wants a positive number\n" }
                limit = min(count, Director.connectionListingCeiling)
            case "json":
                json = true
            default:
                return "error: connections: unknown option \"\(words[index])\" (service, server, client, limit, json)\n"
            }
            index += 1
        }
        let report = listConnections(filter, limit: limit)
        return json ? report.json() : report.text()
    }

    /// Asks every worker for its matching entries and waits for them all (each walks its shard
    /// between bursts; a stalled one is named in the report, not waited for forever).
    func listConnections(_ filter: ConnectionFilter, limit: Int) -> ConnectionsReport {
        listingLock.withLock { _ in
            for worker in workers {
                worker.listings.ask(.init(filter: filter, limit: limit))
                worker.link?.wakeup.ring()
            }
            var results: [Int: ConnectionListingMailbox.Result] = [:]
            let deadline = director_monotonic_nanoseconds() + Director.connectionListingTimeoutNanoseconds
            while results.count < workers.count, director_monotonic_nanoseconds() < deadline {
                for (index, worker) in workers.enumerated() where results[index] == nil {
                    if let result = worker.listings.take() { results[index] = result }
                }
                if results.count < workers.count { usleep(1_000) }
            }
            let missing = workers.indices.filter { results[$0] == nil }
            for index in missing { workers[index].listings.cancel() }
            let table = currentServicesIfStarted
            let now = director_monotonic_nanoseconds() / 1_000_000
            // Ordered and cut as plain entries; only what is shown becomes text.
            var found = results.flatMap { worker, result in result.entries.map { (worker: worker, entry: $0) } }
            found.sort { ($0.entry.virtualAddress, $0.entry.virtualPort, $0.entry.clientAddress, $0.entry.clientPort, $0.entry.transport.rawValue, $0.worker)
                < ($1.entry.virtualAddress, $1.entry.virtualPort, $1.entry.clientAddress, $1.entry.clientPort, $1.entry.transport.rawValue, $1.worker) }
            let connections = found.prefix(limit).map { worker, entry in
                ConnectionsReport.Connection(
                    transport: "\(entry.transport)", client: entry.clientAddress.description(port: entry.clientPort),
                    virtual: entry.virtualAddress.description(port: entry.virtualPort),
                    realServer: table?.realServer(id: entry.realServerID).map { $0.address.description(port: $0.port) }, state: entry.state.description,
                    expiresInSeconds: entry.expiresAt > now ? Double(entry.expiresAt - now) / 1000 : 0,
                    owner: entry.isReplica ? "replica" : "own", proven: entry.isProven, worker: worker)
            }
            let truncated = results.values.contains { $0.truncated } || found.count > limit
            return ConnectionsReport(node: configuration.nodeID, connections: Array(connections), truncated: truncated,
                                     workersMissing: missing)
        }
    }
}
