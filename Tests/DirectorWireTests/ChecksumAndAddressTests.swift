import DirectorWire
import Testing

@Suite("Checksums and addresses")
struct ChecksumAndAddressTests {
    @Test("RFC 1071 example sum")
    func rfc1071() {
        let bytes: [UInt8] = [0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7]
        #expect(bytes.withUnsafeBytes { InternetChecksum.sum($0.bytes) } == 0xDDF2)
    }

    @Test("incremental update (RFC 1624) equals a full recomputation")
    func incremental() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            var header = (0..<20).map { _ in UInt8.random(in: 0...255, using: &generator) }
            header[10] = 0; header[11] = 0
            let original = header.withUnsafeBytes { InternetChecksum.checksum($0.bytes) }
            let old = UInt32(header[12]) << 24 | UInt32(header[13]) << 16 | UInt32(header[14]) << 8 | UInt32(header[15])
            let new = UInt32.random(in: 0...UInt32.max, using: &generator)
            header[12] = UInt8(new >> 24); header[13] = UInt8((new >> 16) & 0xFF); header[14] = UInt8((new >> 8) & 0xFF); header[15] = UInt8(new & 0xFF)
            let recomputed = header.withUnsafeBytes { InternetChecksum.checksum($0.bytes) }
            let updated = InternetChecksum.updated(original, replacing: old, with: new)
            // 0x0000 and 0xFFFF are the same value in one's complement.
            #expect(updated == recomputed || (updated == 0xFFFF && recomputed == 0) || (updated == 0 && recomputed == 0xFFFF))
        }
    }

    @Test("a built frame's IPv4 header checksum verifies")
    func builtChecksum() {
        let frame = PacketBuilder().tcp(sourcePort: 1, destinationPort: 2, flags: .ack).build()
        #expect(frame.withUnsafeBytes { InternetChecksum.sum(RawSpan(_unsafeBytes: UnsafeRawBufferPointer(rebasing: $0[14..<34]))) } == 0xFFFF)
    }

    @Test("address text round trips and rejects junk")
    func addresses() {
        #expect(IPv4Address("198.18.0.100")?.description == "198.18.0.100")
        for bad in ["198.18.0", "198.18.0.256", "a.b.c.d", "198.18.0.01", "", "1.2.3.4.5", " 1.2.3.4", "+1.2.3.4", "1.2.3.-0", "1.2.3.4٣"] {
            #expect(IPv4Address(bad) == nil, "\(bad)")
        }
        #expect(MACAddress("02:AB:cd:00:00:01")?.description == "02:ab:cd:00:00:01")
        for bad in ["02:ab:cd:00:00", "02:ab:cd:00:00:zz", "02ab:cd:00:00:01:00", "02:+1:cd:00:00:01", "02:-0:cd:00:00:01"] {
            #expect(MACAddress(bad) == nil, "\(bad)")
        }
        #expect(MACAddress.broadcast.isGroup && !MACAddress("02:00:00:00:00:01")!.isGroup)
    }
}

@Suite("Completing an offloaded checksum")
struct PartialChecksumTests {
    @Test("a TCP checksum left partial (pseudo-header sum only) is completed to the full checksum", arguments: [0, 1, 17, 1000])
    func completes(payloadLength: Int) {
        let builder = PacketBuilder().tcp(sourcePort: 40000, destinationPort: 80, flags: [.ack, .psh]).payload((0..<payloadLength).map { UInt8($0 & 0xFF) })
        let full = builder.build()
        var partial = builder.with { $0.transportChecksumLeftToOffload = true }.build()
        #expect(partial != full && partial.count == full.count)
        partial.withUnsafeMutableBytes { buffer in
            var span = buffer.mutableBytes
            InternetChecksum.complete(&span, start: 34, fieldOffset: 16, end: full.count)
        }
        #expect(partial == full)
    }
}

@Suite("IPv6 addresses")
struct IPv6AddressTests {
    /// Text in, canonical text out (RFC 5952); nil: refused.
    static let fixtures: [(text: String, canonical: String?)] = [
        ("2001:2::1:10", "2001:2::1:10"),
        ("2001:0002:0000:0000:0000:0000:0001:0010", "2001:2::1:10"),
        ("::", "::"),
        ("::1", "::1"),
        ("1::", "1::"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),     // the first of equal runs
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),   // one zero group stays
        ("2001:DB8::A", "2001:db8::a"),
        ("::ffff:198.18.0.100", "::ffff:c612:64"),
        ("fe80::1:2:3:4:5:6", "fe80:0:1:2:3:4:5:6"),
        ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
        ("", nil), (":", nil), (":::", nil), ("1::2::3", nil), ("1:2:3:4:5:6:7", nil), ("1:2:3:4:5:6:7:8:9", nil),
        ("12345::", nil), ("g::", nil), ("1:2:3:4:5:6:7::8", nil), ("::198.18.0", nil), ("198.18.0.1::", nil),
        ("fe80::1%eth0", nil), ("2001:2::/48", nil), (" ::1", nil), ("+1::", nil), ("::-0", nil), ("1:2:3:4:5:6:7:+8", nil),
    ]

    @Test("text parses to the canonical form, or is refused")
    func parsing() {
        for fixture in IPv6AddressTests.fixtures {
            #expect(IPv6Address(fixture.text)?.description == fixture.canonical, "\(fixture.text)")
        }
    }

    @Test("words, octets, order, multicast mappings")
    func parts() throws {
        let address = try #require(IPv6Address("2001:2::1:10"))
        #expect(address.words == (0x2001_0002, 0, 0, 0x0001_0010))
        #expect(address.octets == [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0x10])
        #expect(try #require(IPv6Address("2001:2::1:f")) < address && address < IPv6Address("2001:2::2:0")!)
        #expect(address.solicitedNodeMulticast.description == "ff02::1:ff01:10")
        #expect(address.solicitedNodeMulticast.multicastMAC.description == "33:33:ff:01:00:10")
        #expect(address.solicitedNodeMulticast.isMulticast && !address.isMulticast)
    }
}
