import Foundation

/// A director process running in a lab namespace: one of the lab's director hosts, or the device
/// under test of a benchmark.
public final class LabDirector: @unchecked Sendable {
    public let namespace: String
    public let configPath: String
    public let controlSocket: String
    public let logPath: String
    private let directory: String
    private var pid: pid_t?
    /// Run as this user (setpriv) with `capabilities` as ambient capabilities, as the systemd
    /// unit runs it; nil: as root.
    public var user: String?
    public var capabilities = LabDirector.serviceCapabilities
    /// Added to the director's environment (NOTIFY_SOCKET, WATCHDOG_USEC, …).
    public var environment: [String: String] = [:]

    /// The capabilities the unit gives the director (packaging/director.service), as setpriv names them.
    public static let serviceCapabilities = ["net_raw", "net_admin", "sys_nice", "ipc_lock", "bpf"]

    /// Settings the lab's director config is made from.
    public struct Settings: Sendable {
        public var scheduler = "mh"
        public var weights: [Int] = [1, 1, 1]
        /// Which of the lab's real servers (by index, rs1 = 0) the service lists; nil: all of them.
        public var servedRealServers: [Int]?
        public var workerCPUs: [Int] = [0, 1]
        public var connectionCapacity = 65_536
        /// Timeouts in seconds by config name (e.g. "tcp_fin_wait": 2); IPVS defaults otherwise.
        public var timeouts: [String: Double] = [:]
        public var hideFramesFromHost = true
        /// Connection sync between the pair's directors.
        public var heartbeatIntervalMilliseconds = 10
        /// nil: the director's default.
        public var deadAfterMissed: Int?
        public var syncRealtimePriority = 10
        /// A worker without progress for this long withholds the heartbeats (nil: the default).
        public var workerStallMilliseconds: Int?
        /// The control socket takes `fault` commands (tests of the pair's reactions).
        public var allowsFaultInjection = false
        /// The service's `health_check:` (a flow-style mapping); nil: none.
        public var healthCheck: String?
        public var onServerDown: String?
        /// The service's fallback server, by the lab's index (rs1 = 0).
        public var fallbackRealServer: Int?
        /// `director.notify`: the program and its arguments.
        public var notifyCommand: [String]?
        /// `director.metrics_listen` (inside the director's namespace), e.g. "127.0.0.1:9117".
        public var metricsListen: String?
        /// Run the director as this user with the unit's capabilities (see `LabDirector.user`).
        public var user: String?
        /// The service's forwarding method: "dr", or "nat" (to `Lab.translatedPort`, through the
        /// lab's NAT gateway; the lab must route through the directors).
        public var forwarding = "dr"
        /// A second service beside the first: VIP:`Lab.translatedPort` translated (NAT) to each
        /// server's own `Lab.translatedPort`, so one pair runs both methods at once.
        public var addsTranslatedService = false
        /// A second service beside the first: the IPv6 VIP's port 80, forwarded as the first is,
        /// to each server's IPv6 address (a dual-stack lab).
        public var addsIPv6Service = false
        /// `director.fast_path`: "xdp" or "off". The default comes from $DIRECTOR_LAB_FAST_PATH
        /// (scripts/test.sh runs the lab suite once per mode), else the director's own (off).
        public var fastPath: String? = ProcessInfo.processInfo.environment["DIRECTOR_LAB_FAST_PATH"]
        public init() {}
    }

    public convenience init(lab: Lab, index: Int = 0, settings: Settings = Settings()) throws {
        let directory = "\(lab.stateDirectory)/dir\(index + 1)"
        try self.init(namespace: lab.directorNamespace(index), directory: directory) { controlSocket in
            LabDirector.config(lab: lab, index: index, settings: settings, controlSocket: controlSocket)
        }
        user = settings.user
    }

    /// A director in `namespace` with its files in `directory`; `config` makes the config text
    /// for the control socket it is given.
    public init(namespace: String, directory: String, config: (_ controlSocket: String) -> String) throws {
        self.namespace = namespace
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        configPath = directory + "/director.yaml"
        controlSocket = directory + "/control.sock"
        logPath = directory + "/director.log"
        try config(controlSocket).write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// The director's process id while it runs.
    public var processID: pid_t? { pid }

    public static func config(lab: Lab, index: Int = 0, settings: Settings, controlSocket: String) -> String {
        // In a pair each director gets one CPU of its own.
        let cpus = lab.directorCount > 1 ? [index % 2] : settings.workerCPUs
        var text = """
        director:
          front_interface: front
          back_interface: back
          workers: [\(cpus.map(String.init).joined(separator: ", "))]
          connection_capacity: \(settings.connectionCapacity)
          control_socket: \(controlSocket)
          hide_frames_from_host: \(settings.hideFramesFromHost)
          allow_fault_injection: \(settings.allowsFaultInjection)

        """
        if let listen = settings.metricsListen { text += "  metrics_listen: \(listen)\n" }
        if let mode = settings.fastPath { text += "  fast_path: \(mode)\n" }
        if settings.forwarding == "nat" || settings.addsTranslatedService {
            let address6 = settings.addsIPv6Service ? ", address6: \"\(Lab.natGatewayAddress6)\"" : ""
            text += "  nat_gateway: { address: \(Lab.natGatewayAddress)\(address6), mac: \"\(Lab.natGatewayMAC)\" }\n"
        }
        if let notify = settings.notifyCommand {
            text += "  notify: [" + notify.map { "'" + $0.replacingOccurrences(of: "'", with: "''") + "'" }.joined(separator: ", ") + "]\n"
        }
        if lab.directorCount == 2 {
            text += [
                "  node_id: \(index + 1)", "  peer:", "    node_id: \(2 - index)", "    address: \(Lab.crossoverAddress(1 - index))",
                "    local_address: \(Lab.crossoverAddress(index))", "    key: \(Lab.syncKey)",
                "    heartbeat_interval_ms: \(settings.heartbeatIntervalMilliseconds)",
                "    sync_realtime_priority: \(settings.syncRealtimePriority)",
            ].map { $0 + "\n" }.joined()
            if let stall = settings.workerStallMilliseconds { text += "    worker_stall_ms: \(stall)\n" }
            if let misses = settings.deadAfterMissed { text += "    dead_after_missed: \(misses)\n" }
        }
        if !settings.timeouts.isEmpty {
            text += "timeouts:\n" + settings.timeouts.sorted { $0.key < $1.key }.map { "  \($0.key): \($0.value)\n" }.joined()
        }
        text += """
        services:
          - address: \(Lab.virtualAddress)
            port: 80
            protocol: tcp
            scheduler: \(settings.scheduler)
            forwarding: \(settings.forwarding)

        """
        if let check = settings.healthCheck { text += "    health_check: \(check)\n" }
        if let policy = settings.onServerDown { text += "    on_server_down: \(policy)\n" }
        let port = settings.forwarding == "nat" ? ", port: \(Lab.translatedPort)" : ""
        if let fallback = settings.fallbackRealServer { text += "    fallback: { address: \(Lab.realServerAddress(fallback))\(port) }\n" }
        text += "    real_servers:\n"
        for server in settings.servedRealServers ?? Array(0..<lab.realServerCount) {
            text += "      - { address: \(Lab.realServerAddress(server))\(port), weight: \(settings.weights[server % settings.weights.count]) }\n"
        }
        if settings.addsIPv6Service {
            text += "  - address: \"\(Lab.virtualAddress6)\"\n    port: 80\n    scheduler: \(settings.scheduler)\n    forwarding: \(settings.forwarding)\n"
            if let check = settings.healthCheck { text += "    health_check: \(check)\n" }
            text += "    real_servers:\n"
            for server in settings.servedRealServers ?? Array(0..<lab.realServerCount) {
                text += "      - { address: \"\(Lab.realServerAddress6(server))\"\(port), weight: \(settings.weights[server % settings.weights.count]) }\n"
            }
        }
        if settings.addsTranslatedService {
            text += "  - address: \(Lab.virtualAddress)\n    port: \(Lab.translatedPort)\n    scheduler: \(settings.scheduler)\n    forwarding: nat\n    real_servers:\n"
            for server in settings.servedRealServers ?? Array(0..<lab.realServerCount) {
                text += "      - { address: \(Lab.realServerAddress(server)), port: \(Lab.translatedPort) }\n"
            }
        }
        return text
    }

    /// The director binary: $DIRECTOR_BINARY, or the package's debug or release build.
    public static func binaryPath() -> String {
        if let path = ProcessInfo.processInfo.environment["DIRECTOR_BINARY"] { return path }
        let root = Lab.packageRoot
        for candidate in ["\(root)/.build/debug/director", "\(root)/.build/release/director"]
        where FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        return "\(root)/.build/debug/director"
    }

    /// Starts the director and waits until its control socket answers.
    public func start(binary: String = LabDirector.binaryPath()) throws {
        var command = ["ip", "netns", "exec", namespace]
        if !environment.isEmpty { command += ["env"] + environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } }
        var program = binary
        if let user {
            // Its own copy where the user may run it (a checkout may sit under a private home),
            // and its directory its own, for the control socket.
            program = directory + "/director"
            if !FileManager.default.fileExists(atPath: program) {
                try FileManager.default.copyItem(atPath: binary, toPath: program)
                try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: program)
            }
            try Shell.run(["chown", "\(user):", directory])
            try Shell.run(["chmod", "a+rx", Lab.stateRoot, (directory as NSString).deletingLastPathComponent])
            let caps = capabilities.map { "+" + $0 }.joined(separator: ",")
            command += ["setpriv", "--reuid=\(user)", "--regid=\(user)", "--init-groups", "--inh-caps=-all" + (caps.isEmpty ? "" : "," + caps),
                        "--ambient-caps=-all" + (caps.isEmpty ? "" : "," + caps)]
        }
        let pid = try Shell.spawn(command + [program, "run", "--config", configPath], output: logPath)
        self.pid = pid
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if Shell.exitStatus(pid) != nil {
                self.pid = nil
                throw LabError(description: "the director exited during start:\n\(log())")
            }
            if (try? Shell.run([binary, "stats", "--socket", controlSocket], check: false))?.status == 0 { return }
            usleep(100_000)
        }
        throw LabError(description: "the director did not come up within 15 s:\n\(log())")
    }

    /// Stops the director (SIGTERM, by PID) and waits for it.
    @discardableResult
    public func stop() -> Int32? {
        guard let pid else { return nil }
        self.pid = nil
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if let status = Shell.exitStatus(pid) { return status }
            usleep(20_000)
        }
        kill(pid, SIGKILL)
        return Shell.wait(pid)
    }

    /// Ends the director at once with SIGKILL, as a crash would. Returns when, on CLOCK_MONOTONIC
    /// (the clock the directors report their detection times on).
    @discardableResult
    public func kill9() -> UInt64 {
        guard let pid else { return 0 }
        self.pid = nil
        let at = Lab.monotonicNanoseconds()
        kill(pid, SIGKILL)
        Shell.wait(pid)
        return at
    }

    /// Sends `signal` to the director (by PID): SIGSTOP and SIGCONT freeze and thaw it whole, as
    /// a host that stops scheduling it would. Returns when, on CLOCK_MONOTONIC.
    @discardableResult
    public func send(_ signal: Int32) -> UInt64 {
        guard let pid else { return 0 }
        let at = Lab.monotonicNanoseconds()
        kill(pid, signal)
        return at
    }

    public var isRunning: Bool {
        guard let pid else { return false }
        if Shell.exitStatus(pid) != nil {
            self.pid = nil
            return false
        }
        return true
    }

    public func log() -> String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// What the scheduler has recorded of one of the director's threads, by the name it gave it
    /// (`liveness`, `sync`, `worker 0`, …): /proc/<pid>/task/<tid>/schedstat.
    public struct ThreadSchedule: Sendable {
        /// Time on a CPU, and runnable but waiting for one (ns).
        public var running: UInt64, waiting: UInt64
        /// How many times it was put on a CPU: one per wake-up for a thread that sleeps between
        /// turns.
        public var timesScheduled: UInt64
    }

    public func schedule(ofThread name: String) -> ThreadSchedule? {
        guard let pid, let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") else { return nil }
        for task in tasks {
            let comm = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/comm", encoding: .utf8)) ?? ""
            guard comm.trimmingCharacters(in: .whitespacesAndNewlines) == name,
                  let fields = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/schedstat", encoding: .utf8).split(separator: " ")
                      .compactMap({ UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }),
                  fields.count == 3 else { continue }
            return ThreadSchedule(running: fields[0], waiting: fields[1], timesScheduled: fields[2])
        }
        return nil
    }

    /// Counters from `director stats`, summed over workers: name → value.
    public func stats(binary: String = LabDirector.binaryPath()) throws -> [String: UInt64] {
        LabDirector.summed(try Shell.run([binary, "stats", "--socket", controlSocket]).output)
    }

    /// One sample of the metrics text.
    public struct MetricSample: Sendable {
        public var name: String
        public var labels: [String: String]
        public var value: Double
    }

    /// The samples of a Prometheus text (comments skipped; label values unescaped).
    public static func samples(_ text: String) -> [MetricSample] {
        text.split(separator: "\n").compactMap { line in
            guard !line.hasPrefix("#"), let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { return nil }
            let series = line[..<space]
            let name = String(series.prefix { $0 != "{" })
            var labels: [String: String] = [:]
            var rest = series.dropFirst(name.count).dropFirst()
            while let equals = rest.firstIndex(of: "=") {
                let label = String(rest[..<equals])
                var value = "", escaped = false, index = rest.index(equals, offsetBy: 2)
                while index < rest.endIndex {
                    let character = rest[index]
                    index = rest.index(after: index)
                    if escaped { value.append(character == "n" ? "\n" : character); escaped = false } else if character == "\\" { escaped = true } else if character == "\"" { break } else { value.append(character) }
                }
                labels[label] = value
                rest = rest[index...].drop { $0 == "," || $0 == "}" }
            }
            return MetricSample(name: name, labels: labels, value: value)
        }
    }

    /// Metrics text summed over labels, by a short key: the family's name without `director_` and
    /// `_total`; frames not forwarded by reason (`drop_<reason>`, `malformed_<reason>`,
    /// `passed_over_<reason>`) and the families split by kind (`connection_changes_created`, …);
    /// durations in seconds as nanoseconds, under `_ns` for `_seconds`.
    public static func summed(_ text: String) -> [String: UInt64] {
        var totals: [String: UInt64] = [:]
        let split = ["director_frames_dropped_total": ("reason", "drop_"), "director_frames_malformed_total": ("reason", "malformed_"),
                     "director_frames_passed_over_total": ("reason", "passed_over_"),
                     "director_connection_changes_total": ("kind", "connection_changes_"), "director_transmit_errors_total": ("kind", "transmit_errors_"),
                     "director_fast_path_frames_total": ("reason", "fast_path_")]
        for sample in samples(text) {
            var key = sample.name.replacingOccurrences(of: "director_", with: "")
            if key.hasSuffix("_total") { key.removeLast("_total".count) }
            var amount = sample.value
            if let (label, prefix) = split[sample.name], let value = sample.labels[label] {
                key = prefix + value
            } else if key.hasSuffix("_seconds") {
                key = key.dropLast("_seconds".count) + "_ns"
                amount *= 1e9
            }
            guard amount >= 0, amount < 1.8e19 else { continue }
            totals[key, default: 0] += UInt64(amount.rounded())
        }
        // Frames sent to the real servers by either path: the workers' rings and the XDP program.
        totals["frames_to_servers"] = (totals["frames_forwarded"] ?? 0) + (totals["fast_path_redirected"] ?? 0)
        return totals
    }

    /// `director fault …` against this director (its config must allow fault injection).
    @discardableResult
    public func fault(_ arguments: [String], binary: String = LabDirector.binaryPath()) throws -> String {
        try Shell.run([binary, "fault"] + arguments + ["--socket", controlSocket]).output
    }

    /// `director buckets ACTION RANGES` against this director.
    @discardableResult
    public func buckets(_ action: String, _ ranges: String = "", binary: String = LabDirector.binaryPath()) throws -> String {
        try Shell.run([binary, "buckets", action] + (ranges.isEmpty ? [] : [ranges]) + ["--socket", controlSocket]).output
    }

    /// `director sync` against this director: the pair as it sees it.
    public func syncReport(binary: String = LabDirector.binaryPath()) throws -> String {
        try Shell.run([binary, "sync", "--socket", controlSocket]).output
    }

    public struct LabError: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }
}

extension Lab {
    /// One client address fetching `count` URLs from the VIP over separate TCP connections
    /// (`Connection: close`), `parallel` at a time. Returns curl's output: bodies and one
    /// "code=NNN" line per transfer.
    public func fetchMany(path: String, count: Int, from clientAddress: String, parallel: Int = 16,
                          virtualAddress: String = Lab.virtualAddress) throws -> String {
        try inNamespace(clientNamespace, [
            "curl", "-s", "--parallel", "--parallel-immediate", "--parallel-max", String(parallel), "--max-time", "20", "--connect-timeout", "5",
            "-H", "Connection: close", "--interface", clientAddress, "-w", "\\ncode=%{http_code}\\n",
            "http://\(Lab.urlHost(virtualAddress))\(path)?n=[1-\(count)]",
        ], check: false).output
    }

    /// Downloads `path` from the VIP and returns the sha256 of what arrived.
    public func downloadSHA256(path: String, from clientAddress: String, limitRate: String? = nil,
                               virtualAddress: String = Lab.virtualAddress) throws -> String {
        var curl = "curl -s --max-time 120 --interface \(clientAddress)"
        if let limitRate { curl += " --limit-rate \(limitRate)" }
        let output = try inNamespace(clientNamespace, ["sh", "-c", "\(curl) -g 'http://\(Lab.urlHost(virtualAddress))\(path)' | sha256sum"]).output
        return String(output.prefix(64))
    }

    /// The host stack's own counters in a namespace (/proc/net/snmp and /proc/net/netstat), keyed
    /// by group and name, e.g. "TcpOutRsts", "TcpExtPruneCalled".
    public func snmpCounters(_ namespace: String) throws -> [String: Int] {
        let lines = try inNamespace(namespace, ["cat", "/proc/net/snmp", "/proc/net/netstat"]).output.split(separator: "\n")
        var counters: [String: Int] = [:]
        var index = 0
        while index + 1 < lines.count {
            let names = lines[index].split(separator: " "), values = lines[index + 1].split(separator: " ")
            if let group = names.first, names.count == values.count {
                for (name, value) in zip(names.dropFirst(), values.dropFirst()) { counters["\(group.dropLast())\(name)"] = Int(value) }
            }
            index += 2
        }
        return counters
    }
}

extension Lab {
    /// Starts `perClient` downloads of `name` from each client address at once (`curl --parallel`,
    /// `--limit-rate` when given), into the lab's folder; returns the curl processes to wait for.
    public func startDownloads(_ name: String, perClient: Int, clients: [String], limitRate: String?, maxTime: Int,
                               virtualAddress: String = Lab.virtualAddress) throws -> [pid_t] {
        try clients.enumerated().map { index, client in
            let folder = "\(memoryDirectory)/downloads/\(virtualAddress.contains(":") ? "v6-" : "")\(index)"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            return try Shell.spawn(["ip", "netns", "exec", clientNamespace, "curl", "-s", "--parallel", "--parallel-immediate", "--parallel-max", String(perClient)]
                                   + (limitRate.map { ["--limit-rate", $0] } ?? []) + ["--max-time", String(maxTime), "--interface", client,
                                    "-o", "\(folder)/file_#1", "http://\(Lab.urlHost(virtualAddress))/\(name)?n=[1-\(perClient)]"],
                                   output: "\(folder)/curl.log")
        }
    }

    /// The sha256 of every downloaded file (missing files are absent), and removes them.
    public func collectDownloads() throws -> [String] {
        let folder = "\(memoryDirectory)/downloads"
        let files = (FileManager.default.enumerator(atPath: folder)?.allObjects as? [String] ?? []).filter { $0.contains("file_") }
        let sums = try files.map { String(try Shell.run(["sha256sum", "\(folder)/\($0)"]).output.prefix(64)) }
        try? FileManager.default.removeItem(atPath: folder)
        return sums
    }
}
