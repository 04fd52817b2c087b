import DirectorWire

/// An IPv4 flow as the XDP fast path keys it, with where its frames go.
public struct FastPathFlow: Equatable, Sendable {
    public var clientAddress: IPv4Address
    public var virtualAddress: IPv4Address
    public var clientPort: UInt16
    public var virtualPort: UInt16
    public var transport: TransportProtocol
    /// The real server's MAC (zero in a withdrawal).
    public var serverMAC: MACAddress
    /// The statistics ids the program counts the flow's frames under, as the workers count the
    /// ring's (`TrafficCounters`): its real server's and its service's (zero in a withdrawal).
    public var serverID: UInt16
    public var serviceID: UInt16

    @inlinable
    public init(clientAddress: IPv4Address, virtualAddress: IPv4Address, clientPort: UInt16, virtualPort: UInt16,
                transport: TransportProtocol, serverMAC: MACAddress = .zero, serverID: UInt16 = 0, serviceID: UInt16 = 0) {
        self.clientAddress = clientAddress
        self.virtualAddress = virtualAddress
        self.clientPort = clientPort
        self.virtualPort = virtualPort
        self.transport = transport
        self.serverMAC = serverMAC
        self.serverID = serverID
        self.serviceID = serviceID
    }
}

/// What the pipeline asks of the XDP fast path, queued for the worker to carry out between
/// bursts (a map update is a system call: the pipeline itself does no I/O).
public enum FastPathRequest: Equatable, Sendable {
    /// The flow is established and proven: the program may forward its frames.
    case offer(FastPathFlow)
    /// The flow ends or leaves this worker: the program must stop forwarding it.
    case withdraw(FastPathFlow)
}

/// The requests of one worker, in a buffer reserved once. A request that does not fit is not
/// queued: an offer is simply made again by the flow's next frame on the ring, and a lost
/// withdrawal sets `mustFlush`, which the worker answers by invalidating every flow in the
/// program at once (`XDPFastPath.flush`).
public struct FastPathRequests: Sendable {
    public private(set) var pending: [FastPathRequest] = []
    public var mustFlush = false
    public let capacity: Int

    /// The buffer is reserved by `reserve` (a worker without the fast path never needs it).
    public init(capacity: Int = 4096) {
        self.capacity = capacity
    }

    /// Reserves the buffer once, so that queueing never allocates.
    public mutating func reserve() {
        if pending.capacity < capacity { pending.reserveCapacity(capacity) }
    }

    @inlinable public var isEmpty: Bool { pending.isEmpty && !mustFlush }

    @discardableResult
    public mutating func offer(_ flow: FastPathFlow) -> Bool {
        guard pending.count < min(capacity, pending.capacity) else { return false }
        pending.append(.offer(flow))
        return true
    }

    public mutating func withdraw(_ flow: FastPathFlow) {
        guard pending.count < min(capacity, pending.capacity) else {
            mustFlush = true
            return
        }
        pending.append(.withdraw(flow))
    }

    /// Hands every request to `body`, in order, and empties the queue (keeping its buffer).
    public mutating func drain(_ body: (FastPathRequest) -> Void) -> (flush: Bool, count: Int) {
        let flush = mustFlush
        let count = pending.count
        for request in pending { body(request) }
        pending.removeAll(keepingCapacity: true)
        mustFlush = false
        return (flush, count)
    }
}
