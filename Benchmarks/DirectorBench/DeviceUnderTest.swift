import DirectorLab
import Foundation
import LoadGeneration

/// What forwards the frames in a trial: the director, or the kernel's own forwarding configured to
/// do the same job (the same VIP, the same three real servers, flows split evenly by a hash of the
/// client address and port).
enum DeviceKind: String, CaseIterable, Sendable {
    /// The director, direct routing, Maglev scheduler, one worker on the device's CPU, its
    /// default TPACKET_V3 receive ring.
    case director
    /// The same with the XDP fast path: established flows forwarded by the program on the
    /// device's input, the rest through the ring.
    case directorXDP = "director-xdp"
    /// The same with the program in generic mode (after the socket buffer is made).
    case directorXDPGeneric = "director-xdp-generic"
    /// The same with the low-latency TPACKET_V2 receive ring.
    case directorLowLatency = "director-v2"
    /// The director translating (forwarding: nat), the job conntrack DNAT does: the destination
    /// address becomes the real server's, checksums follow.
    case directorNAT = "director-nat"
    /// Another build of the director (`compare --baseline PATH`, an earlier release say) with its
    /// own defaults: the same run tells whether this one costs more.
    case baseline
    /// The same build with the XDP fast path on: whether a change to the program costs more.
    case baselineXDP = "baseline-xdp"
    /// nftables netdev ingress: `ether daddr set jhash … map { … } fwd`, stateless.
    case nftablesForward = "nft-fwd"
    /// nftables conntrack DNAT in prerouting, then ordinary routing: the kernel's stateful path.
    case nftablesDNAT = "nft-dnat"

    var title: String {
        switch self {
        case .director: "director (DR, mh, TPACKET_V3 ring)"
        case .directorXDP: "director (DR, mh, XDP fast path)"
        case .directorXDPGeneric: "director (DR, mh, XDP fast path, generic mode)"
        case .directorLowLatency: "director (DR, mh, TPACKET_V2 ring)"
        case .directorNAT: "director (NAT, mh, TPACKET_V3 ring)"
        case .baseline: "director, baseline build"
        case .baselineXDP: "director, baseline build, XDP fast path"
        case .nftablesForward: "nftables netdev fwd (DR)"
        case .nftablesDNAT: "nftables conntrack DNAT"
        }
    }

    var rewrite: SinkExpectation.Rewrite { self == .nftablesDNAT || self == .directorNAT ? .destinationNAT : .directRouting }

    var isDirector: Bool { self == .director || self == .directorXDP || self == .directorXDPGeneric || self == .directorLowLatency || self == .directorNAT || self == .baseline || self == .baselineXDP }

    /// The receive ring the director runs with, as its config says it: the format's defaults,
    /// or the fields of `custom` (e.g. "block_size: 262144, block_count: 32").
    func receiveRingConfig(_ custom: String?) -> String {
        switch (self, custom) {
        case (.baseline, _), (.baselineXDP, _), (.director, nil), (.directorNAT, nil), (.directorXDP, nil), (.directorXDPGeneric, nil): ""   // the build's own defaults
        case (.directorLowLatency, _): "  receive_ring: { format: tpacket_v2\(custom.map { ", " + $0 } ?? "") }\n"
        default: "  receive_ring: { format: tpacket_v3, \(custom!) }\n"
        }
    }

    /// The binary this device runs.
    func binary(baseline: String?) -> String {
        self == .baseline || self == .baselineXDP ? baseline ?? DeviceUnderTest.directorBinary : DeviceUnderTest.directorBinary
    }
}

/// A device under test, set up in a `PerformanceLab`'s device namespace.
final class DeviceUnderTest {
    let kind: DeviceKind
    let lab: PerformanceLab
    private(set) var director: LabDirector?

    /// The director binary: $DIRECTOR_BINARY, or the one built beside this benchmark (so a
    /// release benchmark measures a release director).
    static var directorBinary: String {
        if let path = ProcessInfo.processInfo.environment["DIRECTOR_BINARY"] { return path }
        return URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("director").path
    }

    let binary: String

    init(kind: DeviceKind, lab: PerformanceLab, plan: TrafficPlan, connectionCapacity: Int, receiveRing: String? = nil, baseline: String? = nil) throws {
        self.kind = kind
        self.lab = lab
        binary = kind.binary(baseline: baseline)
        let transport = plan.pattern == .udp ? "udp" : "tcp"
        let servers = PerformanceLab.realServers
        switch kind {
        case .director, .directorXDP, .directorXDPGeneric, .directorLowLatency, .directorNAT, .baseline, .baselineXDP:
            let translates = kind == .directorNAT
            let director = try LabDirector(namespace: lab.deviceNamespace, directory: lab.stateDirectory + "/director") { controlSocket in
                """
                director:
                  front_interface: \(lab.deviceInput)
                  back_interface: \(lab.deviceOutput)
                  workers: [\(PerformanceLab.deviceCPU)]
                  connection_capacity: \(connectionCapacity)
                  control_socket: \(controlSocket)
                  hide_frames_from_host: true
                """ + "\n" + kind.receiveRingConfig(receiveRing) + (kind == .directorXDP || kind == .baselineXDP ? "  fast_path: xdp\n" : kind == .directorXDPGeneric ? "  fast_path: xdp-generic\n" : "")
                    + (translates ? "  nat_gateway: { address: \(PerformanceLab.natGatewayAddress) }\n" : "") + """
                services:
                  - address: \(PerformanceLab.virtualAddress)
                    port: \(plan.destinationPort)
                    protocol: \(transport)
                    scheduler: mh
                    forwarding: \(translates ? "nat" : "dr")
                    real_servers:
                """ + "\n" + servers.map { "      - { address: \($0.address), weight: 1, mac: \($0.mac) }\n" }.joined()
            }
            try director.start(binary: binary)
            self.director = director
        case .nftablesForward:
            let map = servers.enumerated().map { "\($0.offset) : \($0.element.mac)" }.joined(separator: ", ")
            try lab.run(lab.deviceNamespace, "nft -f -", input: """
                table netdev bench {
                  chain ingress {
                    type filter hook ingress device "\(lab.deviceInput)" priority 0; policy accept;
                    ip daddr \(PerformanceLab.virtualAddress) \(transport) dport \(plan.destinationPort) ether saddr set \(PerformanceLab.deviceOutputMAC) ether daddr set jhash ip saddr . \(transport) sport mod \(servers.count) map { \(map) } fwd to "\(lab.deviceOutput)"
                  }
                }
                """)
        case .nftablesDNAT:
            // One-way traffic: no reply ever confirms a window, so conntrack must not judge
            // sequence numbers (be_liberal), and a flow's first data segment opens its entry
            // (tcp_loose, the default), as the director's midstream pick-up does.
            try lab.run(lab.deviceNamespace, """
                sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
                net.netfilter.nf_conntrack_tcp_be_liberal=1 net.netfilter.nf_conntrack_tcp_loose=1
                """)
            try lab.run(lab.deviceNamespace, "ip addr add 198.18.0.1/24 dev \(lab.deviceInput) && ip addr add 198.18.2.1/24 dev \(lab.deviceOutput)")
            for server in servers {
                try lab.run(lab.deviceNamespace, "ip neigh replace \(server.address) lladdr \(server.mac) nud permanent dev \(lab.deviceOutput)")
            }
            let map = servers.enumerated().map { "\($0.offset) : \($0.element.address)" }.joined(separator: ", ")
            try lab.run(lab.deviceNamespace, "nft -f -", input: """
                table ip bench {
                  chain prerouting {
                    type nat hook prerouting priority dstnat; policy accept;
                    ip daddr \(PerformanceLab.virtualAddress) \(transport) dport \(plan.destinationPort) dnat to jhash ip saddr . \(transport) sport mod \(servers.count) map { \(map) }
                  }
                }
                """)
        }
    }

    /// The director's counters (empty for the kernel's devices).
    func stats() throws -> [String: UInt64] {
        try director?.stats(binary: binary) ?? [:]
    }

    /// The director's resident set (VmRSS), bytes.
    func residentBytes() -> UInt64? {
        guard let pid = director?.processID,
              let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kilobytes = UInt64(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
        return kilobytes * 1024
    }

    func stop() { director?.stop() }
}
