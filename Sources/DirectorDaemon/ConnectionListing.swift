import DirectorCore
import DirectorWire
import Synchronization

/// Which connections `director connections` lists: every condition given must hold.
struct ConnectionFilter: Sendable, Equatable {
    var virtualAddress: IPv4Address?
    var virtualPort: UInt16?
    var realServerID: UInt16?
    var clientAddress: IPv4Address?

    func matches(_ entry: ConnectionEntry<IPv4Address>) -> Bool {
        (virtualAddress == nil || entry.virtualAddress == virtualAddress) && (virtualPort == nil || entry.virtualPort == virtualPort)
            && (realServerID == nil || entry.realServerID == realServerID) && (clientAddress == nil || entry.clientAddress == clientAddress)
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
        var entries: [ConnectionEntry<IPv4Address>]
        /// More matched than `limit`.
        var truncated: Bool
    }

    /// The worker's side of one listing in progress.
    struct Walk {
        let request: Request
        var walk = TableWalk()
        var found: [ConnectionEntry<IPv4Address>] = []
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
    func step(_ listing: inout Walk, table: inout ConnectionTable<IPv4Address>) -> Bool {
        let filter = listing.request.filter, limit = listing.request.limit
        var walk = listing.walk
        table.continueWalk(&walk, budget: ConnectionListingMailbox.stepBudget) { entry in
            if filter.matches(entry) {
                if listing.found.count < limit { listing.found.append(entry) } else { listing.truncated = true }
            }
            return .keep
        }
        listing.walk = walk
        guard walk.isFinished(in: table) else { return false }
        let result = Result(entries: listing.found, truncated: listing.truncated)
        state.withLock { state in
            guard case .walking = state else { return }   // cancelled meanwhile
            state = .done(result)
        }
        return true
    }
}
