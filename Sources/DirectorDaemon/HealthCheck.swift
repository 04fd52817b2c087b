import DirectorWire

/// How the director finds out whether a real server can take connections (keepalived's
/// TCP_CHECK, HTTP_GET and MISC_CHECK). Configured per service, overridden per server.
public struct HealthCheck: Sendable, Equatable {
    public enum Probe: Sendable, Equatable {
        /// Up when a TCP connection to the server's port opens.
        case tcp
        /// Up when `GET path` answers `status` (and its body holds `bodyContains`, when given);
        /// over TLS when `usesTLS` (https; the certificate is not verified).
        case http(path: String, status: Int, bodyContains: String?, usesTLS: Bool)
        /// Up when the program exits 0 within the timeout. `{address}` and `{port}` in its
        /// arguments become the server's.
        case command([String])

        public var name: String {
            switch self {
            case .tcp: "tcp"
            case .http(_, _, _, let usesTLS): usesTLS ? "https" : "http"
            case .command: "command"
            }
        }
    }

    public var probe: Probe
    /// The port checked; nil: the real server's own.
    public var port: UInt16?
    public var intervalMilliseconds: UInt64
    public var timeoutMilliseconds: UInt64
    /// Consecutive successes that bring a down server back.
    public var rise: Int
    /// Consecutive failures that take an up server out.
    public var fall: Int

    public static let defaultIntervalMilliseconds: UInt64 = 2000
    public static let defaultTimeoutMilliseconds: UInt64 = 1000
    public static let defaultRise = 2
    public static let defaultFall = 2

    public init(probe: Probe, port: UInt16? = nil, intervalMilliseconds: UInt64 = HealthCheck.defaultIntervalMilliseconds,
                timeoutMilliseconds: UInt64 = HealthCheck.defaultTimeoutMilliseconds, rise: Int = HealthCheck.defaultRise,
                fall: Int = HealthCheck.defaultFall) {
        self.probe = probe
        self.port = port
        self.intervalMilliseconds = intervalMilliseconds
        self.timeoutMilliseconds = timeoutMilliseconds
        self.rise = rise
        self.fall = fall
    }

    /// The check as the config file writes it (one line of flow-style YAML).
    var yaml: String {
        let seconds = ConfigurationParser.secondsText
        func quoted(_ text: String) -> String {
            "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        var fields = ["type: \(probe.name)"]
        if let port { fields.append("port: \(port)") }
        fields += ["interval: \(seconds(intervalMilliseconds))", "timeout: \(seconds(timeoutMilliseconds))", "rise: \(rise)", "fall: \(fall)"]
        switch probe {
        case .tcp: break
        case .http(let path, let status, let body, _):
            fields += ["path: \(quoted(path))", "status: \(status)"]
            if let body { fields.append("body: \(quoted(body))") }
        case .command(let arguments):
            fields.append("command: [" + arguments.map(quoted).joined(separator: ", ") + "]")
        }
        return "{ " + fields.joined(separator: ", ") + " }"
    }
}

/// What happens to a failed real server's existing connections.
public enum ServerFailurePolicy: String, Sendable, CaseIterable {
    /// They go on to it (as with a quiesced weight): a server that only failed its check may
    /// still finish them.
    case keep
    /// The next segment of each gets a TCP reset from the virtual address, so the client
    /// reconnects at once (to a server that is up); a UDP flow is scheduled afresh.
    case reset
}
