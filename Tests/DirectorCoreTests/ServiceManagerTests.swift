@testable import DirectorDaemon
import DirectorLab
import Foundation
import Logging
import Testing
#if canImport(Glibc)
import Glibc
#endif

private let minimal = """
director:
  front_interface: front
services:
  - address: 198.18.0.100
    port: 80
    real_servers:
      - { address: 198.18.2.11 }
"""

/// The director as a service: log lines, the capability check, the notify protocol's
/// environment, and the metrics text.
@Suite("Service manager: logs, capabilities, notify, metrics text")
struct ServiceManagerTests {
    @Test("a log line names the node and the level; under journald it starts with the syslog priority and has no timestamp")
    func logLines() {
        var moment = timespec()
        moment.tv_sec = 1_796_289_590   // 2026-12-03T09:19:50Z
        moment.tv_nsec = 123_456_789
        let terminal = DirectorLogHandler(label: "director", nodeID: 2, journal: false)
        #expect(terminal.format(level: .warning, message: "health: x", metadata: [:], now: moment)
                == "2026-12-03T09:19:50.123Z director node 2 warning: health: x\n")
        let journal = DirectorLogHandler(label: "director", nodeID: 2, journal: true)
        #expect(journal.format(level: .error, message: "cannot start", metadata: ["errno": "12"], now: moment) == "<3>node 2 error: cannot start errno=12\n")
        #expect([Logger.Level.debug, .info, .notice, .warning, .error, .critical].map(DirectorLogHandler.priority) == [7, 6, 5, 4, 3, 2])
        #expect(!DirectorLogHandler.standardErrorIsJournal(environment: "1:1"), "another stream's device:inode")
        #expect(!DirectorLogHandler.standardErrorIsJournal(environment: nil))
        #expect(Lab.parseLogStamp("2026-12-03T09:19:50.123Z") == 1_796_289_590.123)
    }

    @Test("capabilities: what a configuration needs and a message naming each one missing")
    func capabilities() throws {
        var configuration = try ConfigurationParser.parse(yaml: minimal)
        #expect(Capability.needed(by: configuration).map(\.0) == [.netRaw, .netAdmin, .ipcLock])
        let all: UInt64 = 1 << 12 | 1 << 13 | 1 << 14 | 1 << 23
        #expect(Capability.missing(for: configuration, effective: all) == nil)
        let message = try #require(Capability.missing(for: configuration, effective: 1 << 13))
        #expect(message.hasPrefix("missing capabilities CAP_NET_ADMIN (") && message.contains("CAP_IPC_LOCK (") && message.contains("AmbientCapabilities="))
        configuration.hidesFramesFromHost = false
        configuration.locksMemory = false
        #expect(Capability.needed(by: configuration).map(\.0) == [.netRaw, .netAdmin])
        #expect(Capability.effective(status: "Name:\tdirector\nCapEff:\t0000000000807000\n") == 0x807000)
        #expect(Capability.effective(status: "garbage") == nil)
    }

    @Test("notify: the watchdog is fed every half WATCHDOG_USEC, only for the process it names; without NOTIFY_SOCKET nothing is sent")
    func notifyEnvironment() {
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "10000000"]).watchdogFeedNanoseconds == 5_000_000_000)
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"]).watchdogFeedNanoseconds == nil)
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "zero"]).watchdogFeedNanoseconds == nil)
        let silent = SystemdNotifier(environment: [:])
        #expect(!silent.isActive && !silent.ready() && !silent.watchdog())
    }

    @Test("the metrics text: HELP and TYPE once per family, the node on every sample, label values escaped, a histogram's buckets, sum and count; parsed back as written")
    func exposition() {
        var counter = MetricFamily("director_frames_dropped_total", .counter, "Frames not forwarded,\nby reason.")
        counter.add(7, [("worker", "0"), ("reason", "no_virtual_service")])
        counter.add(.integer(9), [("worker", "1"), ("reason", "say \"hi\"\\")])
        var histogram = MetricFamily("director_sync_replica_lag_seconds", .histogram, "Lag.")
        histogram.addHistogram([(0.000_007, 3), (0.000_015, 5)], count: 6, sum: 0.5)
        let empty = MetricFamily("director_nothing", .gauge, "No samples: left out.")
        let text = MetricsExposition.render([counter, histogram, empty], node: 2)
        #expect(text == """
            # HELP director_frames_dropped_total Frames not forwarded,\\nby reason.
            # TYPE director_frames_dropped_total counter
            director_frames_dropped_total{node="2",worker="0",reason="no_virtual_service"} 7
            director_frames_dropped_total{node="2",worker="1",reason="say \\"hi\\"\\\\"} 9
            # HELP director_sync_replica_lag_seconds Lag.
            # TYPE director_sync_replica_lag_seconds histogram
            director_sync_replica_lag_seconds_bucket{node="2",le="7e-06"} 3
            director_sync_replica_lag_seconds_bucket{node="2",le="1.5e-05"} 5
            director_sync_replica_lag_seconds_bucket{node="2",le="+Inf"} 6
            director_sync_replica_lag_seconds_sum{node="2"} 0.5
            director_sync_replica_lag_seconds_count{node="2"} 6

            """)
        let samples = LabDirector.samples(text)
        #expect(samples.count == 7 && samples[1].labels["reason"] == "say \"hi\"\\" && samples[1].value == 9)
        #expect(LabDirector.summed(text)["drop_no_virtual_service"] == 7)
    }
}
