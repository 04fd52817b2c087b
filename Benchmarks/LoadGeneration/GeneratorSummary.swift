/// What the generator sent, in a form the comparison run reads back (JSON).
public struct GeneratorSummary: Codable, Sendable, Equatable {
    public var frames: UInt64
    public var seconds: Double
    /// Times the ring was full and the generator had to wait for the kernel to send.
    public var ringFullWaits: UInt64

    public init(frames: UInt64, seconds: Double, ringFullWaits: UInt64) {
        self.frames = frames
        self.seconds = seconds
        self.ringFullWaits = ringFullWaits
    }

    public var framesPerSecond: Double { seconds > 0 ? Double(frames) / seconds : 0 }
}
