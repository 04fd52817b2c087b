import DirectorLab
import Foundation
import PacketIO
import Testing

/// Every test that builds network namespaces, run one at a time: they share the machine's two
/// CPUs (directors pin workers to them) and the kernel's namespace machinery. Each still uses a
/// namespace prefix of its own and removes what it built, even when it fails.
@Suite("Lab", .serialized, .enabled(if: getuid() == 0, "the lab needs root (network namespaces)"))
enum LabSuites {}

extension Lab {
    /// TCP segments the real servers' stacks have received (TcpInSegs, summed). TCP rather than IP
    /// input: a host loops its own IGMP reports back to itself, and those count as IP input.
    func tcpSegmentsAtRealServers() throws -> Int {
        try (0..<realServerCount).map { try snmpCounters(realServerNamespace($0))["TcpInSegs"] ?? 0 }.reduce(0, +)
    }
}

/// A namespace of the test's own holding a veth pair kf0–kf1, removed afterwards, even on failure.
func withVethPair(namespace: String, _ body: () throws -> Void) throws {
    _ = try? Shell.run(["ip", "netns", "del", namespace], check: false)
    try Shell.run(["ip", "netns", "add", namespace])
    defer { _ = try? Shell.run(["ip", "netns", "del", namespace], check: false) }
    try Shell.run(["ip", "-n", namespace, "link", "add", "kf0", "type", "veth", "peer", "name", "kf1"])
    try Shell.run(["ip", "netns", "exec", namespace, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"])
    for name in ["kf0", "kf1"] { try Shell.run(["ip", "-n", namespace, "link", "set", name, "up"]) }
    try body()
}

/// Runs `body` with this thread inside the namespace; sockets opened there stay there.
func insideNamespace<T>(_ namespace: String, _ body: () throws -> T) throws -> T {
    try NetworkNamespace.run(in: "/var/run/netns/\(namespace)", body)
}

/// A lab with two directors, both started with `settings`, that have split the buckets as
/// configured (node 1 0-511, node 2 512-1023). The caller stops and tears down; if starting
/// fails, what was built is removed here.
func startPair(prefix: String, scheduler: String, settings: LabDirector.Settings = LabDirector.Settings(),
               binary: String = LabDirector.binaryPath()) throws -> (Lab, LabDirector, LabDirector) {
    let lab = Lab(prefix: prefix, directors: 2, routesThroughDirectors: settings.forwarding == "nat", dualStack: settings.addsIPv6Service,
                  clientsFinishChecksums: settings.fastPath == "xdp")
    do {
        try lab.setUp(largeFileMegabytes: 1)
        var settings = settings
        settings.scheduler = scheduler
        let directors = try lab.startPair(settings: settings, binary: binary)
        return (lab, directors[0], directors[1])
    } catch {
        lab.tearDown()
        throw error
    }
}

/// The release build of the director, which the flood tests run: a flood's rate is set by what
/// the production build absorbs on the lab's two CPUs (`scripts/test.sh` builds it).
func releaseDirector() throws -> String {
    let path = Lab.packageRoot + "/.build/release/director"
    guard FileManager.default.isExecutableFile(atPath: path) else {
        throw LabDirector.LabError(description: "\(path) is missing: the flood tests run the release build (swift build -c release --product director, as scripts/test.sh does)")
    }
    return path
}

/// Polls `condition` every 20 ms until it holds; throws naming `what` after `seconds`.
func waitUntil(seconds: Double, _ what: String, _ condition: () throws -> Bool) throws {
    try Lab.waitUntil(seconds: seconds, what, condition)
}
