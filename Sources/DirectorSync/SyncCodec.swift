import Crypto
import DirectorCore
import DirectorWire

/// Writes and reads sync datagrams (layout in SyncWireFormat.swift), authenticated with
/// HMAC-SHA256 under the pair's shared key. Decoding checks every length before it reads and
/// the authenticator before it trusts anything; what fails becomes a `SyncRejection`.
public struct SyncCodec: Sendable {
    private let key: SymmetricKey

    /// The shared key of the pair, at least 16 bytes (RFC 2104 suggests the hash's output length).
    public init?(key: [UInt8]) {
        guard key.count >= 16 else { return nil }
        self.key = SymmetricKey(data: key)
    }

    // MARK: - Encoding

    public func encode(_ datagram: SyncDatagram) -> [UInt8] {
        var body = ByteWriter()
        switch datagram.body {
        case let .deltas(dataSequence, records):
            body.u64(dataSequence)
            body.u16(UInt16(records.count))
            body.u16(0)
            for record in records { body.record(record) }
        case let .heartbeat(announcement, challenge, echo):
            body.u64(announcement.ownershipVersion)
            body.u64(announcement.highestDataSequence)
            body.u16(announcement.bucketCount)
            body.u16(announcement.ownedBuckets)
            body.u32(0)
            body.u64(challenge)
            body.u64(echo)
        case let .ack(dataSequence):
            body.u64(dataSequence)
        case let .nack(missing):
            body.u16(UInt16(missing.count))
            body.zeros(6)
            for range in missing { body.u64(range.lowerBound); body.u64(range.upperBound) }
        case let .snapshotRequest(requestID):
            body.u64(requestID)
        case let .snapshotChunk(requestID, dataSequence, index, isLast, records):
            body.u64(requestID)
            body.u64(dataSequence)
            body.u32(index)
            body.u8(isLast ? SyncWireFormat.lastChunkFlag : 0)
            body.u8(0)
            body.u16(UInt16(records.count))
            for record in records { body.record(record) }
        case let .ownership(version, highestDataSequence, action, clientNextHop, ranges):
            body.u64(version)
            body.u64(highestDataSequence)
            body.u8(action.rawValue)
            body.u8(0)
            body.u16(UInt16(ranges.count))
            body.u32(0)
            body.u16(UInt16(truncatingIfNeeded: clientNextHop.rawValue >> 32))
            body.u32(UInt32(truncatingIfNeeded: clientNextHop.rawValue))
            body.u16(0)
            for range in ranges { body.u16(range.lowerBound); body.u16(range.upperBound) }
        case let .health(version, reports):
            body.u64(version)
            body.u16(UInt16(reports.count))
            body.zeros(6)
            for report in reports {
                body.u16(report.server.virtualPort)
                body.u8(report.server.transport.rawValue)
                body.u8(report.isUp ? SyncWireFormat.serverUp : SyncWireFormat.serverDown)
                body.u16(report.server.serverPort)
                body.u8(report.server.virtualAddress.isIPv6 ? SyncWireFormat.familyIPv6 : SyncWireFormat.familyIPv4)
                body.u8(0)
                body.address(report.server.virtualAddress)
                body.address(report.server.serverAddress)
            }
        }
        var out = ByteWriter()
        out.u16(SyncWireFormat.magic)
        out.u8(SyncWireFormat.version)
        out.u8(datagram.body.kind.rawValue)
        out.u8(datagram.header.nodeID)
        out.u8(datagram.header.flags)
        out.u16(UInt16(body.bytes.count))
        out.u64(datagram.header.incarnation)
        out.u64(datagram.header.sequence)
        out.u64(datagram.header.sentAt)
        out.bytes += body.bytes
        return authenticated(out.bytes)
    }

    /// `headerAndBody` with its authenticator appended: the last step of `encode`, public so
    /// that a test or a fuzzer can sign bytes `encode` would never write.
    public func authenticated(_ headerAndBody: [UInt8]) -> [UInt8] {
        headerAndBody + Array(HMAC<SHA256>.authenticationCode(for: headerAndBody, using: key))
    }

    // MARK: - Decoding

    public func decode(_ bytes: [UInt8]) throws(SyncRejection) -> SyncDatagram {
        let result: Result<SyncDatagram, SyncRejection> = bytes.withUnsafeBytes { buffer in
            Result { () throws(SyncRejection) in try decode(buffer.bytes, raw: buffer) }
        }
        return try result.get()
    }

    /// What the fixed header of `bytes` says, checked for everything but authenticity: the
    /// cheap tests a receiver applies before it pays for an HMAC. Nothing in it is to be trusted
    /// except to decide whether to authenticate.
    public func preview(_ bytes: [UInt8]) throws(SyncRejection) -> SyncPreview {
        let result: Result<SyncPreview, SyncRejection> = bytes.withUnsafeBytes { buffer in
            Result { () throws(SyncRejection) in try preview(buffer.bytes) }
        }
        return try result.get()
    }

    private func preview(_ data: RawSpan) throws(SyncRejection) -> SyncPreview {
        guard data.byteCount >= SyncWireFormat.headerLength + SyncWireFormat.authenticatorLength else { throw .truncated }
        guard data.byteCount <= SyncWireFormat.maximumDatagram else { throw .oversized }
        guard data.bigEndianUInt16(at: 0) == SyncWireFormat.magic else { throw .badMagic }
        guard data.byte(at: 2) == SyncWireFormat.version else { throw .unsupportedVersion }
        let bodyLength = Int(data.bigEndianUInt16(at: 6))
        guard SyncWireFormat.headerLength + bodyLength + SyncWireFormat.authenticatorLength == data.byteCount else { throw .lengthMismatch }
        guard let kind = SyncMessageKind(rawValue: data.byte(at: 3)) else { throw .unknownKind }
        if kind == .heartbeat, bodyLength != SyncWireFormat.heartbeatBodyLength { throw .malformedBody }
        let header = SyncHeader(nodeID: data.byte(at: 4), flags: data.byte(at: 5), incarnation: data.bigEndianUInt64(at: 8),
                                sequence: data.bigEndianUInt64(at: 16), sentAt: data.bigEndianUInt64(at: 24))
        let echo = kind == .heartbeat ? data.bigEndianUInt64(at: SyncWireFormat.heartbeatEchoOffset) : nil
        return SyncPreview(kind: kind, header: header, heartbeatEcho: echo)
    }

    private func decode(_ data: RawSpan, raw: UnsafeRawBufferPointer) throws(SyncRejection) -> SyncDatagram {
        let preview = try preview(data)
        let authenticated = data.byteCount - SyncWireFormat.authenticatorLength
        // Nothing beyond the fixed header's lengths is believed before the authenticator checks out.
        let code = UnsafeRawBufferPointer(rebasing: raw[authenticated...])
        guard HMAC<SHA256>.isValidAuthenticationCode(code, authenticating: UnsafeRawBufferPointer(rebasing: raw[..<authenticated]), using: key) else {
            throw .badAuthenticator
        }
        let kind = preview.kind, header = preview.header
        var body = ByteReader(Array(UnsafeRawBufferPointer(rebasing: raw[SyncWireFormat.headerLength..<authenticated])))
        let decoded: SyncBody
        switch kind {
        case .deltas:
            let dataSequence = try body.u64()
            let count = Int(try body.u16())
            try body.skip(2)
            decoded = .deltas(dataSequence: dataSequence, records: try body.records(count))
        case .heartbeat:
            let announcement = HeartbeatAnnouncement(ownershipVersion: try body.u64(), highestDataSequence: try body.u64(),
                                                     bucketCount: try body.u16(), ownedBuckets: try body.u16())
            try body.skip(4)
            decoded = .heartbeat(announcement, challenge: try body.u64(), echo: try body.u64())
        case .ack:
            decoded = .ack(dataSequence: try body.u64())
        case .nack:
            let count = Int(try body.u16())
            try body.skip(6)
            decoded = .nack(missing: try body.ranges(count) { reader throws(SyncRejection) in try reader.u64() })
        case .snapshotRequest:
            decoded = .snapshotRequest(requestID: try body.u64())
        case .snapshotChunk:
            let requestID = try body.u64(), dataSequence = try body.u64(), index = try body.u32()
            let chunkFlags = try body.u8()
            try body.skip(1)
            let records = Int(try body.u16())
            guard chunkFlags & ~SyncWireFormat.lastChunkFlag == 0 else { throw .malformedBody }
            decoded = .snapshotChunk(requestID: requestID, dataSequence: dataSequence, index: index,
                                     isLast: chunkFlags & SyncWireFormat.lastChunkFlag != 0, records: try body.records(records))
        case .ownership:
            let version = try body.u64(), highest = try body.u64()
            guard let action = OwnershipAction(rawValue: try body.u8()) else { throw .malformedBody }
            try body.skip(1)
            let count = Int(try body.u16())
            try body.skip(4)
            let nextHop = MACAddress(rawValue: UInt64(try body.u16()) << 32 | UInt64(try body.u32()))
            try body.skip(2)
            decoded = .ownership(version: version, highestDataSequence: highest, action: action, clientNextHop: nextHop,
                                 ranges: try body.ranges(count) { reader throws(SyncRejection) in try reader.u16() })
        case .health:
            let version = try body.u64()
            let count = Int(try body.u16())
            try body.skip(6)
            try body.need(count * SyncWireFormat.healthReportLength)
            var reports: [ServerHealthReport] = []
            reports.reserveCapacity(count)
            for _ in 0..<count {
                let virtualPort = try body.u16()
                guard let transport = TransportProtocol(rawValue: try body.u8()) else { throw .malformedBody }
                let state = try body.u8()
                guard state == SyncWireFormat.serverUp || state == SyncWireFormat.serverDown else { throw .malformedBody }
                let serverPort = try body.u16()
                let family = try body.u8()
                try body.skip(1)
                let virtualAddress = try body.address(family: family), serverAddress = try body.address(family: family)
                let server = HealthKey(virtualAddress: virtualAddress, virtualPort: virtualPort, transport: transport,
                                       serverAddress: serverAddress, serverPort: serverPort)
                reports.append(ServerHealthReport(server, isUp: state == SyncWireFormat.serverUp))
            }
            decoded = .health(version: version, reports: reports)
        }
        // Every byte of the body must have been accounted for.
        guard body.remaining == 0 else { throw .malformedBody }
        return SyncDatagram(header: header, body: decoded)
    }
}

/// A datagram's fixed header before authentication (see `SyncCodec.preview`).
public struct SyncPreview: Sendable {
    public var kind: SyncMessageKind
    public var header: SyncHeader
    /// A heartbeat's echo field; nil for other kinds.
    public var heartbeatEcho: UInt64?
}

/// Appends big-endian fields.
struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func u16(_ value: UInt16) { bytes += [UInt8(value >> 8), UInt8(value & 0xFF)] }
    mutating func u32(_ value: UInt32) { u16(UInt16(value >> 16)); u16(UInt16(value & 0xFFFF)) }
    mutating func u64(_ value: UInt64) { u32(UInt32(value >> 32)); u32(UInt32(value & 0xFFFF_FFFF)) }
    mutating func zeros(_ count: Int) { bytes += [UInt8](repeating: 0, count: count) }
    /// 16 bytes: an IPv6 address, or an IPv4 one in the first four and zeros after it.
    mutating func address(_ address: IPAddress) {
        switch address {
        case .v4(let address): u32(address.rawValue); zeros(12)
        case .v6(let address): u64(address.high); u64(address.low)
        }
    }

    mutating func record(_ record: SyncRecord) {
        u8(record.change.rawValue)
        u8(record.state.rawValue)
        u8(record.transport.rawValue)
        switch (record.clientAddress, record.virtualAddress, record.realServerAddress) {
        case let (.v6(client), .v6(virtual), .v6(server)):
            u8(record.flags | SyncWireFormat.ipv6RecordFlag)
            address(.v6(client))
            address(.v6(virtual))
            u16(record.clientPort)
            u16(record.virtualPort)
            address(.v6(server))
        default:
            // A record's addresses share a family (`SyncRecord.init` from an entry); IPv4 ones
            // go in the short layout.
            u8(record.flags & ~SyncWireFormat.ipv6RecordFlag)
            u32(record.clientAddress.v4?.rawValue ?? 0)
            u32(record.virtualAddress.v4?.rawValue ?? 0)
            u16(record.clientPort)
            u16(record.virtualPort)
            u32(record.realServerAddress.v4?.rawValue ?? 0)
        }
        u16(record.realServerPort)
        u16(0)
        u32(record.remainingLifetime)
        u32(0)
    }
}

/// Reads big-endian fields, checking that each is there first. (Off the data path: it owns a
/// copy of the body.)
struct ByteReader {
    let data: [UInt8]
    var offset = 0

    init(_ data: [UInt8]) { self.data = data }

    var remaining: Int { data.count - offset }

    func need(_ count: Int) throws(SyncRejection) {
        guard remaining >= count else { throw .malformedBody }
    }

    mutating func skip(_ count: Int) throws(SyncRejection) {
        try need(count)
        offset += count
    }

    /// A 16-byte address field of `family`; an IPv4 one with anything but zeros after its four
    /// bytes, or an unknown family, is malformed.
    mutating func address(family: UInt8) throws(SyncRejection) -> IPAddress {
        switch family {
        case SyncWireFormat.familyIPv4:
            let address = IPv4Address(rawValue: try u32())
            guard try u32() == 0, try u64() == 0 else { throw .malformedBody }
            return .v4(address)
        case SyncWireFormat.familyIPv6:
            return .v6(IPv6Address(high: try u64(), low: try u64()))
        default:
            throw .malformedBody
        }
    }

    mutating func u8() throws(SyncRejection) -> UInt8 {
        try need(1)
        defer { offset += 1 }
        return data[offset]
    }

    mutating func u16() throws(SyncRejection) -> UInt16 {
        UInt16(try u8()) << 8 | UInt16(try u8())
    }

    mutating func u32() throws(SyncRejection) -> UInt32 {
        UInt32(try u16()) << 16 | UInt32(try u16())
    }

    mutating func u64() throws(SyncRejection) -> UInt64 {
        UInt64(try u32()) << 32 | UInt64(try u32())
    }

    /// `count` closed ranges, each its first then its last bound as `bound` reads them; a range
    /// whose last bound is below its first is malformed.
    mutating func ranges<Bound: Comparable>(_ count: Int, _ bound: (inout ByteReader) throws(SyncRejection) -> Bound) throws(SyncRejection) -> [ClosedRange<Bound>] {
        var ranges: [ClosedRange<Bound>] = []
        for _ in 0..<count {
            let first = try bound(&self), last = try bound(&self)
            guard first <= last else { throw .malformedBody }
            ranges.append(first...last)
        }
        return ranges
    }

    /// `count` records, each 32 bytes or (flag 0x80) 68, filling the rest of the body exactly.
    mutating func records(_ count: Int) throws(SyncRejection) -> [SyncRecord] {
        guard count * SyncWireFormat.recordLength <= remaining else { throw .malformedBody }
        var records: [SyncRecord] = []
        records.reserveCapacity(count)
        for _ in 0..<count {
            guard let change = SyncRecord.Change(rawValue: try u8()),
                  let state = ConnectionState(rawValue: try u8()),
                  let transport = TransportProtocol(rawValue: try u8()) else { throw .malformedBody }
            let flags = try u8()
            let client: IPAddress, virtual: IPAddress, server: IPAddress
            let clientPort: UInt16, virtualPort: UInt16
            if flags & SyncWireFormat.ipv6RecordFlag != 0 {
                client = try address(family: SyncWireFormat.familyIPv6)
                virtual = try address(family: SyncWireFormat.familyIPv6)
                clientPort = try u16()
                virtualPort = try u16()
                server = try address(family: SyncWireFormat.familyIPv6)
            } else {
                client = .v4(IPv4Address(rawValue: try u32()))
                virtual = .v4(IPv4Address(rawValue: try u32()))
                clientPort = try u16()
                virtualPort = try u16()
                server = .v4(IPv4Address(rawValue: try u32()))
            }
            let serverPort = try u16()
            try skip(2)
            let lifetime = try u32()
            try skip(4)
            records.append(SyncRecord(change: change, state: state, transport: transport, flags: flags & ~SyncWireFormat.ipv6RecordFlag,
                                      clientAddress: client, clientPort: clientPort, virtualAddress: virtual, virtualPort: virtualPort,
                                      realServerAddress: server, realServerPort: serverPort, remainingLifetime: lifetime))
        }
        guard remaining == 0 else { throw .malformedBody }
        return records
    }
}
