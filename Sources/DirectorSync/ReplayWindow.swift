/// Anti-replay for one peer, in the manner of IPsec's sliding window (RFC 4303 §3.4.3): the
/// highest datagram sequence seen and a bitmap of the 64 before it. A datagram is accepted once;
/// one older than the window is refused. Incarnations order the peer's lives: a larger one means
/// it restarted (the window starts over), a smaller one is a stale datagram of an earlier life.
public struct ReplayWindow: Sendable {
    public static let width: UInt64 = 64

    public enum Admission: Equatable, Sendable {
        case accepted
        /// Accepted, and the peer has restarted since its last datagram.
        case acceptedFromNewIncarnation
    }

    public private(set) var incarnation: UInt64?
    private var highest: UInt64 = 0
    /// Bit i set: sequence `highest - i` has been seen.
    private var seen: UInt64 = 0

    public init() {}

    public mutating func admit(incarnation: UInt64, sequence: UInt64) -> Result<Admission, SyncRejection> {
        var admission = Admission.accepted
        if let current = self.incarnation {
            if incarnation < current { return .failure(.staleIncarnation) }
            if incarnation > current {
                admission = .acceptedFromNewIncarnation
                reset(incarnation)
            }
        } else {
            reset(incarnation)
        }
        if sequence > highest {
            let shift = sequence - highest
            seen = shift >= ReplayWindow.width ? 0 : seen << shift
            seen |= 1
            highest = sequence
            return .success(admission)
        }
        let age = highest - sequence
        guard age < ReplayWindow.width else { return .failure(.outsideReplayWindow) }
        let bit: UInt64 = 1 << age
        guard seen & bit == 0 else { return .failure(.replayed) }
        seen |= bit
        return .success(admission)
    }

    /// Admission of a data datagram (deltas, snapshot chunk): the incarnation is checked as for
    /// any datagram, but age and a second copy are not reasons to refuse it. A retransmission is
    /// the original datagram, so its sequence may lie far behind the window; what it carries is
    /// numbered by data sequence, and the inbox takes each data sequence once.
    public mutating func admitData(incarnation: UInt64, sequence: UInt64) -> Result<Admission, SyncRejection> {
        switch admit(incarnation: incarnation, sequence: sequence) {
        case .success(let admission): .success(admission)
        case .failure(.staleIncarnation): .failure(.staleIncarnation)
        case .failure: .success(.accepted)
        }
    }

    private mutating func reset(_ incarnation: UInt64) {
        self.incarnation = incarnation
        highest = 0
        seen = 0
    }
}
