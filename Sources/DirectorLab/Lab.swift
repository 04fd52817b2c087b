import Foundation

/// The lab: the director's whole topology built from network namespaces on one machine.
///
///     client ──── router ──┬── front bridge (floods every frame to every port) ── director(s)
///     198.18.1.10/.11      │   198.18.0.0/24, VIP 198.18.0.100
///                          └── back bridge ── director(s) back, real servers rs1..rs3 (nginx)
///                              198.18.2.0/24                    VIP on lo, arp_ignore=1, arp_announce=2
///
/// Real servers answer clients directly through the router (direct routing). In a NAT lab
/// (`routesThroughDirectors`) their default gateway is the NAT gateway address the directors
/// answer for on the back segment instead, and only the replies of direct-routing services
/// (from the VIP) go to the router; nginx listens on `translatedPort` too, for port mapping.
/// Every name starts
/// with the lab's prefix, so labs with different prefixes never collide, and `tearDown` removes
/// everything with the prefix, including what an earlier, killed run left behind.
/// All addresses come from 198.18.0.0/15 (RFC 2544's benchmarking range). A dual-stack lab
/// (`dualStack`) adds IPv6 on the same segments from 2001:2::/48 (RFC 5180's): the front
/// 2001:2::/64 (VIP 2001:2::100), the clients 2001:2:0:1::/64, the back 2001:2:0:2::/64.
public final class Lab: @unchecked Sendable {
    public let prefix: String
    public let realServerCount: Int
    public let directorCount: Int
    public let stateDirectory: String
    /// Where what the clients write at download speed goes (the downloads, the capture): memory
    /// when /dev/shm has room for it, so that the disk's writeback cannot stall a client and
    /// pass for a stall of the path. Removed with the lab.
    public let memoryDirectory: String
    /// NAT: the real servers route through the directors' gateway address.
    public let routesThroughDirectors: Bool
    /// IPv6 beside IPv4 on every segment but the crossover; else IPv6 is off everywhere.
    public let dualStack: Bool
    /// The clients compute their transport checksums themselves (see `buildRouterAndClient`),
    /// so that the XDP fast path takes their flows.
    public let clientsFinishChecksums: Bool

    /// Where every lab keeps its files, a folder per prefix.
    public static let stateRoot = "/tmp/director-lab"
    /// The memory-backed counterpart, used when /dev/shm may hold a lab's downloads (a
    /// container's default 64 MiB may not) and the machine has the memory for them besides
    /// (tmpfs's limit is not free memory): 4 GiB of each.
    public static let memoryRoot: String = {
        var filesystem = statvfs()
        let room = statvfs("/dev/shm", &filesystem) == 0 ? UInt64(filesystem.f_bavail) * UInt64(filesystem.f_frsize) : 0
        let meminfo = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
        let available = meminfo.split(separator: "\n").first { $0.hasPrefix("MemAvailable:") }
            .flatMap { UInt64($0.split(separator: " ")[1]) }.map { $0 * 1024 } ?? 0
        return room >= 4 << 30 && available >= 4 << 30 ? "/dev/shm/director-lab" : stateRoot
    }()
    public static let virtualAddress = "198.18.0.100"
    public static let routerFront = "198.18.0.1"
    public static let routerClientSide = "198.18.1.1"
    public static let routerBack = "198.18.2.1"
    public static let clientAddresses = ["198.18.1.10", "198.18.1.11", "198.18.1.12", "198.18.1.13"]
    public static func realServerAddress(_ index: Int) -> String { "198.18.2.\(11 + index)" }
    public static func directorBackAddress(_ index: Int) -> String { "198.18.2.\(2 + index)" }
    public static func crossoverAddress(_ index: Int) -> String { "198.18.3.\(1 + index)" }
    /// The NAT real servers' default gateway, which the directors answer for with one MAC.
    public static let natGatewayAddress = "198.18.2.254"
    public static let natGatewayMAC = "02:18:00:00:02:fe"
    /// The port nginx also listens on at each real server's own address: NAT maps VIP:80 to it.
    public static let translatedPort = 8080
    // IPv6 (dual-stack labs).
    public static let virtualAddress6 = "2001:2::100"
    public static let routerFront6 = "2001:2::1"
    public static let routerClientSide6 = "2001:2:0:1::1"
    public static let routerBack6 = "2001:2:0:2::1"
    public static let clientAddresses6 = ["2001:2:0:1::10", "2001:2:0:1::11", "2001:2:0:1::12", "2001:2:0:1::13"]
    public static func realServerAddress6(_ index: Int) -> String { "2001:2:0:2::\(11 + index)" }
    public static func directorBackAddress6(_ index: Int) -> String { "2001:2:0:2::\(2 + index)" }
    /// The NAT real servers' IPv6 default gateway (the same MAC as the IPv4 one).
    public static let natGatewayAddress6 = "2001:2:0:2::fe"
    /// "198.18.0.100" or "[2001:2::100]", as a URL's host.
    public static func urlHost(_ address: String) -> String { address.contains(":") ? "[\(address)]" : address }

    /// The pair's shared sync key in the lab (a real pair uses its own: `openssl rand -hex 32`).
    public static let syncKey = "6c61622d73796e632d6b65792d6f6e6c792d666f722d746865206c61622d2d2d"

    public static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
    /// A director log line's UTC stamp ("2026-12-03T09:19:50.123Z") as seconds since the epoch.
    public static func parseLogStamp(_ stamp: Substring) -> Double? {
        let digits = stamp.split(whereSeparator: { !$0.isNumber }).compactMap { Int32($0) }
        guard digits.count >= 7 else { return nil }
        var parts = tm()
        parts.tm_year = digits[0] - 1900
        parts.tm_mon = digits[1] - 1
        parts.tm_mday = digits[2]
        parts.tm_hour = digits[3]
        parts.tm_min = digits[4]
        parts.tm_sec = digits[5]
        return Double(timegm(&parts)) + Double(digits[6]) / 1000
    }

    /// Every director's front port carries this MAC: to clients the pair is one machine.
    public static let virtualMAC = "02:18:00:00:00:64"
    /// A file a limited-rate download takes about ten seconds to fetch.
    public static let mediumFileName = "medium.bin"
    public static func realServerName(_ index: Int) -> String { "rs\(index + 1)" }
    /// The large file the lab's web servers share, and its size.
    public static let largeFileName = "big.bin"
    /// The path that serves `file` from the real servers at most `rate` bytes a second per
    /// connection (nginx's limit_rate; `rate` like "4400k").
    public static func pacedPath(_ file: String, rate: String) -> String { "paced/\(rate)/\(file)" }

    public init(prefix: String, realServers: Int = 3, directors: Int = 1, routesThroughDirectors: Bool = false, dualStack: Bool = false,
                clientsFinishChecksums: Bool = ProcessInfo.processInfo.environment["DIRECTOR_LAB_FAST_PATH"] == "xdp") {
        precondition(prefix.count <= 6 && prefix.allSatisfy { $0.isLetter || $0.isNumber })
        self.prefix = prefix
        self.clientsFinishChecksums = clientsFinishChecksums
        self.routesThroughDirectors = routesThroughDirectors
        self.dualStack = dualStack
        realServerCount = realServers
        directorCount = directors
        stateDirectory = "\(Lab.stateRoot)/\(prefix)"
        memoryDirectory = "\(Lab.memoryRoot)/\(prefix)-memory"
    }

    public var clientNamespace: String { "\(prefix)-client" }
    public var routerNamespace: String { "\(prefix)-router" }
    public var switchNamespace: String { "\(prefix)-switch" }
    public func directorNamespace(_ index: Int) -> String { "\(prefix)-dir\(index + 1)" }
    public func realServerNamespace(_ index: Int) -> String { "\(prefix)-rs\(index + 1)" }

    var allNamespaces: [String] {
        [clientNamespace, routerNamespace, switchNamespace] + (0..<directorCount).map(directorNamespace) + (0..<realServerCount).map(realServerNamespace)
    }

    // MARK: - Building

    /// Builds the topology and starts the web servers, after removing any leftovers.
    public func setUp(largeFileMegabytes: Int = 50) throws {
        tearDown()
        try FileManager.default.createDirectory(atPath: stateDirectory + "/www", withIntermediateDirectories: true)
        for namespace in allNamespaces {
            try Shell.run(["ip", "netns", "add", namespace])
            try inNamespace(namespace, ["ip", "link", "set", "lo", "up"])
            if dualStack && namespace != switchNamespace {
                // Addresses usable at once (no duplicate address detection to wait for), and no
                // autoconfiguration from stray advertisements.
                try inNamespace(namespace, ["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                                            "net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0"])
            } else {
                // Stray IPv6 frames (router solicitations…) would only add noise to every segment.
                try inNamespace(namespace, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"])
            }
        }
        try buildSwitch()
        try buildRouterAndClient()
        for index in 0..<directorCount { try buildDirectorHost(index) }
        if directorCount == 2 { try buildCrossover() }
        for index in 0..<realServerCount { try buildRealServer(index) }
        try writeWebContent(largeFileMegabytes: largeFileMegabytes)
        for index in 0..<realServerCount { try startWebServer(index) }
    }

    /// Two bridges in their own namespace. The front one floods every frame to every port and
    /// learns nothing: with learning on, the entry for a MAC shared by two directors would follow
    /// whichever transmitted last, and the other would stop receiving. Neither snoops multicast
    /// listeners: a director joins a VIP's solicited-node group without telling the switch (it
    /// sends no MLD report), as many hosts behind a switch without snooping do.
    private func buildSwitch() throws {
        try inNamespace(switchNamespace, ["ip", "link", "add", "front", "type", "bridge", "ageing_time", "0", "stp_state", "0", "mcast_snooping", "0"])
        try inNamespace(switchNamespace, ["ip", "link", "add", "back", "type", "bridge", "stp_state", "0", "mcast_snooping", "0"])
        try inNamespace(switchNamespace, ["ip", "link", "set", "front", "up"])
        try inNamespace(switchNamespace, ["ip", "link", "set", "back", "up"])
    }

    /// A veth pair from the switch (port `port` on bridge `bridge`) to `namespace` (as `name`).
    private func plug(_ namespace: String, as name: String, into bridge: String, port: String) throws {
        try inNamespace(switchNamespace, ["ip", "link", "add", port, "type", "veth", "peer", "name", name, "netns", namespace])
        try inNamespace(switchNamespace, ["ip", "link", "set", port, "master", bridge])
        if bridge == "front" {
            try inNamespace(switchNamespace, ["bridge", "link", "set", "dev", port, "learning", "off", "flood", "on", "mcast_flood", "on"])
        }
        try inNamespace(switchNamespace, ["ip", "link", "set", port, "up"])
        try inNamespace(namespace, ["ip", "link", "set", name, "up"])
    }

    private func buildRouterAndClient() throws {
        try plug(routerNamespace, as: "front", into: "front", port: "rt-f")
        try plug(routerNamespace, as: "back", into: "back", port: "rt-b")
        try inNamespace(routerNamespace, ["ip", "addr", "add", "\(Lab.routerFront)/24", "dev", "front"])
        try inNamespace(routerNamespace, ["ip", "addr", "add", "\(Lab.routerBack)/24", "dev", "back"])
        try inNamespace(routerNamespace, ["ip", "link", "add", "client", "type", "veth", "peer", "name", "eth0", "netns", clientNamespace])
        try inNamespace(routerNamespace, ["ip", "addr", "add", "\(Lab.routerClientSide)/24", "dev", "client"])
        try inNamespace(routerNamespace, ["ip", "link", "set", "client", "up"])
        // Replies from the real servers arrive on `back` though the VIP is reached via `front`:
        // strict reverse-path filtering would drop them.
        try inNamespace(routerNamespace, ["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                                          "net.ipv4.conf.default.rp_filter=0", "net.ipv4.conf.back.rp_filter=0", "net.ipv4.conf.front.rp_filter=0"])
        try inNamespace(clientNamespace, ["ip", "link", "set", "eth0", "up"])
        if clientsFinishChecksums {
            // A veth sender leaves the transport checksum to "offload", and the director never
            // offers such a flow to the XDP program (which sees bytes, not the socket buffer's
            // note): the clients finish their checksums, as frames off a wire always arrive.
            try inNamespace(clientNamespace, ["ethtool", "-K", "eth0", "tx", "off"], check: false)
        }
        for address in Lab.clientAddresses { try inNamespace(clientNamespace, ["ip", "addr", "add", "\(address)/24", "dev", "eth0"]) }
        try inNamespace(clientNamespace, ["ip", "route", "add", "default", "via", Lab.routerClientSide])
        if dualStack {
            try inNamespace(routerNamespace, ["ip", "-6", "addr", "add", "\(Lab.routerFront6)/64", "dev", "front", "nodad"])
            try inNamespace(routerNamespace, ["ip", "-6", "addr", "add", "\(Lab.routerBack6)/64", "dev", "back", "nodad"])
            try inNamespace(routerNamespace, ["ip", "-6", "addr", "add", "\(Lab.routerClientSide6)/64", "dev", "client", "nodad"])
            try inNamespace(routerNamespace, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
            for address in Lab.clientAddresses6 {
                try inNamespace(clientNamespace, ["ip", "-6", "addr", "add", "\(address)/64", "dev", "eth0", "nodad"])
            }
            try inNamespace(clientNamespace, ["ip", "-6", "route", "add", "default", "via", Lab.routerClientSide6])
        }
        // Many short connections from few addresses: give the client every ephemeral port.
        // A small receive buffer keeps a rate-limited download (curl --limit-rate) on the wire for
        // its whole length: with the usual autotuned megabytes the server would push the whole
        // file at once, and the "long" download would be idle on the network.
        try inNamespace(clientNamespace, ["sysctl", "-qw", "net.ipv4.ip_local_port_range=10000 65000", "net.ipv4.tcp_tw_reuse=1",
                                          "net.ipv4.tcp_rmem=4096 16384 16384"])
    }

    /// A director host. It holds the VIP on `lo` and forwards IP, as a careless host might: the
    /// director's host-stack guard must keep that stack from answering or forwarding its frames.
    private func buildDirectorHost(_ index: Int) throws {
        let namespace = directorNamespace(index)
        try plug(namespace, as: "front", into: "front", port: "d\(index + 1)-f")
        try inNamespace(namespace, ["ip", "link", "set", "front", "address", Lab.virtualMAC])
        try plug(namespace, as: "back", into: "back", port: "d\(index + 1)-b")
        // The XDP fast path redirects frames into `back`; a veth takes them only when its peer
        // has a receive queue of its own (NAPI), which GRO turns on (a NIC always has one).
        try inNamespace(switchNamespace, ["ethtool", "-K", "d\(index + 1)-b", "gro", "on"], check: false)
        if routesThroughDirectors {
            // The gateway MAC is shared like the VIP's: the switch must flood it to both directors.
            try inNamespace(switchNamespace, ["bridge", "link", "set", "dev", "d\(index + 1)-b", "learning", "off", "flood", "on"])
        }
        try inNamespace(namespace, ["ip", "addr", "add", "\(Lab.directorBackAddress(index))/24", "dev", "back"])
        try inNamespace(namespace, ["ip", "addr", "add", "\(Lab.virtualAddress)/32", "dev", "lo"])
        try inNamespace(namespace, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        if dualStack {
            // The host's own IPv6 stays off the front, where both directors carry one MAC (and so
            // one link-local address); the back has an address for health checks and the
            // link-local one Neighbor Solicitations for the real servers are sent from.
            try inNamespace(namespace, ["sysctl", "-qw", "net.ipv6.conf.front.disable_ipv6=1", "net.ipv6.conf.all.forwarding=1"])
            try inNamespace(namespace, ["ip", "-6", "addr", "add", "\(Lab.directorBackAddress6(index))/64", "dev", "back", "nodad"])
            try inNamespace(namespace, ["ip", "-6", "addr", "add", "\(Lab.virtualAddress6)/128", "dev", "lo"])
        }
        for port in ["front", "back"] {
            // GRO would hand the ring TCP data merged into frames larger than the MTU.
            try inNamespace(namespace, ["ethtool", "-K", port, "gro", "off"], check: false)
        }
    }

    /// The crossover link between the two directors (connection sync and heartbeats).
    private func buildCrossover() throws {
        try inNamespace(directorNamespace(0), ["ip", "link", "add", "cross", "type", "veth", "peer", "name", "cross", "netns", directorNamespace(1)])
        for index in 0..<2 {
            try inNamespace(directorNamespace(index), ["ip", "addr", "add", "\(Lab.crossoverAddress(index))/24", "dev", "cross"])
            try inNamespace(directorNamespace(index), ["ip", "link", "set", "cross", "up"])
        }
    }

    /// Cuts the crossover link (both ends see it go down), as a pulled cable would.
    public func cutCrossover() throws {
        try inNamespace(directorNamespace(0), ["ip", "link", "set", "cross", "down"])
    }

    public func restoreCrossover() throws {
        try inNamespace(directorNamespace(0), ["ip", "link", "set", "cross", "up"])
    }

    private func buildRealServer(_ index: Int) throws {
        let namespace = realServerNamespace(index)
        try plug(namespace, as: "eth0", into: "back", port: Lab.realServerName(index))
        try inNamespace(namespace, ["ip", "addr", "add", "\(Lab.realServerAddress(index))/24", "dev", "eth0"])
        if routesThroughDirectors {
            // On a wire every frame fits the MTU; a veth would hand the directors the stack's
            // 64 KiB TSO segments instead, which no ring slot holds.
            try inNamespace(namespace, ["ethtool", "-K", "eth0", "tso", "off", "gso", "off"], check: false)
            try inNamespace(namespace, ["ip", "route", "add", "default", "via", Lab.natGatewayAddress])
            // Direct routing's replies come from the VIP and still go straight to the router.
            try inNamespace(namespace, ["ip", "route", "add", "default", "via", Lab.routerBack, "table", "100"])
            try inNamespace(namespace, ["ip", "rule", "add", "from", Lab.virtualAddress, "table", "100"])
        } else {
            try inNamespace(namespace, ["ip", "route", "add", "default", "via", Lab.routerBack])
        }
        if dualStack {
            // The IPv6 VIP on lo: Linux answers a Neighbor Solicitation only for an address of the
            // interface it arrived on, so no ARP-like settings are needed for it.
            try inNamespace(namespace, ["ip", "-6", "addr", "add", "\(Lab.realServerAddress6(index))/64", "dev", "eth0", "nodad"])
            try inNamespace(namespace, ["ip", "-6", "addr", "add", "\(Lab.virtualAddress6)/128", "dev", "lo"])
            if routesThroughDirectors {
                try inNamespace(namespace, ["ip", "-6", "route", "add", "default", "via", Lab.natGatewayAddress6])
                try inNamespace(namespace, ["ip", "-6", "route", "add", "default", "via", Lab.routerBack6, "table", "100"])
                try inNamespace(namespace, ["ip", "-6", "rule", "add", "from", Lab.virtualAddress6, "table", "100"])
            } else {
                try inNamespace(namespace, ["ip", "-6", "route", "add", "default", "via", Lab.routerBack6])
            }
        }
        try configureRealServerKernel(namespace)
    }

    /// The DR real-server settings (the VIP on `lo`, never announced or answered for by ARP),
    /// applied by the project's own tuning script, so every lab run exercises it.
    private func configureRealServerKernel(_ namespace: String) throws {
        try inNamespace(namespace, [Lab.tuningScript, "apply", "--role", "realserver", "--interface", "eth0",
                                    "--vip", Lab.virtualAddress, "--state-dir", "\(stateDirectory)/\(namespace)-tuning"])
        try inNamespace(namespace, [Lab.tuningScript, "check", "--role", "realserver", "--interface", "eth0", "--vip", Lab.virtualAddress])
    }

    /// The package's root folder (the lab runs from a checkout).
    public static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    /// `tuning/director-tuning` in this checkout.
    public static let tuningScript = packageRoot + "/tuning/director-tuning"

    private func writeWebContent(largeFileMegabytes: Int) throws {
        let www = stateDirectory + "/www"
        try "director lab\n".write(toFile: www + "/index.html", atomically: true, encoding: .utf8)
        try Shell.run(["dd", "if=/dev/urandom", "of=\(www)/\(Lab.largeFileName)", "bs=1M", "count=\(largeFileMegabytes)", "status=none"])
        try Shell.run(["dd", "if=/dev/urandom", "of=\(www)/\(Lab.mediumFileName)", "bs=64K", "count=16", "status=none"])
        try Shell.run(["chmod", "-R", "a+rX", Lab.stateRoot])
    }

    /// The sha256 of the large file, as the client must see it after a download.
    public func largeFileSHA256() throws -> String { try sha256(of: Lab.largeFileName) }

    /// The sha256 of a file the web servers serve.
    public func sha256(of name: String) throws -> String {
        String(try Shell.run(["sha256sum", stateDirectory + "/www/" + name]).output.prefix(64))
    }

    /// Starts (or starts again) the nginx of real server `index`.
    public func startWebServer(_ index: Int) throws {
        let directory = "\(stateDirectory)/\(Lab.realServerName(index))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let config = """
        worker_processes 1;
        daemon on;
        pid \(directory)/nginx.pid;
        error_log \(directory)/error.log warn;
        events { worker_connections 8192; }
        http {
            # One line per request to the VIP (the health checks come to the server's own address).
            log_format served '$server_addr:$server_port $remote_addr:$remote_port $status';
            access_log \(directory)/access.log served;
            client_body_temp_path \(directory)/body;
            proxy_temp_path \(directory)/proxy;
            fastcgi_temp_path \(directory)/fastcgi;
            uwsgi_temp_path \(directory)/uwsgi;
            scgi_temp_path \(directory)/scgi;
            server {
                listen \(Lab.virtualAddress):80 backlog=4096;
                # The director's health checks come to the server's own address.
                listen \(Lab.realServerAddress(index)):80;
                # NAT with port mapping sends VIP:80 here.
                listen \(Lab.realServerAddress(index)):\(Lab.translatedPort) backlog=4096;\(ipv6Listens(index))
                root \(stateDirectory)/www;
                # 200 "ok", or 500 while the file `unhealthy` exists (see `setHealth`).
                location = /health { if (-f \(directory)/unhealthy) { return 500; } default_type text/plain; return 200 "ok\\n"; }
                location = /whoami { default_type text/plain; return 200 "\(Lab.realServerName(index))\\n"; }
                # /paced/RATE/FILE: FILE sent at most RATE bytes a second per connection (e.g. 4400k).
                location ~ ^/paced/(?<rate>[0-9]+[km]?)/(?<file>[a-z.]+)$ { alias \(stateDirectory)/www/$file; limit_rate $rate; }
            }
        }
        """
        try config.write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
        // nginx daemonizes: the launching process exits once the master runs.
        try inNamespace(realServerNamespace(index), ["nginx", "-c", directory + "/nginx.conf"])
    }

    /// The dual-stack lab's nginx listens on the IPv6 VIP and the server's own IPv6 address too.
    private func ipv6Listens(_ index: Int) -> String {
        guard dualStack else { return "" }
        return "\n            listen [\(Lab.virtualAddress6)]:80 backlog=4096;\n            listen [\(Lab.realServerAddress6(index))]:80;"
            + "\n            listen [\(Lab.realServerAddress6(index))]:\(Lab.translatedPort) backlog=4096;"
    }

    /// Stops the nginx of real server `index` (its master, by the PID it wrote), as a crashed
    /// service would be: the host still answers, its port refuses.
    public func stopWebServer(_ index: Int) throws {
        let directory = "\(stateDirectory)/\(Lab.realServerName(index))"
        try inNamespace(realServerNamespace(index), ["nginx", "-c", directory + "/nginx.conf", "-s", "stop"])
        let deadline = Date().addingTimeInterval(5)
        while FileManager.default.fileExists(atPath: directory + "/nginx.pid"), Date() < deadline { usleep(20_000) }
    }

    /// How many requests real server `index`'s nginx served on the VIP (direct routing) or on
    /// its own address's translated port (NAT), by its access log.
    public func requestsServed(_ index: Int) -> Int {
        let log = (try? String(contentsOfFile: "\(stateDirectory)/\(Lab.realServerName(index))/access.log", encoding: .utf8)) ?? ""
        let translated = "\(Lab.realServerAddress(index)):\(Lab.translatedPort) "
        let translated6 = "\(Lab.realServerAddress6(index)):\(Lab.translatedPort) "
        return log.split(separator: "\n").filter {
            $0.hasPrefix(Lab.virtualAddress + ":") || $0.hasPrefix(translated) || $0.hasPrefix(Lab.virtualAddress6 + ":") || $0.hasPrefix(translated6)
        }.count
    }

    /// Makes real server `index`'s /health answer 500 (false) or 200 "ok" (true); its other
    /// pages go on as before.
    public func setHealth(_ index: Int, healthy: Bool) throws {
        let marker = "\(stateDirectory)/\(Lab.realServerName(index))/unhealthy"
        if healthy { try? FileManager.default.removeItem(atPath: marker) } else { try "".write(toFile: marker, atomically: true, encoding: .utf8) }
    }

    // MARK: - Running things inside

    @discardableResult
    public func inNamespace(_ namespace: String, _ arguments: [String], input: String? = nil, check: Bool = true) throws -> Shell.Result {
        try Shell.run(["ip", "netns", "exec", namespace] + arguments, input: input, check: check)
    }

    // MARK: - Tearing down

    /// Removes every namespace with this lab's prefix (stopping the processes inside first: they
    /// are the lab's own nginx and director processes) and the lab's files. Safe to call twice,
    /// and after a run that was killed half-way.
    public func tearDown() {
        let listed = (try? Shell.run(["ip", "netns", "list"], check: false).output) ?? ""
        let namespaces = listed.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
            .filter { $0.hasPrefix(prefix + "-") }
        for namespace in namespaces {
            let pids = ((try? Shell.run(["ip", "netns", "pids", namespace], check: false).output) ?? "")
                .split(whereSeparator: \.isNewline).compactMap { Int32($0) }
            for pid in pids { kill(pid, SIGTERM) }
            for _ in 0..<50 where pids.contains(where: { kill($0, 0) == 0 }) { usleep(20_000) }
            for pid in pids where kill(pid, 0) == 0 { kill(pid, SIGKILL) }
            _ = try? Shell.run(["ip", "netns", "del", namespace], check: false)
        }
        try? FileManager.default.removeItem(atPath: stateDirectory)
        try? FileManager.default.removeItem(atPath: memoryDirectory)
    }
}
