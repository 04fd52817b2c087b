/// Reads a fuzzer's input as a sequence of chunks: a control byte, a two-byte big-endian length,
/// then that many bytes (fewer when the input ends first). The control byte's meaning belongs to
/// the harness; the fuzzer learns it from the seeds.
struct FuzzInput {
    private let bytes: UnsafeRawBufferPointer
    private var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    struct Chunk {
        let control: UInt8
        let body: UnsafeRawBufferPointer
    }

    mutating func next() -> Chunk? {
        guard bytes.count - offset >= 3 else { return nil }
        let control = bytes[offset]
        let length = min(Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]), bytes.count - offset - 3)
        let body = UnsafeRawBufferPointer(rebasing: bytes[(offset + 3)..<(offset + 3 + length)])
        offset += 3 + length
        return Chunk(control: control, body: body)
    }

    /// Writes chunks in the same format: how seeds are made.
    static func encode(_ chunks: [(control: UInt8, body: [UInt8])]) -> [UInt8] {
        chunks.flatMap { [$0.control, UInt8(truncatingIfNeeded: $0.body.count >> 8), UInt8(truncatingIfNeeded: $0.body.count)] + $0.body }
    }
}
