import DirectorWire

/// An open-addressed index from one family's (address, port, protocol) to a position: built
/// once with a snapshot, read per packet without locks or copies. Keys are plain integers (the
/// address as `FlowAddress.indexWords`), so a lookup compares words, never a generic value.
@usableFromInline
struct ServiceIndex: Sendable {
    @usableFromInline
    struct Key: Equatable, Sendable {
        @usableFromInline var first: UInt64
        @usableFromInline var second: UInt64
        @usableFromInline var portAndTransport: UInt32

        @inlinable @inline(__always)
        init<Address: FlowAddress>(address: Address, port: UInt16, transport: TransportProtocol) {
            (first, second) = address.indexWords
            portAndTransport = UInt32(port) << 8 | UInt32(transport.rawValue)
        }

        @inlinable @inline(__always)
        var slotHash: UInt64 {
            (first &* 0xC2B2_AE3D_27D4_EB4F) ^ second ^ UInt64(portAndTransport) << 40
        }

        @inlinable @inline(__always)
        static func == (left: Key, right: Key) -> Bool {
            left.first == right.first && left.second == right.second && left.portAndTransport == right.portAndTransport
        }
    }

    /// Slot → entry number; -1 = empty. Two to four times the entries, a power of two.
    @usableFromInline let slots: [Int32]
    @usableFromInline let keys: [Key]
    /// Entry number → the position it stands for.
    @usableFromInline let positions: [Int]

    init(_ entries: [(Key, Int)]) {
        var size = 16
        while size < entries.count * 4 { size *= 2 }
        var slots = [Int32](repeating: -1, count: size)
        for (number, entry) in entries.enumerated() {
            var slot = ServiceIndex.slot(entry.0, size: size)
            while slots[slot] >= 0 { slot = (slot + 1) & (size - 1) }
            slots[slot] = Int32(number)
        }
        self.slots = slots
        keys = entries.map(\.0)
        positions = entries.map(\.1)
    }

    @inlinable @inline(__always)
    static func slot(_ key: Key, size: Int) -> Int {
        Int(truncatingIfNeeded: (key.slotHash &* 0x9E37_79B9_7F4A_7C15) >> 40) & (size - 1)
    }

    @inlinable @inline(__always)
    func find(_ key: Key) -> Int? {
        findEntry(key)?.service
    }

    /// The position and the entry number of `key`.
    @inlinable @inline(__always)
    func findEntry(_ key: Key) -> (service: Int, entry: Int)? {
        var slot = ServiceIndex.slot(key, size: slots.count)
        while true {
            let entry = Int(slots[slot])
            if entry < 0 { return nil }
            if keys[entry] == key { return (positions[entry], entry) }
            slot = (slot + 1) & (slots.count - 1)
        }
    }
}
