import Foundation

/// How much of a CPU's (or the machine's) time was busy between two readings.
///
/// Busy time is wall time less idle, iowait and steal, not the sum of /proc/stat's busy fields:
/// with a tick-accounted kernel (CONFIG_TICK_CPU_ACCOUNTING) the busy fields are samples taken
/// at each timer tick, and work that comes in short bursts between idle periods (a NAPI thread
/// at a moderate packet rate) is under- or over-counted, while idle time under NO_HZ is measured
/// on every entry and exit.
public struct CPUTime: Sendable {
    /// CLOCK_MONOTONIC nanoseconds at the reading.
    public let takenAt: UInt64
    /// Idle, iowait and steal time, nanoseconds (USER_HZ resolution).
    public let unavailable: UInt64
    /// CPUs the reading covers.
    public let cpuCount: Int

    /// Reads one CPU, or the whole machine when `cpu` is nil.
    public init(cpu: Int? = nil) throws {
        let label = cpu.map { "cpu\($0) " } ?? "cpu "
        let lines = try String(contentsOfFile: "/proc/stat", encoding: .utf8).split(separator: "\n")
        guard let line = lines.first(where: { $0.hasPrefix(label) }) else {
            throw LabDirector.LabError(description: "/proc/stat has no line \"\(label)\"")
        }
        takenAt = Lab.monotonicNanoseconds()
        // user nice system idle iowait irq softirq steal …
        let fields = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
        guard fields.count >= 5 else { throw LabDirector.LabError(description: "/proc/stat: too few fields in \"\(line)\"") }
        let ticks = fields[3] + fields[4] + (fields.count > 7 ? fields[7] : 0)
        unavailable = ticks * 1_000_000_000 / UInt64(sysconf(Int32(_SC_CLK_TCK)))
        cpuCount = cpu == nil ? lines.filter { $0.hasPrefix("cpu") && !$0.hasPrefix("cpu ") }.count : 1
    }

    /// Busy nanoseconds from `earlier` to this reading.
    public func busyNanoseconds(since earlier: CPUTime) -> UInt64 {
        let wall = (takenAt - earlier.takenAt) * UInt64(cpuCount)
        let idle = unavailable - earlier.unavailable
        return wall > idle ? wall - idle : 0
    }
}
