import CDirectorShim
import DirectorCore
#if canImport(Glibc)
import Glibc
#endif

/// Where workers publish what they count per real server and per service (`ConnectionLoad`,
/// `TrafficCounters`) for the control side to add up. Each worker owns one row per id and is its
/// only writer; stores and loads are relaxed atomics, as on `CounterBoard`. A worker publishes
/// the ids its snapshot names every `publishIntervalMilliseconds`, so a reader's figures are at
/// most that old.
final class TrafficBoard: @unchecked Sendable {
    static let publishIntervalMilliseconds: UInt64 = 100
    /// Per real server: active, inactive, then `TrafficCounters`' fields.
    private static let serverWidth = 2 + TrafficCounters.fieldCount
    private static let serviceWidth = TrafficCounters.fieldCount

    let workerCount: Int
    private let servers: UnsafeMutablePointer<UInt64>
    private let services: UnsafeMutablePointer<UInt64>

    /// Zeroed by calloc (2.5 + 1.5 MiB a worker, mapped fresh by glibc at that size: pages are
    /// filled in only for the ids in use).
    init(workerCount: Int) {
        self.workerCount = workerCount
        let serverWords = workerCount * TrafficCounters.idCount * TrafficBoard.serverWidth
        let serviceWords = workerCount * TrafficCounters.idCount * TrafficBoard.serviceWidth
        servers = calloc(serverWords, MemoryLayout<UInt64>.stride)!.bindMemory(to: UInt64.self, capacity: serverWords)
        services = calloc(serviceWords, MemoryLayout<UInt64>.stride)!.bindMemory(to: UInt64.self, capacity: serviceWords)
    }

    deinit {
        free(servers)
        free(services)
    }

    private func serverRow(worker: Int, id: UInt16) -> UnsafeMutablePointer<UInt64> {
        servers + (worker * TrafficCounters.idCount + Int(id)) * TrafficBoard.serverWidth
    }

    private func serviceRow(worker: Int, id: UInt16) -> UnsafeMutablePointer<UInt64> {
        services + (worker * TrafficCounters.idCount + Int(id)) * TrafficBoard.serviceWidth
    }

    /// Called by worker `worker` only: the counts of every id `table` names.
    func publish(worker: Int, load: borrowing ConnectionLoad, traffic: borrowing TrafficCounters, table: ServiceTable) {
        for id in table.realServerIDsInUse {
            let row = serverRow(worker: worker, id: id)
            let counts = traffic.server(id)
            director_store_relaxed_u64(row, UInt64(load.activeConnections(id)))
            director_store_relaxed_u64(row + 1, UInt64(load.inactiveConnections(id)))
            director_store_relaxed_u64(row + 2, counts.connections)
            director_store_relaxed_u64(row + 3, counts.packets)
            director_store_relaxed_u64(row + 4, counts.bytes)
        }
        for service in table.services {
            let row = serviceRow(worker: worker, id: service.statisticsID)
            let counts = traffic.service(service.statisticsID)
            director_store_relaxed_u64(row, counts.connections)
            director_store_relaxed_u64(row + 1, counts.packets)
            director_store_relaxed_u64(row + 2, counts.bytes)
        }
    }

    /// A real server's figures: summed over the workers, or one worker's.
    func server(_ id: UInt16, worker: Int? = nil) -> ServerFigures {
        (worker.map { [$0] } ?? Array(0..<workerCount)).reduce(into: ServerFigures()) { sum, worker in
            let row = serverRow(worker: worker, id: id)
            sum.activeConnections &+= director_load_relaxed_u64(row)
            sum.inactiveConnections &+= director_load_relaxed_u64(row + 1)
            sum.traffic = sum.traffic + Traffic(connections: director_load_relaxed_u64(row + 2), packets: director_load_relaxed_u64(row + 3),
                                                bytes: director_load_relaxed_u64(row + 4))
        }
    }

    /// A service's traffic, summed over the workers.
    func service(_ id: UInt16) -> Traffic {
        (0..<workerCount).reduce(into: Traffic()) { sum, worker in
            let row = serviceRow(worker: worker, id: id)
            sum = sum + Traffic(connections: director_load_relaxed_u64(row), packets: director_load_relaxed_u64(row + 1),
                                bytes: director_load_relaxed_u64(row + 2))
        }
    }
}

/// What the director knows of one real server's connections and traffic.
struct ServerFigures: Sendable, Equatable {
    var activeConnections: UInt64 = 0
    var inactiveConnections: UInt64 = 0
    var traffic = Traffic()
}
