import Synchronization

/// A bounded, lock-free ring between exactly one producer thread and one consumer thread: how a
/// worker hands its table changes to the sync thread, and the sync thread hands the peer's
/// changes to a worker, without either ever waiting for the other (Lamport's single-producer,
/// single-consumer queue, with acquire/release ordering).
///
/// - The producer alone writes `tail`, the consumer alone writes `head`; each reads the other's
///   with acquire ordering and publishes its own with release, so an element is fully written
///   before the consumer can see it and fully read before the producer can reuse its slot.
/// - Each side keeps a private copy of the other's index and reloads it only when the ring looks
///   full (producer) or empty (consumer): the shared cache lines move rarely.
/// - Storage is allocated once; `push` and `pop` never allocate.
public final class SingleProducerRing<Element>: @unchecked Sendable {
    public let capacity: Int
    private let mask: Int
    private let slots: UnsafeMutablePointer<Element>

    // Producer side (one thread). The padding keeps the two sides' words on separate 64-byte
    // cache lines, so one side's writes do not invalidate the line the other side reads.
    private let tail = Atomic<Int>(0)
    private var cachedHead = 0
    private let producerPadding = InlineArray<7, Int>(repeating: 0)
    // Consumer side (one other thread).
    private let head = Atomic<Int>(0)
    private var cachedTail = 0
    private let consumerPadding = InlineArray<7, Int>(repeating: 0)

    /// A ring of `capacity` slots (rounded up to a power of two).
    public init(capacity: Int) {
        precondition(capacity > 0)
        var size = 1
        while size < capacity { size <<= 1 }
        self.capacity = size
        mask = size - 1
        slots = .allocate(capacity: size)
    }

    deinit {
        let first = head.load(ordering: .relaxed), last = tail.load(ordering: .relaxed)
        for index in first..<last { (slots + (index & mask)).deinitialize(count: 1) }
        slots.deallocate()
    }

    /// Producer only. False when the ring is full (the caller counts the loss or retries).
    public func push(_ element: Element) -> Bool {
        let position = tail.load(ordering: .relaxed)
        if position - cachedHead == capacity {
            cachedHead = head.load(ordering: .acquiring)
            if position - cachedHead == capacity { return false }
        }
        (slots + (position & mask)).initialize(to: element)
        tail.store(position + 1, ordering: .releasing)
        return true
    }

    /// Consumer only. The oldest element, or nil when the ring is empty.
    public func pop() -> Element? {
        let position = head.load(ordering: .relaxed)
        if position == cachedTail {
            cachedTail = tail.load(ordering: .acquiring)
            if position == cachedTail { return nil }
        }
        let element = (slots + (position & mask)).move()
        head.store(position + 1, ordering: .releasing)
        return element
    }

    /// Consumer only. Pops up to `limit` elements into `body`; returns how many.
    @discardableResult
    public func drain(limit: Int = .max, _ body: (Element) -> Void) -> Int {
        var count = 0
        while count < limit, let element = pop() {
            body(element)
            count += 1
        }
        return count
    }

    /// Elements waiting (a snapshot; exact only when neither side is active).
    public var count: Int { tail.load(ordering: .acquiring) - head.load(ordering: .acquiring) }

    /// Elements pushed since the ring was made: the consumer waits for `consumed` to reach a
    /// value read here to know everything pushed until then has been taken.
    public var produced: Int { tail.load(ordering: .acquiring) }

    /// Elements popped since the ring was made.
    public var consumed: Int { head.load(ordering: .acquiring) }
}
