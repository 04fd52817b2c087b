// The connection-sync wire format, version 5: one UDP datagram on the crossover link.
//
// Every field is big-endian. A datagram is a header, a body whose layout depends on the kind,
// and an HMAC-SHA256 over header and body under the pair's shared key.
//
//      0               1               2               3
//      0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7
//     +-------------------------------+---------------+---------------+
//   0 |          magic "DS"           |  version (5)  |     kind      |
//     +---------------+---------------+---------------+---------------+
//   4 |    node id    |     flags     |          body length          |
//     +---------------+---------------+-------------------------------+
//   8 |                 incarnation (random at each start)            |
//     |                                                               |
//     +---------------------------------------------------------------+
//  16 |       datagram sequence (every datagram; anti-replay)         |
//     |                                                               |
//     +---------------------------------------------------------------+
//  24 |     sent at (sender's CLOCK_REALTIME, ns; see below)          |
//     |                                                               |
//     +---------------------------------------------------------------+
//  32 |                 body (body length bytes)                      |
//     +---------------------------------------------------------------+
//     |                 HMAC-SHA256 of bytes 0 ..< 32 + body length   |
//     |                            (32 bytes)                         |
//     +---------------------------------------------------------------+
//
// Bodies by kind:
//
//   1 deltas          data sequence (8) | record count (2) | reserved (2) | records (32 or 68 each)
//   2 heartbeat       ownership version (8) | highest data sequence sent (8) |
//                     bucket count (2) | owned buckets (2) | reserved (4) |
//                     challenge (8) | echo (8)
//   3 ack             data sequence received in order, inclusive (8)
//   4 nack            range count (2) | reserved (6) | ranges: first (8), last (8) data sequences
//   5 snapshot request   request id (8)
//   6 snapshot chunk  request id (8) | data sequence (8) | chunk index (4) |
//                     flags (1; 0x01 = last chunk) | reserved (1) | record count (2) |
//                     records (32 or 68 each)
//   7 ownership       ownership version (8) | highest data sequence sent (8) | action (1) |
//                     reserved (1) | range count (2) | reserved (4) |
//                     clients' next hop: MAC (6) | reserved (2) |
//                     ranges: first bucket (2), last bucket (2)
//   8 health          report version (8) | report count (2) | reserved (6) |
//                     reports (40 each): virtual port (2), protocol (1),
//                     state (1; 1 = up, 2 = down), real server port (2),
//                     family (1; 4 = IPv4, 6 = IPv6), reserved (1),
//                     virtual address (16), real server address (16)
//
// An address field of 16 bytes holds an IPv6 address, or an IPv4 one in its first four bytes
// followed by zeros; the family byte says which (a service and its servers share one family).
//
// Two channels, two sockets: heartbeats travel alone on the liveness port (sync port + 1 by
// default), every other kind on the sync port. A heartbeat never waits behind a snapshot in a
// socket queue or a busy sync thread, so a loaded dispatcher is never mistaken for a dead one.
// Each channel numbers its datagrams and keeps its own replay window; a datagram of one kind on
// the other channel is refused (`wrong_channel`), so a capture replayed across cannot move either
// window. An ownership message carries the sender's highest data sequence: a receiver takes
// released buckets only once every record sent before the release has arrived. It also carries
// the MAC the sender's client frames come from (the next hop towards the clients; zero if none
// yet): the taker of buckets sends its ACK probes there before it has seen a client frame itself.
//
// Incarnations are random, so their order means nothing: a receiver believes a new incarnation
// of its peer only once a heartbeat of it echoes the challenge the receiver's own heartbeats
// carry (a nonce drawn at start and again after every incarnation it believes). Each side
// echoes the challenge of the latest authentic heartbeat it heard, whether or not it believes
// that incarnation yet, so two fresh dispatchers believe each other within two heartbeats. A
// capture replayed from an earlier life echoes an old nonce and is never believed: it cannot
// bring a dead peer back to life, at start or later, nor stop a takeover; and a restart after
// the clock was stepped back is a restart like any other. Before the authenticator is computed,
// a datagram is held to what a blind forger cannot know: on either channel its incarnation must
// be the believed one (and, for all but data datagrams, its sequence new to the replay window);
// an unbelieved incarnation's heartbeat must echo the current challenge, or fit a small budget
// of checks per second (the one way to learn a restarted peer's challenge). A flood of forged
// datagrams thus costs a read and a comparison each, not an HMAC.
//
// Deltas and snapshot chunks share one data sequence (1, 2, 3, … per incarnation), so a gap is
// NACKed and retransmitted the same way for both. A retransmission is the original datagram,
// byte for byte (it is kept, not signed again); the receiver's replay window does not refuse a
// data datagram for its age, since the data sequence already makes a second copy harmless. A
// data sequence the sender skips (a change lost to a full worker ring) is never retransmitted:
// the receiver's repair then ends in a snapshot. "Sent at" of a deltas datagram is the time of the
// oldest change it carries, so the receiver can measure replica lag end to end (to the extent
// the two hosts' clocks agree); for every other kind it is the time of sending.
//
// A record (32 bytes) describes one connection as its owner sees it:
//
//      0       1       2       3       4                               8
//     +-------+-------+-------+-------+-------------------------------+
//     |change | state | proto | flags |        client address         |
//     +-------+-------+-------+-------+-------------------------------+
//   8 |        virtual address        |  client port  | virtual port  |
//     +-------------------------------+---------------+---------------+
//  16 |      real server address      | real srv port |   reserved    |
//     +-------------------------------+---------------+---------------+
//  24 |  remaining lifetime (ms)      |           reserved            |
//     +-------------------------------+-------------------------------+
//
// An IPv6 connection's record (68 bytes) has the same first four bytes, flag 0x80 set, then:
//
//      4 client address (16) | 20 virtual address (16) | 36 client port (2) | 38 virtual port (2) |
//     40 real server address (16) | 56 real server port (2) | 58 reserved (2) |
//     60 remaining lifetime (ms) (4) | 64 reserved (4)
//
// Record flags: 0x01 = the sender holds this connection as a replica itself (snapshots only);
// 0x02 = the client proved the connection real (data after the handshake, a second datagram);
// 0x80 = an IPv6 record (every address in it is IPv6).
// Records of kind "created" claim the flow: the sender carries it now (it is new, or the sender
// took it over), so a receiver that still had it as its own demotes its entry to a replica.
// The lifetime a sender writes includes a margin of half the state's timeout, the longest a
// busy flow goes without a refresh: the replica outlives the owner's entry, never the reverse.
//
// The real server travels as its address and port, not as the sender's internal id, so the two
// dispatchers need not number their real servers alike. The lifetime is relative: the two hosts'
// monotonic clocks are unrelated.
//
// The largest datagram fits a 1,500-byte path MTU: 1,472 bytes of UDP payload leave 1,408 for a
// body, 1,384 for the records of a deltas datagram or snapshot chunk: 43 IPv4 ones, 20 IPv6
// ones, or a mix.

/// Layout constants of version 5.
public enum SyncWireFormat {
    public static let magic: UInt16 = 0x4453          // "DS"
    public static let version: UInt8 = 5
    public static let headerLength = 32
    public static let authenticatorLength = 32
    public static let recordLength = 32
    public static let ipv6RecordLength = 68
    public static let maximumDatagram = 1472
    public static let maximumBody = maximumDatagram - headerLength - authenticatorLength
    /// Bytes of records one deltas datagram or snapshot chunk carries.
    public static let recordBytesPerDatagram = maximumBody - 24
    /// IPv4 records that fit one deltas datagram.
    public static let recordsPerDatagram = recordBytesPerDatagram / recordLength
    /// NACK ranges that fit one datagram.
    public static let rangesPerNack = (maximumBody - 8) / 16
    /// Bucket ranges that fit one ownership message.
    public static let rangesPerOwnershipMessage = (maximumBody - 32) / 4
    public static let healthReportLength = 40
    /// Address families of health reports.
    public static let familyIPv4: UInt8 = 4
    public static let familyIPv6: UInt8 = 6
    /// Server health reports that fit one health message.
    public static let healthReportsPerMessage = (maximumBody - 16) / healthReportLength
    /// Where a heartbeat's echo field lies in the datagram (read before authentication only to
    /// choose whether to authenticate).
    public static let heartbeatEchoOffset = headerLength + 32
    public static let heartbeatBodyLength = 40
    /// Snapshot chunk flags.
    public static let lastChunkFlag: UInt8 = 0x01
    /// Health report states.
    public static let serverUp: UInt8 = 1
    public static let serverDown: UInt8 = 2
    /// Record flags.
    public static let replicaRecordFlag: UInt8 = 0x01
    /// The client proved the connection real (`ConnectionEntry.isProven`).
    public static let provenRecordFlag: UInt8 = 0x02
    /// The record is an IPv6 one (68 bytes).
    public static let ipv6RecordFlag: UInt8 = 0x80
}

/// What a datagram's kind byte says.
public enum SyncMessageKind: UInt8, Sendable, CaseIterable {
    case deltas = 1
    case heartbeat = 2
    case ack = 3
    case nack = 4
    case snapshotRequest = 5
    case snapshotChunk = 6
    case ownership = 7
    case health = 8

    /// Whether datagrams of this kind travel on the liveness channel (else the sync channel).
    public var isLiveness: Bool { self == .heartbeat }
    /// Whether the kind carries numbered records (the inbox dedupes them by data sequence).
    public var isData: Bool { self == .deltas || self == .snapshotChunk }
}
