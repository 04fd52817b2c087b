/// Anti-replay for one peer, in the manner of IPsec's sliding window (RFC 4303 §3.4.3): the
/// highest datagram sequence seen and a bitmap of the 64 before it. A datagram is accepted once;
/// one older than the window is refused. The window belongs to one incarnation of the peer, the
/// one this side believes (see the handshake in SyncWireFormat); a datagram of any other is
/// refused, and believing a new one starts the window over.
public struct ReplayWindow: Sendable {
    public static let width: UInt64 = 64

    /// The peer incarnation the window is for; nil until one is believed.
    public private(set) var incarnation: UInt64?
    private var highest: UInt64 = 0
    /// Bit i set: sequence `highest - i` has been seen.
    private var seen: UInt64 = 0

    public init() {}

    /// From now on, datagrams of `incarnation` (and only those) are admitted, each sequence once.
    public mutating func start(incarnation: UInt64) {
        self.incarnation = incarnation
        highest = 0
        seen = 0
    }

    /// Why `admit` would refuse this datagram, without changing anything: the check a receiver
    /// makes before it authenticates.
    public func refusal(incarnation: UInt64, sequence: UInt64) -> SyncRejection? {
        guard incarnation == self.incarnation else { return .unverifiedIncarnation }
        guard sequence <= highest else { return nil }
        let age = highest - sequence
        guard age < ReplayWindow.width else { return .outsideReplayWindow }
        return seen & (1 << age) == 0 ? nil : .replayed
    }

    /// Takes the datagram into the window; why not, if it is refused.
    public mutating func admit(incarnation: UInt64, sequence: UInt64) -> SyncRejection? {
        if let refusal = refusal(incarnation: incarnation, sequence: sequence) { return refusal }
        if sequence > highest {
            let shift = sequence - highest
            seen = shift >= ReplayWindow.width ? 0 : seen << shift
            seen |= 1
            highest = sequence
        } else {
            seen |= 1 << (highest - sequence)
        }
        return nil
    }

    /// Admission of a data datagram (deltas, snapshot chunk): the incarnation is checked as for
    /// any datagram, but age and a second copy are not reasons to refuse it. A retransmission is
    /// the original datagram, so its sequence may lie far behind the window; what it carries is
    /// numbered by data sequence, and the inbox takes each data sequence once.
    public mutating func admitData(incarnation: UInt64, sequence: UInt64) -> SyncRejection? {
        let refusal = admit(incarnation: incarnation, sequence: sequence)
        return refusal == .unverifiedIncarnation ? refusal : nil
    }
}
