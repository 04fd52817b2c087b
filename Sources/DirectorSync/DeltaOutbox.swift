/// The sending half of the record stream: packs records into deltas datagrams and snapshot
/// chunks, numbers them with the data sequence, and keeps the last `retention` of them, as the
/// signed bytes that went out, so a NACK is answered by sending them again: no encoding, no
/// authenticator computed a second time. Records wait at most until the next `flush` (the sync
/// thread calls it within its flush delay); a full datagram's worth leaves at once.
public struct DeltaOutbox: Sendable {
    /// A numbered body ready to send, with the wall-clock time of its oldest change.
    public struct Numbered: Equatable, Sendable {
        public var dataSequence: UInt64
        public var body: SyncBody
        public var oldestChange: UInt64
    }

    public let retention: Int
    /// The last data sequence handed out (0: none yet).
    public private(set) var highestDataSequence: UInt64 = 0
    /// The datagrams as sent, by data sequence modulo `retention`.
    private var retained: [[UInt8]?]

    private var pendingDeltas: [SyncRecord] = []
    private var pendingDeltasBytes = 0
    private var pendingDeltasOldest: UInt64 = 0
    private var pendingChunk: [SyncRecord] = []
    private var pendingChunkBytes = 0
    private var chunkRequest: UInt64?
    private var chunkIndex: UInt32 = 0

    public init(retention: Int) {
        self.retention = max(1, retention)
        retained = Array(repeating: nil, count: self.retention)
    }

    /// Whether records are waiting for `flush`.
    public var hasPending: Bool { !pendingDeltas.isEmpty || !pendingChunk.isEmpty }

    /// Adds a change that happened at wall-clock time `changedAt`. Returns a full datagram: the
    /// pending ones when this record does not fit beside them, or these with it when no other
    /// record would (records are 32 or 68 bytes, so at most one datagram per call).
    public mutating func append(_ record: SyncRecord, changedAt: UInt64) -> Numbered? {
        var full: Numbered?
        if pendingDeltasBytes + record.wireLength > SyncWireFormat.recordBytesPerDatagram { full = takeDeltas() }
        if pendingDeltas.isEmpty || changedAt < pendingDeltasOldest { pendingDeltasOldest = changedAt }
        pendingDeltas.append(record)
        pendingDeltasBytes += record.wireLength
        if full == nil, SyncWireFormat.recordBytesPerDatagram - pendingDeltasBytes < SyncWireFormat.recordLength { full = takeDeltas() }
        return full
    }

    /// Adds an entry of the snapshot answering `requestID` (a newer request abandons an older
    /// one's unsent part). Returns a full chunk, as `append` does.
    public mutating func appendSnapshot(_ record: SyncRecord, requestID: UInt64, now: UInt64) -> Numbered? {
        if chunkRequest != requestID {
            chunkRequest = requestID
            chunkIndex = 0
            pendingChunk.removeAll(keepingCapacity: true)
            pendingChunkBytes = 0
        }
        var full: Numbered?
        if pendingChunkBytes + record.wireLength > SyncWireFormat.recordBytesPerDatagram { full = takeChunk(isLast: false, now: now) }
        pendingChunk.append(record)
        pendingChunkBytes += record.wireLength
        if full == nil, SyncWireFormat.recordBytesPerDatagram - pendingChunkBytes < SyncWireFormat.recordLength {
            full = takeChunk(isLast: false, now: now)
        }
        return full
    }

    /// Ends the snapshot answering `requestID` with its last chunk (possibly empty).
    public mutating func finishSnapshot(requestID: UInt64, now: UInt64) -> Numbered {
        if chunkRequest != requestID {
            chunkRequest = requestID
            chunkIndex = 0
            pendingChunk.removeAll(keepingCapacity: true)
            pendingChunkBytes = 0
        }
        defer { chunkRequest = nil }
        return takeChunk(isLast: true, now: now)
    }

    /// Everything pending, as datagrams (deltas first: they are older).
    public mutating func flush(now: UInt64) -> [Numbered] {
        var out: [Numbered] = []
        if !pendingDeltas.isEmpty { out.append(takeDeltas()) }
        if !pendingChunk.isEmpty { out.append(takeChunk(isLast: false, now: now)) }
        return out
    }

    /// Keeps the bytes sent for `dataSequence`, for retransmission.
    public mutating func keep(_ datagram: [UInt8], for dataSequence: UInt64) {
        guard isRetained(dataSequence) else { return }
        retained[slot(dataSequence)] = datagram
    }

    /// The bytes sent for `dataSequence`, if they are still kept.
    public func retransmission(of dataSequence: UInt64) -> [UInt8]? {
        isRetained(dataSequence) ? retained[slot(dataSequence)] : nil
    }

    /// Skips a data sequence: changes were lost before they reached the outbox (a worker's ring
    /// was full). Nothing is kept under the number, so the peer's repair of the gap ends in a
    /// snapshot, which carries what was lost.
    public mutating func skip() {
        highestDataSequence += 1
        retained[slot(highestDataSequence)] = nil
    }

    private func isRetained(_ dataSequence: UInt64) -> Bool {
        dataSequence >= 1 && dataSequence <= highestDataSequence && highestDataSequence - dataSequence < UInt64(retention)
    }

    private func slot(_ dataSequence: UInt64) -> Int { Int(dataSequence % UInt64(retention)) }

    private mutating func takeDeltas() -> Numbered {
        highestDataSequence += 1
        let numbered = Numbered(dataSequence: highestDataSequence, body: .deltas(dataSequence: highestDataSequence, records: pendingDeltas),
                                oldestChange: pendingDeltasOldest)
        pendingDeltas.removeAll(keepingCapacity: true)
        pendingDeltasBytes = 0
        retained[slot(highestDataSequence)] = nil
        return numbered
    }

    private mutating func takeChunk(isLast: Bool, now: UInt64) -> Numbered {
        highestDataSequence += 1
        let numbered = Numbered(dataSequence: highestDataSequence,
                                body: .snapshotChunk(requestID: chunkRequest ?? 0, dataSequence: highestDataSequence, index: chunkIndex,
                                                     isLast: isLast, records: pendingChunk), oldestChange: now)
        chunkIndex += 1
        pendingChunk.removeAll(keepingCapacity: true)
        pendingChunkBytes = 0
        // Until `keep` stores the bytes, nothing stale answers a NACK for this number.
        retained[slot(highestDataSequence)] = nil
        return numbered
    }
}
