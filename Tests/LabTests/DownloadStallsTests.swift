@testable import DirectorLab
import Testing

/// The stall measurement charges the path with a gap in a download, not the client's own closed
/// receive window.
@Suite("Download stalls: what the path held up, apart from what the client held up")
struct DownloadStallsTests {
    static let client: UInt64 = 0xC612_0164 << 16 | 40_000

    static func data(_ time: Double) -> DownloadStalls.Segment {
        .init(time: time, client: client, fromServer: true, window: 64)
    }

    static func ack(_ time: Double, window: UInt16) -> DownloadStalls.Segment {
        .init(time: time, client: client, fromServer: false, window: window)
    }

    /// The client's SYN as Linux sends it: window scale 7, MSS 1460 and timestamps, so segments of 1448 bytes.
    static func syn(_ time: Double) -> DownloadStalls.Segment {
        .init(time: time, client: client, fromServer: false, window: 64240, offer: .init(windowScale: 7, largestSegment: 1448))
    }

    static func gaps(_ flow: [DownloadStalls.Segment]) -> (gaps: [Double], closed: [Double]) {
        var gaps: [Double] = [], closed: [Double] = []
        DownloadStalls.forEachGap(in: flow, closedWindow: { closed.append(($0 * 1000).rounded()) }) { _, _, gap in
            gaps.append((gap * 1000).rounded())
        }
        return (gaps, closed)
    }

    @Test("fixtures: segments in capture order → gaps charged to the path and closed-window times (ms)", arguments: [
        // Open window throughout: every gap is the path's.
        ([data(0), ack(0.001, window: 87), data(0.300), data(0.310)], [300.0, 10], [Double]()),
        // The client closes its window for 800 ms; the server resumes 1 ms after it reopens.
        ([data(0), ack(0.020, window: 0), ack(0.220, window: 0), ack(0.820, window: 87), data(0.821)], [21], [800]),
        // The client reopens, but the data comes 400 ms later: that wait is the path's.
        ([data(0), ack(0.010, window: 0), ack(0.110, window: 90), data(0.510)], [410], [100]),
        // Data while the window looked closed (the reopening was not captured): closed until then.
        ([data(0), ack(0.010, window: 0), data(0.500)], [10], [490]),
        // Client segments before the first data segment make no gap.
        ([ack(0, window: 0), ack(0.5, window: 10), data(0.6), data(0.7)], [100], [500]),
        // A window of 768 bytes takes no full segment: the server waits for its persist timer, the client's time.
        ([syn(0), data(0.010), ack(0.050, window: 6), data(0.300)], [40], [250]),
        // 1,536 bytes take one: the wait is the path's.
        ([syn(0), data(0.010), ack(0.050, window: 12), data(0.300)], [290], []),
        // Without the SYN the scale is unknown: only a zero window is closed.
        ([data(0.010), ack(0.050, window: 6), data(0.300)], [290], []),
    ])
    func fixtures(flow: [DownloadStalls.Segment], gaps: [Double], closed: [Double]) {
        let measured = DownloadStallsTests.gaps(flow)
        #expect(measured.gaps == gaps)
        #expect(measured.closed == closed)
    }

    @Test("a capture: a server's segment and a client's, IPv4, keyed by the client's endpoint")
    func parsesBothDirections() {
        func frame(from source: [UInt8], to destination: [UInt8], sourcePort: UInt16, destinationPort: UInt16, window: UInt16) -> [UInt8] {
            let ip: [UInt8] = [0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0] + source + destination
            let tcp: [UInt8] = [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xFF), UInt8(destinationPort >> 8), UInt8(destinationPort & 0xFF)]
                + [UInt8](repeating: 0, count: 8) + [0x50, 0x10, UInt8(window >> 8), UInt8(window & 0xFF), 0, 0, 0, 0]
            return [UInt8](repeating: 2, count: 12) + [0x08, 0x00] + ip + tcp
        }
        func record(_ seconds: UInt32, _ microseconds: UInt32, _ frame: [UInt8]) -> [UInt8] {
            func le(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(value >> ($0 * 8) & 0xFF) } }
            return le(seconds) + le(microseconds) + le(UInt32(frame.count)) + le(UInt32(frame.count)) + frame
        }
        let header: [UInt8] = [0xD4, 0xC3, 0xB2, 0xA1] + [UInt8](repeating: 0, count: 20)
        let vip: [UInt8] = [198, 18, 0, 100], client: [UInt8] = [198, 18, 1, 100]
        let capture = header
            + record(10, 500_000, frame(from: vip, to: client, sourcePort: 80, destinationPort: 40_000, window: 64))
            + record(10, 600_000, frame(from: client, to: vip, sourcePort: 40_000, destinationPort: 80, window: 0))
        var segments: [DownloadStalls.Segment] = []
        DownloadStalls.forEachSegment(in: capture) { segments.append($0) }
        let key = UInt64(0xC612_0164) << 16 | 40_000
        #expect(segments == [.init(time: 10.5, client: key, fromServer: true, window: 64), .init(time: 10.6, client: key, fromServer: false, window: 0)])
    }

    @Test("a client's SYN whose header claims fewer than 20 bytes, or that the capture cut inside its header, is read without options")
    func brokenSYNs() {
        func record(_ frame: [UInt8]) -> [UInt8] {
            func le(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(value >> ($0 * 8) & 0xFF) } }
            return le(1) + le(0) + le(UInt32(frame.count)) + le(UInt32(frame.count)) + frame
        }
        let ip: [UInt8] = [0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 198, 18, 1, 100, 198, 18, 0, 100]
        func syn(dataOffset: UInt8, cutTo length: Int) -> [UInt8] {
            let tcp: [UInt8] = [0x9C, 0x40, 0, 80] + [UInt8](repeating: 0, count: 8) + [dataOffset << 4, 0x02, 0xFA, 0xF0, 0, 0, 0, 0]
            return Array(([UInt8](repeating: 2, count: 12) + [0x08, 0x00] + ip + tcp).prefix(14 + 20 + length))
        }
        let capture = [0xD4, 0xC3, 0xB2, 0xA1] + [UInt8](repeating: 0, count: 20)
            + record(syn(dataOffset: 0, cutTo: 20)) + record(syn(dataOffset: 2, cutTo: 20)) + record(syn(dataOffset: 15, cutTo: 17))
            + record(syn(dataOffset: 15, cutTo: 20))
        var offers: [DownloadStalls.Offer?] = []
        DownloadStalls.forEachSegment(in: capture) { offers.append($0.offer) }
        #expect(offers == Array(repeating: DownloadStalls.Offer(windowScale: 0, largestSegment: 536), count: 4))
    }

    @Test("fixtures: a client's SYN options → the shift of its windows and the largest segment the server sends it", arguments: [
        // Linux: MSS 1460, SACK permitted, timestamps, NOP, window scale 7.
        ([2, 4, 0x05, 0xB4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7], DownloadStalls.Offer(windowScale: 7, largestSegment: 1448)),
        // No timestamps, scale 2.
        ([2, 4, 0x05, 0xB4, 1, 3, 3, 2], .init(windowScale: 2, largestSegment: 1460)),
        // Nothing offered: no scaling, the default MSS.
        ([], .init(windowScale: 0, largestSegment: 536)),
        // Cut short by the capture, or a length that runs past the end: what came before stands.
        ([2, 4, 0x05, 0xB4, 3, 3], .init(windowScale: 0, largestSegment: 1460)),
        ([3, 3, 9, 8, 0], .init(windowScale: 9, largestSegment: 536)),
        // A length under 2 would never advance: the walk stops.
        ([1, 5, 0, 3, 3, 7], .init(windowScale: 0, largestSegment: 536)),
        // A scale over RFC 7323's 14 is taken as 14.
        ([3, 3, 20], .init(windowScale: 14, largestSegment: 536)),
    ] as [([UInt8], DownloadStalls.Offer)])
    func synOptions(options: [UInt8], offer: DownloadStalls.Offer) {
        #expect(DownloadStalls.offer(options[...]) == offer)
    }
}
