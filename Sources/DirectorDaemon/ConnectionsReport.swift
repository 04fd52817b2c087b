import DirectorCore
import Foundation

/// The connections `director connections` lists, as `ipvsadm -L -c -n` does, plus whose they
/// are: this director's own, or a replica of the peer's (kept to take the flow over). Its JSON
/// (`--json`) is a stable shape: fields are added, never renamed or removed.
struct ConnectionsReport: Codable, Sendable, Equatable {
    var node: UInt8
    var connections: [Connection]
    /// More connections matched than the limit allowed.
    var truncated: Bool
    /// Workers that did not answer in time (stalled): their connections are missing.
    var workersMissing: [Int]

    struct Connection: Codable, Sendable, Equatable {
        var transport: String
        var client: String
        var virtual: String
        /// nil for a real server this director no longer knows.
        var realServer: String?
        var state: String
        var expiresInSeconds: Double
        /// "own" (this director forwards it) or "replica" (the peer's, synced here).
        var owner: String
        /// The client has shown a real conversation (see `ConnectionEntry.isProven`).
        var proven: Bool
        var worker: Int

        enum CodingKeys: String, CodingKey {
            case transport = "protocol", client, virtual, realServer = "real_server", state
            case expiresInSeconds = "expires_in_seconds", owner, proven, worker
        }
    }

    enum CodingKeys: String, CodingKey {
        case node, connections, truncated, workersMissing = "workers_missing"
    }

    func text() -> String {
        var lines = ["Pro  Expire  State        Source                 Virtual                Destination            Owner"]
        for connection in connections {
            let seconds = Int(connection.expiresInSeconds.rounded(.up))
            let expire = "\(seconds / 60):" + (seconds % 60 < 10 ? "0" : "") + "\(seconds % 60)"
            lines.append([ConnectionsReport.pad(connection.transport.uppercased(), 4), ConnectionsReport.pad(expire, 7),
                          ConnectionsReport.pad(connection.state, 12), ConnectionsReport.pad(connection.client, 22),
                          ConnectionsReport.pad(connection.virtual, 22), ConnectionsReport.pad(connection.realServer ?? "unknown", 22),
                          connection.owner].joined(separator: " "))
        }
        if truncated { lines.append("… more connections match: raise --limit or narrow the filter") }
        if !workersMissing.isEmpty {
            lines.append("workers \(workersMissing.map(String.init).joined(separator: ", ")) did not answer in time: their connections are missing")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }

    func json() -> String { JSONReport.encode(self) }
}
