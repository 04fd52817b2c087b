// The connection-sync wire format, version 1: one UDP datagram on the crossover link.
//
// Every field is big-endian. A datagram is a header, a body whose layout depends on the kind,
// and an HMAC-SHA256 over header and body under the pair's shared key.
//
//      0               1               2               3
//      0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7
//     +-------------------------------+---------------+---------------+
//   0 |          magic "DS"           |  version (1)  |     kind      |
//     +---------------+---------------+---------------+---------------+
//   4 |    node id    |     flags     |          body length          |
//     +---------------+---------------+-------------------------------+
//   8 |                 incarnation (random at each start)            |
//     |                                                               |
//     +---------------------------------------------------------------+
//  16 |       datagram sequence (every datagram; anti-replay)         |
//     |                                                               |
//     +---------------------------------------------------------------+
//  24 |           sent at (sender's CLOCK_REALTIME, ns)               |
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
//   1 deltas          data sequence (8) | record count (2) | reserved (2) | records (32 each)
//   2 heartbeat       ownership version (8) | highest data sequence sent (8) |
//                     bucket count (2) | owned buckets (2) | reserved (4)
//   3 ack             data sequence received in order, inclusive (8)
//   4 nack            range count (2) | reserved (6) | ranges: first (8), last (8) data sequences
//   5 snapshot request   request id (8)
//   6 snapshot chunk  request id (8) | chunk index (4) | chunk count (4) |
//                     record count (2) | reserved (6) | records (32 each)
//   7 ownership       ownership version (8) | action (1) | reserved (1) | range count (2) |
//                     reserved (4) | ranges: first bucket (2), last bucket (2)
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
// The real server travels as its address and port, not as the sender's internal id, so the two
// dispatchers need not number their real servers alike. The lifetime is relative: the two hosts'
// monotonic clocks are unrelated.
//
// The largest datagram fits a 1,500-byte path MTU: 1,472 bytes of UDP payload leave 1,408 for a
// body, 43 records a deltas datagram.

/// Layout constants of version 1.
public enum SyncWireFormat {
    public static let magic: UInt16 = 0x4453          // "DS"
    public static let version: UInt8 = 1
    public static let headerLength = 32
    public static let authenticatorLength = 32
    public static let recordLength = 32
    public static let maximumDatagram = 1472
    public static let maximumBody = maximumDatagram - headerLength - authenticatorLength
    /// Records that fit one deltas datagram.
    public static let recordsPerDatagram = (maximumBody - 12) / recordLength
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
}
