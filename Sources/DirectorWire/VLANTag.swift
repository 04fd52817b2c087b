/// An 802.1Q (or 802.1ad) tag the kernel took out of a received frame and kept beside it (the
/// receive ring's TP_STATUS_VLAN_VALID): the frame's bytes arrive untagged, and a frame
/// forwarded from it must leave with the tag put back. Raw value: TPID << 16 | TCI; zero when the
/// frame had no tag (no TPID is zero).
public struct VLANTag: Equatable, Sendable {
    public let rawValue: UInt32

    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }

    @inlinable public init(protocolIdentifier: UInt16, controlInformation: UInt16) {
        rawValue = UInt32(protocolIdentifier) << 16 | UInt32(controlInformation)
    }

    public static let none = VLANTag(rawValue: 0)
    /// Bytes a tag takes in a frame: TPID and TCI, after the two MAC addresses.
    public static let length = EthernetHeader.vlanTagLength
    /// Where it goes: after the destination and source MACs (where the EtherType was).
    public static let offset = EthernetHeader.etherTypeOffset

    @inlinable public var isPresent: Bool { rawValue != 0 }
    @inlinable public var protocolIdentifier: UInt16 { UInt16(truncatingIfNeeded: rawValue >> 16) }
    @inlinable public var controlInformation: UInt16 { UInt16(truncatingIfNeeded: rawValue) }

    /// Copies `frame` (untagged, at least the two MACs long) to `destination` with `tag` after
    /// its MACs: `frame.count + 4` bytes.
    @inlinable
    public static func insert(_ tag: VLANTag, copying frame: UnsafeRawBufferPointer, into destination: UnsafeMutableRawPointer) {
        destination.copyMemory(from: frame.baseAddress!, byteCount: offset)
        destination.storeBytes(of: tag.protocolIdentifier.bigEndian, toByteOffset: offset, as: UInt16.self)
        destination.storeBytes(of: tag.controlInformation.bigEndian, toByteOffset: offset + 2, as: UInt16.self)
        (destination + offset + length).copyMemory(from: frame.baseAddress! + offset, byteCount: frame.count - offset)
    }
}
