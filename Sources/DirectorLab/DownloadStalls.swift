import Foundation

/// Watches the downloads from the client's side: captures the data segments the real servers
/// send to the clients (source VIP, port 80) and, afterwards, measures per download the longest
/// time between two of them: the stall a client saw.
public final class DownloadStalls: @unchecked Sendable {
    private let lab: Lab
    private let path: String
    private var pid: pid_t?

    /// Starts tcpdump in the client namespace.
    public init(lab: Lab) throws {
        self.lab = lab
        path = "\(lab.stateDirectory)/downloads.pcap"
        try? FileManager.default.removeItem(atPath: path)
        pid = try Shell.spawn(["ip", "netns", "exec", lab.clientNamespace, "tcpdump", "-i", "eth0", "-s", "64", "-U", "-n", "-w", path,
                               "tcp and (\(lab.dualStack ? "src host \(Lab.virtualAddress) or src host \(Lab.virtualAddress6)" : "src host \(Lab.virtualAddress)")) and src port 80 and greater 200"],
                              output: "\(lab.stateDirectory)/tcpdump.log")
        // tcpdump needs a moment before it captures.
        for _ in 0..<50 where !FileManager.default.fileExists(atPath: path) { usleep(20_000) }
        usleep(200_000)
    }

    /// The capture's figures: per flow the longest gap, and the longest gap spanning `event`.
    public struct Figures: Sendable {
        public var flows = 0
        /// The longest gap between two data segments of one download, over all downloads (ms).
        public var longestStall = 0.0
        /// When the longest stall began, in seconds after the event (negative: before it).
        public var longestStallStart = 0.0
        /// The longest gap that spans the event (the kill or the cut), over all downloads (ms).
        public var longestStallAcrossEvent = 0.0
        /// The longest gap of any download before the event, for comparison: the downloads'
        /// own rhythm under `--limit-rate` (ms).
        public var longestStallBeforeEvent = 0.0
        /// Per download, the gap spanning the event, ascending (ms).
        public var gapsAcrossEvent: [Double] = []

        public func percentileAcrossEvent(_ fraction: Double) -> Double {
            gapsAcrossEvent.isEmpty ? 0 : gapsAcrossEvent[min(gapsAcrossEvent.count - 1, Int(Double(gapsAcrossEvent.count) * fraction))]
        }

        public var summary: String {
            String(format: "%d downloads captured; longest stall %.0f ms (from %+.2f s after the event); across the event: longest %.0f ms, p50 %.0f ms, p90 %.0f ms "
                   + "(before it, the downloads' own longest gap %.0f ms)",
                   flows, longestStall, longestStallStart, longestStallAcrossEvent, percentileAcrossEvent(0.5), percentileAcrossEvent(0.9), longestStallBeforeEvent)
        }
    }

    /// Stops the capture (SIGINT to the tcpdump it started) and measures. `event` is a
    /// CLOCK_REALTIME time in seconds (the clock of pcap timestamps).
    public func finish(event: Double) -> Figures {
        if let pid {
            kill(pid, SIGINT)
            var exited = false
            for _ in 0..<150 where !exited {
                exited = Shell.exitStatus(pid) != nil
                if !exited { usleep(20_000) }
            }
            if !exited {
                kill(pid, SIGKILL)
                Shell.wait(pid)
            }
        }
        pid = nil
        guard let data = FileManager.default.contents(atPath: path) else { return Figures() }
        var times: [UInt64: [Double]] = [:]
        DownloadStalls.forEachSegment(in: [UInt8](data)) { time, client in times[client, default: []].append(time) }
        var figures = Figures(flows: times.count)
        for (_, stamps) in times {
            for (earlier, later) in zip(stamps, stamps.dropFirst()) {
                let gap = (later - earlier) * 1000
                if gap > figures.longestStall {
                    figures.longestStall = gap
                    figures.longestStallStart = earlier - event
                }
                if earlier <= event && later >= event {
                    figures.longestStallAcrossEvent = max(figures.longestStallAcrossEvent, gap)
                    figures.gapsAcrossEvent.append(gap)
                }
                if later < event { figures.longestStallBeforeEvent = max(figures.longestStallBeforeEvent, gap) }
            }
        }
        figures.gapsAcrossEvent.sort()
        return figures
    }

    /// The classic pcap format (microsecond timestamps, Ethernet): each TCP segment's time and
    /// its client endpoint (destination address << 16 | destination port, the address of an
    /// IPv6 one cut to its last six bytes and marked).
    static func forEachSegment(in bytes: [UInt8], _ body: (Double, UInt64) -> Void) {
        func u32(_ at: Int) -> UInt32 { UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24 }
        guard bytes.count >= 24, u32(0) == 0xA1B2_C3D4 else { return }
        var offset = 24
        while offset + 16 <= bytes.count {
            let seconds = Double(u32(offset)), microseconds = Double(u32(offset + 4))
            let captured = Int(u32(offset + 8))
            let frame = offset + 16
            offset = frame + captured
            guard offset <= bytes.count, captured >= 14 + 20 + 4 else { continue }
            // IPv4 (the whole destination) or IPv6 (its last six bytes: the lab's clients differ there).
            let isIPv6 = bytes[frame + 12] == 0x86 && bytes[frame + 13] == 0xDD
            let ipHeader = isIPv6 ? 40 : Int(bytes[frame + 14] & 0x0F) * 4
            let tcp = frame + 14 + ipHeader
            guard tcp + 4 <= offset else { continue }
            let addressBytes = isIPv6 ? frame + 14 + 34..<frame + 14 + 40 : frame + 14 + 16..<frame + 14 + 20
            let destination = addressBytes.reduce(UInt64(0)) { $0 << 8 | UInt64(bytes[$1]) } | (isIPv6 ? 1 << 48 : 0)
            body(seconds + microseconds / 1e6, destination << 16 | UInt64(bytes[tcp + 2]) << 8 | UInt64(bytes[tcp + 3]))
        }
    }

    public static func realtimeSeconds() -> Double { Date().timeIntervalSince1970 }
}
