import DirectorCore
import DirectorWire
import Synchronization

/// Which connections `director connections` lists: every condition given must hold.
struct ConnectionFilter: Sendable, Equatable {
    var virtualAddress: IPAddress?
    var virtualPort: UInt16?
    var realServerID: UInt16?
    var clientAddress: IPAddress?

    func matches<Address: FlowAddress>(_ entry: ConnectionEntry<Address>) -> Bool {
        (virtualAddress == nil || entry.virtualAddress.ipAddress == virtualAddress) && (virtualPort == nil || entry.virtualPort == virtualPort)
            && (realServerID == nil || entry.realServerID == realServerID) && (clientAddress == nil || entry.clientAddress.ipAddress == clientAddress)
    }
}

/// One connection of either family as a listing reports it.
struct ListedConnection: Sendable, Equatable {
    var transport: TransportProtocol
    var clientAddress: IPAddress
    var clientPort: UInt16
    var virtualAddress: IPAddress
    var virtualPort: UInt16
    var realServerID: UInt16
    var state: ConnectionState
    var expiresAt: UInt64
    var isReplica: Bool
    var isProven: Bool

    init<Address: FlowAddress>(_ entry: ConnectionEntry<Address>) {
        transport = entry.key.transport
        clientAddress = entry.clientAddress.ipAddress
        clientPort = entry.clientPort
        virtualAddress = entry.virtualAddress.ipAddress
        virtualPort = entry.virtualPort
        realServerID = entry.realServerID
        state = entry.state
        expiresAt = entry.expiresAt
        isReplica = entry.isReplica
        isProven = entry.isProven
    }
}

/// How a worker lists its shard for `director connections` without stopping its work: the
/// control side leaves a request here; the worker walks its table in bounded steps between
/// bursts (as it walks it for the peer's snapshot) and leaves the matching entries.
final class ConnectionListingMailbox: Sendable {
    /// Slots a worker examines per loop turn while listing.
    static let stepBudget = 16_384

    struct Request: Sendable {
        var filter: ConnectionFilter
        var limit: Int
    }

    struct Result: Sendable {
        var entries: [ListedConnection]
        /// More matched than `limit`.
        var truncated: Bool
    }

    /// The worker's side of one listing in progress: the IPv4 shard, then the IPv6 one.
    struct Walk {
        let request: Request
        var walk = TableWalk()
        var inIPv6Shard = false
        var found: [ListedConnection] = []
        var truncated = false

        init(_ request: Request) {
            self.request = request
            found.reserveCapacity(min(request.limit, 4096))
        }
    }

    private enum State: Sendable {
        case idle
        case asked(Request)
        case walking
        case done(Result)
    }

    /// Read by the worker every turn: one relaxed load when nobody asks.
    private let pending = Atomic<Bool>(false)
    private let state = Mutex(State.idle)

    /// Control side: asks for a listing (a previous one not taken is dropped).
    func ask(_ request: Request) {
        state.withLock { $0 = .asked(request) }
        pending.store(true, ordering: .releasing)
    }

    /// Control side: the result, once the worker has finished.
    func take() -> Result? {
        state.withLock { state in
            guard case .done(let result) = state else { return nil }
            state = .idle
            return result
        }
    }

    /// Control side: gives up on a listing (the worker's result, if it comes, is dropped).
    func cancel() {
        pending.store(false, ordering: .relaxed)
        state.withLock { $0 = .idle }
    }

    /// Worker side: a new request, if there is one.
    func takeRequest() -> Request? {
        guard pending.load(ordering: .acquiring) else { return nil }
        pending.store(false, ordering: .relaxed)
        return state.withLock { state in
            guard case .asked(let request) = state else { return nil }
            state = .walking
            return request
        }
    }

    /// Worker side: one bounded step; true once the listing is finished and delivered.
    func step(_ listing: inout Walk, table: inout ConnectionTable<IPv4Address>, table6: inout ConnectionTable<IPv6Address>) -> Bool {
        if !listing.inIPv6Shard {
            guard collect(&listing, from: &table) else { return false }
            listing.inIPv6Shard = true
            listing.walk = TableWalk()
        }
        guard collect(&listing, from: &table6) else { return false }
        let result = Result(entries: listing.found, truncated: listing.truncated)
        state.withLock { state in
            guard case .walking = state else { return }   // cancelled meanwhile
            state = .done(result)
        }
        return true
    }

    /// One bounded step over `table`; true once its walk is finished.
    private func collect<Address: FlowAddress>(_ listing: inout Walk, from table: inout ConnectionTable<Address>) -> Bool {
        let filter = listing.request.filter, limit = listing.request.limit
        var walk = listing.walk
        table.continueWalk(&walk, budget: ConnectionListingMailbox.stepBudget) { entry in
            if filter.matches(entry) {
                if listing.found.count < limit { listing.found.append(ListedConnection(entry)) } else { listing.truncated = true }
            }
            return .keep
        }
        listing.walk = walk
        return walk.isFinished(in: table)
    }
}
