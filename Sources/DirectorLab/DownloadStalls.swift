import Foundation

/// Watches the downloads from the client's side: captures the data segments the real servers
/// send to the clients (source VIP, port 80) and the clients' own segments to the VIP, and
/// afterwards measures per download the longest time between two data segments that the client
/// did not ask for itself. A client that cannot keep up (curl starved of CPU on a saturated lab)
/// closes its receive window, and the server rightly waits until it opens again: that time is
/// the receiver's, not the path's, and is reported apart. A window narrower than one full segment
/// is closed too: the server will not send into it (RFC 1122's silly-window avoidance) and waits
/// for its persist timer, whose interval doubles while the window stays narrow.
public final class DownloadStalls: @unchecked Sendable {
    private let lab: Lab
    private let path: String
    private var pid: pid_t?

    /// Starts tcpdump in the client namespace.
    public init(lab: Lab) throws {
        self.lab = lab
        path = "\(lab.memoryDirectory)/downloads.pcap"
        try FileManager.default.createDirectory(atPath: lab.memoryDirectory, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: path)
        // The log is appended to; its closing counts must be this capture's alone.
        try? FileManager.default.removeItem(atPath: "\(lab.stateDirectory)/tcpdump.log")
        let virtualAddresses = lab.dualStack ? "host \(Lab.virtualAddress) or host \(Lab.virtualAddress6)" : "host \(Lab.virtualAddress)"
        // pcap filters give "and" and "or" one precedence, left to right: every group is bracketed.
        let filter = "tcp and (((src \(virtualAddresses)) and src port 80 and greater 200) or ((dst \(virtualAddresses)) and dst port 80))"
        pid = try Shell.spawn(["ip", "netns", "exec", lab.clientNamespace, "tcpdump", "-i", "eth0", "-s", "128", "-U", "-n", "-w", path, filter],
                              output: "\(lab.stateDirectory)/tcpdump.log")
        // tcpdump needs a moment before it captures.
        for _ in 0..<50 where !FileManager.default.fileExists(atPath: path) { usleep(20_000) }
        usleep(200_000)
    }

    /// The capture's figures: per flow the longest gap, and the longest gap spanning `event`.
    public struct Figures: Sendable {
        public var flows = 0
        /// The longest gap between two data segments of one download, over all downloads, less
        /// any time the client's receive window was closed within it (ms).
        public var longestStall = 0.0
        /// The longest time a client kept its receive window closed (ms): its own stall.
        public var longestClosedWindow = 0.0
        /// When the longest stall began, in seconds after the event (negative: before it).
        public var longestStallStart = 0.0
        /// The longest gap that spans the event (the kill or the cut), over all downloads (ms).
        public var longestStallAcrossEvent = 0.0
        /// The longest gap of any download before the event, for comparison: the downloads'
        /// own rhythm under `--limit-rate` (ms).
        public var longestStallBeforeEvent = 0.0
        /// Per download, the gap spanning the event, ascending (ms).
        public var gapsAcrossEvent: [Double] = []
        /// Segments the capture itself lost ("packets dropped by kernel" and "by interface", as
        /// tcpdump reports them at exit): a gap over a lost stretch is the capture's, not the network's.
        public var droppedByCapture = 0

        public func percentileAcrossEvent(_ fraction: Double) -> Double {
            gapsAcrossEvent.isEmpty ? 0 : gapsAcrossEvent[min(gapsAcrossEvent.count - 1, Int(Double(gapsAcrossEvent.count) * fraction))]
        }

        public var summary: String {
            String(format: "%d downloads captured; longest stall %.0f ms (from %+.2f s after the event); across the event: longest %.0f ms, p50 %.0f ms, p90 %.0f ms "
                   + "(before it, the downloads' own longest gap %.0f ms); longest closed receive window %.0f ms; segments the capture dropped %d",
                   flows, longestStall, longestStallStart, longestStallAcrossEvent, percentileAcrossEvent(0.5), percentileAcrossEvent(0.9), longestStallBeforeEvent,
                   longestClosedWindow, droppedByCapture)
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
        var segments: [UInt64: [Segment]] = [:]
        DownloadStalls.forEachSegment(in: [UInt8](data)) { segments[$0.client, default: []].append($0) }
        var figures = Figures(flows: segments.values.filter { $0.contains { $0.fromServer } }.count)
        figures.droppedByCapture = DownloadStalls.capturedDrops(inLog: "\(lab.stateDirectory)/tcpdump.log")
        for (_, flow) in segments {
            DownloadStalls.forEachGap(in: flow, closedWindow: { figures.longestClosedWindow = max(figures.longestClosedWindow, $0 * 1000) }) { earlier, later, gap in
                let gap = gap * 1000
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

    /// One captured segment of a download.
    struct Segment: Equatable {
        var time: Double
        /// The client endpoint: address << 16 | port, the address of an IPv6 one cut to its last
        /// six bytes and marked.
        var client: UInt64
        /// A data segment from the server; otherwise a segment from the client.
        var fromServer: Bool
        /// The window field as sent (unscaled: zero is zero at any scale).
        var window: UInt16
        /// On the client's SYN: what it offered, which says how to read its later windows.
        var offer: Offer? = nil
    }

    /// What a client's SYN says about its receive window: the shift its window fields are
    /// scaled by, and the largest segment the server will send it (its MSS, less the 12 bytes of
    /// a timestamp option when it offers timestamps: the lab's servers take both up, being Linux).
    struct Offer: Equatable {
        var windowScale: Int
        var largestSegment: Int

        /// A window the server will not send a full segment into.
        func isClosed(_ window: UInt16) -> Bool { Int(window) << windowScale < largestSegment }
    }

    /// Walks one download's segments in capture order and reports each gap between two data
    /// segments, less the time within it that the client's window was closed (from its first
    /// segment with a closed window to its next open one), and each such closed time. Without
    /// the client's SYN (a download older than the capture) only a zero window is closed.
    static func forEachGap(in flow: [Segment], closedWindow: (Double) -> Void, _ body: (_ earlier: Double, _ later: Double, _ gap: Double) -> Void) {
        var lastData: Double?
        var closedSince: Double?
        var closedInGap = 0.0
        var offer: Offer?
        for segment in flow {
            if let offered = segment.offer {
                // A SYN's own window is never scaled and opens nothing yet.
                offer = offered
                continue
            }
            if !segment.fromServer {
                let closed = segment.window == 0 || offer?.isClosed(segment.window) == true
                if closed, closedSince == nil {
                    closedSince = segment.time
                } else if !closed, let since = closedSince {
                    closedInGap += segment.time - since
                    closedWindow(segment.time - since)
                    closedSince = nil
                }
                continue
            }
            if let since = closedSince {
                // Data while the window looked closed: the reopening was not captured. Only the
                // closed time up to this segment is the client's.
                closedInGap += segment.time - since
                closedWindow(segment.time - since)
                closedSince = nil
            }
            if let earlier = lastData { body(earlier, segment.time, max(0, segment.time - earlier - closedInGap)) }
            lastData = segment.time
            closedInGap = 0
        }
    }

    /// The classic pcap format (microsecond timestamps, Ethernet), IPv4 or IPv6 TCP. A segment
    /// from port 80 is the server's, any other the client's; frames too short are skipped.
    static func forEachSegment(in bytes: [UInt8], _ body: (Segment) -> Void) {
        func u32(_ at: Int) -> UInt32 { UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24 }
        guard bytes.count >= 24, u32(0) == 0xA1B2_C3D4 else { return }
        var offset = 24
        while offset + 16 <= bytes.count {
            let seconds = Double(u32(offset)), microseconds = Double(u32(offset + 4))
            let captured = Int(u32(offset + 8))
            let frame = offset + 16
            offset = frame + captured
            guard offset <= bytes.count, captured >= 14 + 20 + 16 else { continue }
            // IPv4 (the whole address) or IPv6 (its last six bytes: the lab's clients differ there).
            let isIPv6 = bytes[frame + 12] == 0x86 && bytes[frame + 13] == 0xDD
            let ipHeader = isIPv6 ? 40 : Int(bytes[frame + 14] & 0x0F) * 4
            let tcp = frame + 14 + ipHeader
            guard tcp + 16 <= offset else { continue }
            let fromServer = bytes[tcp] == 0 && bytes[tcp + 1] == 80
            // The client's end: the destination of the server's segments, the source of its own.
            let addressStart = frame + 14 + (isIPv6 ? (fromServer ? 34 : 18) : (fromServer ? 16 : 12))
            let address = (addressStart..<addressStart + (isIPv6 ? 6 : 4)).reduce(UInt64(0)) { $0 << 8 | UInt64(bytes[$1]) } | (isIPv6 ? 1 << 48 : 0)
            let port = fromServer ? tcp + 2 : tcp
            let isSYN = bytes[tcp + 13] & 0x02 != 0
            // The options as far as the capture kept them: none for a header that claims fewer
            // than 20 bytes or was cut before its options.
            let optionsEnd = min(offset, tcp + Int(bytes[tcp + 12] >> 4) * 4)
            let options = optionsEnd > tcp + 20 ? bytes[(tcp + 20)..<optionsEnd] : []
            body(Segment(time: seconds + microseconds / 1e6, client: address << 16 | UInt64(bytes[port]) << 8 | UInt64(bytes[port + 1]),
                         fromServer: fromServer, window: UInt16(bytes[tcp + 14]) << 8 | UInt16(bytes[tcp + 15]),
                         offer: isSYN && !fromServer ? offer(options) : nil))
        }
    }

    /// A SYN's options, as far as they were captured: the window scale (none offered: 0), the
    /// MSS (none offered: RFC 9293's default of 536) and whether timestamps are offered.
    static func offer(_ options: ArraySlice<UInt8>) -> Offer {
        var windowScale = 0, segment = 536, timestamps = false
        var at = options.startIndex
        while at < options.endIndex {
            let kind = options[at]
            if kind == 0 { break }
            if kind == 1 { at += 1; continue }
            guard at + 1 < options.endIndex, options[at + 1] >= 2, at + Int(options[at + 1]) <= options.endIndex else { break }
            switch (kind, options[at + 1]) {
            case (2, 4): segment = Int(options[at + 2]) << 8 | Int(options[at + 3])
            case (3, 3): windowScale = min(14, Int(options[at + 2]))
            case (8, 10): timestamps = true
            default: break
            }
            at += Int(options[at + 1])
        }
        return Offer(windowScale: windowScale, largestSegment: segment - (timestamps ? 12 : 0))
    }

    /// The sum of tcpdump's closing "N packets dropped by kernel" and "N packets dropped by
    /// interface" lines.
    static func capturedDrops(inLog path: String) -> Int {
        guard let log = try? String(contentsOfFile: path, encoding: .utf8) else { return 0 }
        return log.split(separator: "\n").reduce(0) { sum, line in
            guard line.contains("packets dropped by"), let count = Int(line.split(separator: " ").first ?? "") else { return sum }
            return sum + count
        }
    }

    public static func realtimeSeconds() -> Double { Date().timeIntervalSince1970 }
}
