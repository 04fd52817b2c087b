import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The Linux capabilities the director needs, checked at start against its effective set, so a
/// director started without one says which and why instead of failing half-way (a packet
/// socket refused, an nftables table not added). Root has them all; a service runs as user
/// `director` with them as ambient capabilities (see `packaging/director.service`).
public enum Capability: Int, CaseIterable, Sendable, CustomStringConvertible {
    case netAdmin = 12
    case netRaw = 13
    case ipcLock = 14
    case sysNice = 23

    public var description: String {
        switch self {
        case .netAdmin: "CAP_NET_ADMIN"
        case .netRaw: "CAP_NET_RAW"
        case .ipcLock: "CAP_IPC_LOCK"
        case .sysNice: "CAP_SYS_NICE"
        }
    }

    /// The effective set of this process, from /proc/self/status (nil if unreadable).
    public static func effective(status: String? = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) -> UInt64? {
        guard let status, let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }) else { return nil }
        return UInt64(line.dropFirst("CapEff:".count).drop { $0 == " " || $0 == "\t" }, radix: 16)
    }

    /// What `configuration` needs, and what for.
    public static func needed(by configuration: Configuration) -> [(Capability, String)] {
        var needed: [(Capability, String)] = [
            (.netRaw, "packet sockets and rings on the front and back interfaces"),
            (.netAdmin, "the transmit socket's buffer beyond net.core.wmem_max, and the nftables tables that hide the VIPs' frames "
                + "from the host stack and admit only the peer's sync datagrams"),
        ]
        if let peer = configuration.peer, peer.syncRealtimePriority > 0 {
            needed.append((.sysNice, "SCHED_FIFO for the sync and liveness threads (director.peer.sync_realtime_priority)"))
        }
        if configuration.locksMemory {
            needed.append((.ipcLock, "locking the director's memory, so the data path never waits for a page from swap (director.lock_memory)"))
        }
        return needed
    }

    /// The first capability `configuration` needs that `effective` lacks, as an operator's message.
    public static func missing(for configuration: Configuration, effective: UInt64?) -> String? {
        guard let effective else { return nil }
        let lacking = needed(by: configuration).filter { effective & (1 << UInt64($0.0.rawValue)) == 0 }
        guard !lacking.isEmpty else { return nil }
        return "missing capabilit\(lacking.count == 1 ? "y" : "ies") " + lacking.map { "\($0.0) (\($0.1))" }.joined(separator: "; ")
            + ". Run as root, or give the director its capabilities: in its systemd unit AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN CAP_SYS_NICE CAP_IPC_LOCK CAP_BPF"
            + " (packaging/director.service), by hand setpriv --inh-caps=+net_raw,+net_admin,+sys_nice,+ipc_lock,+bpf --ambient-caps=+net_raw,+net_admin,+sys_nice,+ipc_lock,+bpf"
    }
}

/// Why the director did not start, in an operator's words.
public struct StartError: Error, CustomStringConvertible {
    public let description: String
}
