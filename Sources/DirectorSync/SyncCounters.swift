/// What the sync session counts. Read by the daemon for `director stats`; written only by the
/// sync thread.
public struct SyncCounters: Sendable, Equatable {
    public var datagramsSent: UInt64 = 0
    public var datagramsReceived: UInt64 = 0
    public var recordsSent: UInt64 = 0
    public var recordsReceived: UInt64 = 0
    public var datagramsRetransmitted: UInt64 = 0
    /// NACKed data sequences no longer retained (the peer then asks for a snapshot).
    public var retransmissionsUnavailable: UInt64 = 0
    public var nacksSent: UInt64 = 0
    public var duplicatesIgnored: UInt64 = 0
    public var snapshotsRequested: UInt64 = 0
    public var snapshotsServed: UInt64 = 0
    public var snapshotsCompleted: UInt64 = 0
    public var peerDeaths: UInt64 = 0
    /// Deaths not declared: the peer's silence reached the window only across a pause of this
    /// dispatcher's own (`SyncEvent.ownPauseExcused`).
    public var ownPausesExcused: UInt64 = 0
    public var peerRestarts: UInt64 = 0
    public var handoversGiven: UInt64 = 0
    public var handoversTaken: UInt64 = 0
    /// Handovers this side could not carry out (its kernel filter refused the change).
    public var handoverFailures: UInt64 = 0
    /// Data sequences skipped for changes lost before the session (a worker's ring was full).
    public var sequencesSkipped: UInt64 = 0
    /// Requests that named buckets of this side's configured share (not honoured for those).
    public var requestsBeyondShare: UInt64 = 0
    public var rejected = [UInt64](repeating: 0, count: SyncRejection.allCases.count)

    public init() {}

    public subscript(rejected reason: SyncRejection) -> UInt64 {
        get { rejected[reason.rawValue] }
        set { rejected[reason.rawValue] = newValue }
    }

    /// Name and value of every counter, for the Prometheus text (`director_sync_<name>`).
    public var named: [(name: String, value: UInt64)] {
        [("datagrams_sent", datagramsSent), ("datagrams_received", datagramsReceived),
         ("records_sent", recordsSent), ("records_received", recordsReceived),
         ("datagrams_retransmitted", datagramsRetransmitted), ("retransmissions_unavailable", retransmissionsUnavailable),
         ("nacks_sent", nacksSent), ("duplicates_ignored", duplicatesIgnored),
         ("snapshots_requested", snapshotsRequested), ("snapshots_served", snapshotsServed),
         ("snapshots_completed", snapshotsCompleted),
         ("peer_deaths", peerDeaths), ("own_pauses_excused", ownPausesExcused), ("peer_restarts", peerRestarts),
         ("handovers_given", handoversGiven), ("handovers_taken", handoversTaken),
         ("handover_failures", handoverFailures), ("sequences_skipped", sequencesSkipped),
         ("requests_beyond_share", requestsBeyondShare)]
    }
}
