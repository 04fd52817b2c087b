import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The director's log, through swift-log: one line per event on standard error, naming the node,
/// what operators read at 3 a.m. `Log.bootstrap` (by `director run`) installs
/// `DirectorLogHandler` for every logger in the process and sets the level.
public enum Log {
    /// One logger for the whole daemon; its handler is whatever `bootstrap` installed.
    private static let logger = Logger(label: "director")

    public static func debug(_ message: @autoclosure () -> String) { logger.debug("\(message())") }
    public static func info(_ message: @autoclosure () -> String) { logger.info("\(message())") }
    public static func warning(_ message: @autoclosure () -> String) { logger.warning("\(message())") }
    public static func error(_ message: @autoclosure () -> String) { logger.error("\(message())") }

    /// The levels `--log-level` takes, least to most severe.
    public static let levelNames = Logger.Level.allCases.map(\.rawValue)

    /// Once, before anything logs: lines name `nodeID`, go out from `levelName` up, and carry
    /// journald's priority prefixes when standard error is the journal's stream. False for an
    /// unknown level name.
    public static func bootstrap(nodeID: UInt8, levelName: String) -> Bool {
        guard let level = Logger.Level(rawValue: levelName) else { return false }
        bootstrap(nodeID: nodeID, level: level)
        return true
    }

    static func bootstrap(nodeID: UInt8, level: Logger.Level) {
        let journal = DirectorLogHandler.standardErrorIsJournal()
        LoggingSystem.bootstrap { label in DirectorLogHandler(label: label, nodeID: nodeID, journal: journal, logLevel: level) }
    }
}

/// Formats a swift-log record as one line, written with one write(2) so lines from different
/// threads never interleave. On a terminal or in a file: a UTC timestamp to the millisecond,
/// the node and the level. Under systemd (standard error is the journal's stream,
/// `JOURNAL_STREAM`): the `<N>` priority prefix journald reads (`sd-daemon(3)`) and no
/// timestamp, since the journal keeps its own.
public struct DirectorLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    let nodeID: UInt8
    let journal: Bool

    public init(label: String, nodeID: UInt8, journal: Bool, logLevel: Logger.Level = .info) {
        self.nodeID = nodeID
        self.journal = journal
        self.logLevel = logLevel
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let line = format(level: event.level, message: "\(event.message)", metadata: metadata.merging(event.metadata ?? [:]) { $1 })
        _ = line.withCString { Glibc.write(STDERR_FILENO, $0, strlen($0)) }
    }

    func format(level: Logger.Level, message: String, metadata: Logger.Metadata, now: timespec = DirectorLogHandler.now()) -> String {
        let extra = metadata.isEmpty ? "" : " " + metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let body = "node \(nodeID) \(DirectorLogHandler.word(level)): \(message)\(extra)\n"
        return journal ? "<\(DirectorLogHandler.priority(level))>" + body : DirectorLogHandler.stamp(now) + " director " + body
    }

    /// syslog's priorities, as journald reads them from a `<N>` prefix.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    static func word(_ level: Logger.Level) -> String { level == .warning ? "warning" : level.rawValue }

    /// Whether standard error is the journal's stream: systemd sets `JOURNAL_STREAM` to its
    /// "device:inode", and a child that redirected its standard error elsewhere must not believe it.
    static func standardErrorIsJournal(environment: String? = getenv("JOURNAL_STREAM").map { String(cString: $0) }) -> Bool {
        guard let environment else { return false }
        var status = stat()
        guard fstat(STDERR_FILENO, &status) == 0 else { return false }
        return environment == "\(status.st_dev):\(status.st_ino)"
    }

    static func now() -> timespec {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return now
    }

    /// "2026-12-03T09:19:50.123Z".
    static func stamp(_ now: timespec) -> String {
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func padded(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(padded(parts.tm_year + 1900, 4))-\(padded(parts.tm_mon + 1, 2))-\(padded(parts.tm_mday, 2))T"
            + "\(padded(parts.tm_hour, 2)):\(padded(parts.tm_min, 2)):\(padded(parts.tm_sec, 2)).\(padded(Int32(now.tv_nsec / 1_000_000), 3))Z"
    }
}
