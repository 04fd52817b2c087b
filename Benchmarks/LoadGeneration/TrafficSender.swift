import DirectorWire
import Foundation
import PacketIO

/// What a sender sends: frame n, written on demand and lent to the sender.
public protocol FrameSource {
    mutating func withFrame<Result>(_ n: UInt64, time: UInt64, _ body: (RawSpan) -> Result) -> Result
}

extension FrameSynthesizer: FrameSource {}

/// Sends a plan's frames (or any `FrameSource`'s) through a TPACKET TX ring, at a set rate or as
/// fast as the kernel takes them, until `count` frames or `seconds`, whichever comes first. The
/// one send loop of the benchmark generator and of the lab's floods.
public struct TrafficSender {
    public var count: UInt64
    /// Number of the first frame of the plan to send (to go on where an earlier run stopped).
    public var startAt: UInt64 = 0
    /// Frames per second; 0 = as fast as the ring drains.
    public var rate: Int
    public var seconds: Double
    /// A virtio header with hdr_len = frame length (the director's own transmit path).
    public var virtioHeader = true
    /// Print a line on standard error once a second.
    public var progress = false

    public init(count: UInt64, rate: Int, seconds: Double) {
        self.count = count
        self.rate = rate
        self.seconds = seconds
    }

    /// Why these bounds cannot be run, if they cannot.
    public var problem: String? {
        (1...1_000_000_000).contains(count) && seconds > 0 && seconds <= 3600 && rate >= 0
            ? nil : "count must be 1…1,000,000,000, seconds above 0 and at most 3600, rate at least 0"
    }

    public func send(_ plan: TrafficPlan, on interface: NetworkInterface) throws -> GeneratorSummary {
        var synthesizer = FrameSynthesizer(plan: plan)
        return try send(&synthesizer, on: interface)
    }

    public func send<Source: FrameSource>(_ synthesizer: inout Source, on interface: NetworkInterface) throws -> GeneratorSummary {
        // 4,096 slots: enough frames in flight for the kernel to send in large bursts; the ring
        // sizes its socket buffer to match.
        var geometry = TransmitRingGeometry()
        geometry.frameCount = 4096
        geometry.blockSize = 1 << 20
        var ring = try PacketTransmitRing(interface: interface, geometry: geometry, useVirtioHeader: virtioHeader)

        let start = TrafficSender.nanoseconds(CLOCK_MONOTONIC)
        let deadline = start + UInt64(seconds * 1e9)
        var sent: UInt64 = 0, ringFullWaits: UInt64 = 0
        var nextProgress = start + 1_000_000_000, sentAtLastProgress: UInt64 = 0
        var now = start
        while sent < count && now < deadline {
            // Frames due by now at the set rate; a burst of at most 256 between clock readings.
            let due = rate == 0 ? count : min(count, UInt64(Double(now - start) * Double(rate) / 1e9) + 1)
            let burstEnd = min(due, sent + 256)
            let time = TrafficSender.nanoseconds(CLOCK_REALTIME)
            while sent < burstEnd {
                guard synthesizer.withFrame(startAt + sent, time: time, { ring.enqueue($0) }) else {
                    ringFullWaits += 1
                    break
                }
                sent += 1
            }
            ring.flush()
            if sent >= due && rate != 0 { usleep(50) }
            if sent < burstEnd { sched_yield() }
            now = TrafficSender.nanoseconds(CLOCK_MONOTONIC)
            if progress && now >= nextProgress {
                let perSecond = Double(sent - sentAtLastProgress) * 1e9 / Double(now - nextProgress + 1_000_000_000)
                FileHandle.standardError.write(Data(String(format: "sent %llu frames, %.0f/s\n", sent, perSecond).utf8))
                sentAtLastProgress = sent
                nextProgress = now + 1_000_000_000
            }
        }
        ring.flush()
        return GeneratorSummary(frames: sent, seconds: Double(TrafficSender.nanoseconds(CLOCK_MONOTONIC) - start) / 1e9, ringFullWaits: ringFullWaits)
    }

    public static func nanoseconds(_ clock: clockid_t) -> UInt64 {
        var now = timespec()
        clock_gettime(clock, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}
