import DirectorDaemon
import Foundation
import DirectorWire
import Testing

private let valid = """
director:
  front_interface: front
  back_interface: back
  workers: [0, 1]
  connection_capacity: 200_000
timeouts:
  tcp_fin_wait: 2
  udp: 0.5
services:
  - address: 198.18.0.100
    port: 80
    scheduler: wrr
    real_servers:
      - { address: 198.18.2.11, weight: 1 }
      - { address: 198.18.2.12, weight: 2, mac: "02:00:00:00:02:12" }
  - address: 198.18.0.100
    port: 53
    protocol: udp
    real_servers:
      - { address: 198.18.2.11 }
"""

private let labKey = String(repeating: "5a", count: 32)

/// A peer section with the fields every pair needs.
private func peerSection(node: Int, address: String) -> String {
    "  peer: { node_id: \(node), address: \(address), local_address: 198.18.3.9, key: \(labKey) }"
}

struct BadConfig: Sendable, CustomTestStringConvertible {
    let change: (String, String)
    let message: String
    var testDescription: String { message }
}

@Suite("Configuration")
struct ConfigurationTests {
    @Test("a valid file parses with defaults filled in")
    func validFile() throws {
        let configuration = try ConfigurationParser.parse(yaml: valid)
        #expect(configuration.workerCPUs == [0, 1] && configuration.connectionCapacity == 200_000)
        #expect(configuration.timeouts.finWait == 2_000 && configuration.timeouts.udp == 500 && configuration.timeouts.established == 900_000)
        #expect(configuration.services[0].scheduler == .weightedRoundRobin && configuration.services[1].scheduler == .maglev)
        #expect(configuration.services[0].realServers[1].mac?.description == "02:00:00:00:02:12")
        #expect(configuration.services[1].transport == .udp && configuration.services[1].realServers[0].port == 53)
        #expect(configuration.bucketCount == 1024 && configuration.hidesFramesFromHost)
        #expect(configuration.metricsListen == nil && configuration.locksMemory)
        let observed = try ConfigurationParser.parse(yaml: valid.replacingOccurrences(of: "workers: [0, 1]", with: "workers: [0, 1]\n  metrics_listen: 127.0.0.1:9117\n  lock_memory: false"))
        #expect(observed.metricsListen?.description == "127.0.0.1:9117" && !observed.locksMemory)
        #expect(configuration.fastPath == .off, "the fast path is off unless asked for")
        let fast = try ConfigurationParser.parse(yaml: valid.replacingOccurrences(of: "workers: [0, 1]", with: "workers: [0, 1]\n  fast_path: xdp\n  fast_path_flows: 65536"))
        #expect(fast.fastPath == .xdp && fast.fastPathFlows == 65536)
    }

    @Test("each mistake is reported with the field it is in", arguments: [
        BadConfig(change: ("weight: 2,", "wieght: 2,"), message: "services[0].real_servers[1].wieght: unknown field"),
        BadConfig(change: ("weight: 2,", "weight: heavy,"), message: "services[0].real_servers[1].weight: expected a whole number from 0 to 65535, got \"heavy\""),
        BadConfig(change: ("198.18.2.12", "198.18.2.300"), message: "services[0].real_servers[1].address: expected an IPv4 address like 198.18.0.100 or an IPv6 address"),
        BadConfig(change: ("198.18.2.12", "\"2001:2:0:2::12\""), message: "services[0].real_servers[1].address: 2001:2:0:2::12 is not of the service's family (198.18.0.100)"),
        BadConfig(change: ("- address: 198.18.0.100\n    port: 80", "- address: \"ff02::1\"\n    port: 80"), message: "services[0].address: ff02::1 cannot be a virtual address"),
        BadConfig(change: ("- address: 198.18.0.100\n    port: 80", "- address: 127.0.0.1\n    port: 80"), message: "services[0].address: 127.0.0.1 cannot be a virtual address"),
        BadConfig(change: ("scheduler: wrr", "scheduler: fastest"), message: "services[0].scheduler: expected one of rr, wrr, lc, wlc, sh, mh"),
        BadConfig(change: ("protocol: udp", "protocol: sctp"), message: "services[1].protocol: expected tcp or udp"),
        BadConfig(change: ("port: 53\n    protocol: udp", "port: 80\n    protocol: tcp"), message: "services[1]: tcp 198.18.0.100:80 is defined twice"),
        BadConfig(change: ("port: 80\n", "port: 80\n    maglev_table_size: 65536\n"), message: "services[0].maglev_table_size: must be a prime"),
        BadConfig(change: ("{ address: 198.18.2.11, weight: 1 }", "{ address: 198.18.2.11, weight: 1, port: 8080 }"), message: "services[0].real_servers[0].port: direct routing cannot change the port"),
        BadConfig(change: ("  tcp_fin_wait: 2", "  tcp_fin_wait: -2"), message: "timeouts.tcp_fin_wait: expected seconds greater than 0"),
        BadConfig(change: ("  tcp_fin_wait: 2", "  tcp_finwait: 2"), message: "timeouts.tcp_finwait: unknown field"),
        BadConfig(change: ("workers: [0, 1]", "workers: [0, 0]"), message: "director.workers: lists a CPU twice"),
        BadConfig(change: ("workers: [0, 1]", "workers: [one]"), message: "director.workers[0]: expected a whole number"),
        BadConfig(change: ("  front_interface: front\n", ""), message: "director.front_interface: is required"),
        BadConfig(change: ("back_interface: back", "back_interface: a/b"), message: "director.back_interface: \"a/b\" is not a valid interface name"),
        BadConfig(change: ("connection_capacity: 200_000", "connection_capacity: 200_000\n  bucket_count: 1000"), message: "director.bucket_count: must be a power of two"),
        BadConfig(change: ("mac: \"02:00:00:00:02:12\"", "mac: \"ff:ff:ff:ff:ff:ff\""), message: "services[0].real_servers[1].mac: expected a unicast MAC"),
        BadConfig(change: ("workers: [0, 1]", "workers: [0, 1]\n" + peerSection(node: 1, address: "198.18.3.2")), message: "director.peer.node_id: must differ from director.node_id (1)"),
        BadConfig(change: ("workers: [0, 1]", "workers: [0, 1]\n  peer: { node_id: 2 }"), message: "director.peer.address: is required"),
        BadConfig(change: ("workers: [0, 1]", "workers: [0, 1]\n  peer: { node_id: 2, address: 198.18.3.2, key: \(labKey) }"), message: "director.peer.local_address: is required"),
        BadConfig(change: ("workers: [0, 1]", "workers: [0, 1]\n  peer: { node_id: 2, address: 198.18.3.2, local_address: 198.18.3.1 }"), message: "director.peer.key: is required"),
        BadConfig(change: ("workers: [0, 1]", "workers: [0, 1]\n  peer: { node_id: 2, address: 198.18.3.2, local_address: 198.18.3.1, key: 0123abcd }"), message: "director.peer.key: expected 32 or more hexadecimal digits"),
        BadConfig(change: ("workers: [0, 1]", "workers: [0, 1]\n  peer: { node_id: 2, address: 198.18.3.2, local_address: 198.18.3.1, key: \(labKey), key_file: /k }"), message: "director.peer.key: give key or key_file, not both"),
        BadConfig(change: ("workers: [0, 1]", "workers: [0, 1]\n  peer: { node_id: 2, address: 198.18.3.2, local_address: 198.18.3.1, key_file: /nonexistent/key }"), message: "director.peer.key_file: cannot read \"/nonexistent/key\""),
        BadConfig(change: ("workers: [0, 1]", "workers: [0, 1]\n  peer: { node_id: 2, address: 198.18.3.2, local_address: 198.18.3.1, key: \(labKey), dead_after_missed: 1 }"), message: "director.peer.dead_after_missed: expected a whole number from 2 to 100"),
        BadConfig(change: ("workers: [0, 1]", "workers: [0, 1]\n  buckets: 0-1024"), message: "director.buckets: expected all, none or ranges"),
        BadConfig(change: ("services:", "servics:"), message: "servics: unknown field"),
        BadConfig(change: ("workers: [0, 1]", "workers: [0, 1]\n  receive_ring: { format: tpacket_v4 }"), message: "director.receive_ring.format: expected tpacket_v3 (blocks, the default) or tpacket_v2"),
        BadConfig(change: ("workers: [0, 1]", "workers: [0, 1]\n  receive_ring: { block_size: 12288 }"), message: "director.receive_ring: block_size must be a power of two of at least 4096 bytes, got 12288"),
        BadConfig(change: ("workers: [0, 1]", "workers: [0, 1]\n  receive_ring: { format: tpacket_v2, frame_size: 1024 }"), message: "director.receive_ring: frame_size must be a multiple of 16 of at least 1584"),
        BadConfig(change: ("workers: [0, 1]", "workers: [0, 1]\n  receive_ring: { blocks: 10 }"), message: "director.receive_ring.blocks: unknown field"),
        BadConfig(change: ("workers: [0, 1]", "workers: [0, 1]\n  peer: { node_id: 2, address: 198.18.3.2, local_address: 198.18.3.1, key: \(labKey), heartbeat_port: 7439 }"), message: "director.peer.heartbeat_port: must differ from sync_port (7439)"),
        BadConfig(change: ("workers: [0, 1]", "workers: [0, 1]\n  peer: { node_id: 2, address: 198.18.3.2, local_address: 198.18.3.1, key: \(labKey), worker_stall_ms: 5 }"), message: "director.peer.worker_stall_ms: expected a whole number from 10 to 600000"),
        BadConfig(change: ("    real_servers:\n      - { address: 198.18.2.11, weight: 1 }", "    real_servers: [\n"), message: "not valid YAML"),
        BadConfig(change: ("workers: [0, 1]", "workers: [0, 1]\n  metrics_listen: localhost:9117"), message: "director.metrics_listen: expected an IPv4 address and port like 127.0.0.1:9117, got \"localhost:9117\""),
        BadConfig(change: ("workers: [0, 1]", "workers: [0, 1]\n  metrics_listen: 127.0.0.1:0"), message: "director.metrics_listen: expected an IPv4 address and port"),
        BadConfig(change: ("workers: [0, 1]", "workers: [0, 1]\n  lock_memory: sometimes"), message: "director.lock_memory: expected true or false"),
        BadConfig(change: ("workers: [0, 1]", "workers: [0, 1]\n  fast_path: afxdp"), message: "director.fast_path: expected xdp, xdp-driver, xdp-generic or off, got \"afxdp\""),
        BadConfig(change: ("workers: [0, 1]", "workers: [0, 1]\n  fast_path_flows: 10"), message: "director.fast_path_flows:"),
        // NAT
        BadConfig(change: ("scheduler: wrr", "scheduler: wrr\n    forwarding: tun"), message: "services[0].forwarding: expected dr (direct routing) or nat"),
        BadConfig(change: ("scheduler: wrr", "scheduler: wrr\n    forwarding: nat"), message: "director.nat_gateway: is required by services[0] (forwarding: nat)"),
        BadConfig(change: ("workers: [0, 1]", "workers: [0, 1]\n  nat_gateway: { address: 198.18.2.254, mac: \"01:00:5e:00:00:01\" }"), message: "director.nat_gateway.mac: expected a unicast MAC"),
        BadConfig(change: ("workers: [0, 1]", "workers: [0, 1]\n  nat_gateway: { addr: 198.18.2.254 }"), message: "director.nat_gateway.addr: unknown field"),
    ])
    func badFile(_ bad: BadConfig) {
        #expect(valid.contains(bad.change.0), "fixture no longer applies")
        let text = valid.replacingOccurrences(of: bad.change.0, with: bad.change.1)
        do {
            _ = try ConfigurationParser.parse(yaml: text)
            Issue.record("accepted a broken config")
        } catch {
            #expect(error.description.contains(bad.message), "got: \(error.description)")
        }
    }

    @Test("NAT: port mapping, the gateway's MAC defaulting to the virtual MAC; a back interface of its own; one NAT service per server endpoint")
    func translation() throws {
        let nat = valid.replacingOccurrences(of: "scheduler: wrr", with: "scheduler: wrr\n    forwarding: nat")
            .replacingOccurrences(of: "{ address: 198.18.2.11, weight: 1 }", with: "{ address: 198.18.2.11, port: 8080, weight: 1 }")
            .replacingOccurrences(of: "workers: [0, 1]", with: "workers: [0, 1]\n  nat_gateway: { address: 198.18.2.254 }")
        let configuration = try ConfigurationParser.parse(yaml: nat)
        #expect(configuration.services[0].forwarding == .nat)
        #expect(configuration.services[0].realServers.map(\.port) == [8080, 80])
        #expect(configuration.natGateway == Configuration.NATGatewayConfig(address: IPv4Address(198, 18, 2, 254), mac: nil))
        func refusal(_ text: String) -> String {
            do {
                _ = try ConfigurationParser.parse(yaml: text)
                return "accepted"
            } catch {
                return error.description
            }
        }
        #expect(refusal(nat.replacingOccurrences(of: "back_interface: back", with: "back_interface: front")).contains("director.back_interface: NAT (services[0]) needs a back interface of its own"))
        #expect(refusal(nat.replacingOccurrences(of: "address: 198.18.2.254", with: "address: 198.18.0.100")).contains("director.nat_gateway.address: 198.18.0.100 is the virtual address of services[0]"))
        func second(port: Int) -> String {
            nat + "\n  - address: 198.18.0.101\n    port: 80\n    forwarding: nat\n    real_servers:\n      - { address: 198.18.2.11, port: \(port) }\n"
        }
        #expect(refusal(second(port: 8080)).contains("services[2].real_servers: tcp 198.18.2.11:8080 is also a real server of services[0]"))
        #expect(refusal(second(port: 8081)) == "accepted")
    }

    @Test("IPv6: a service of either family in one file, a service and its servers of one family, an IPv6 NAT gateway of its own, IPv6 endpoints written [address]:port")
    func ipv6Services() throws {
        let ipv6 = valid + """

          - address: "2001:2::100"
            port: 443
            real_servers:
              - { address: "2001:2:0:2::11" }
              - { address: "2001:2:0:2::12", mac: "02:00:00:00:02:12" }
            fallback: { address: "2001:2:0:2::99" }
        """
        let configuration = try ConfigurationParser.parse(yaml: ipv6)
        #expect(configuration.services.map(\.address.isIPv6) == [false, false, true])
        #expect(configuration.services[2].realServers.map(\.address) == [.v6(IPv6Address("2001:2:0:2::11")!), .v6(IPv6Address("2001:2:0:2::12")!)])
        func refusal(_ text: String) -> String {
            do {
                _ = try ConfigurationParser.parse(yaml: text)
                return "accepted"
            } catch {
                return error.description
            }
        }
        // NAT: the IPv6 servers' gateway is an address of its own, beside the IPv4 one.
        let translated = ipv6.replacingOccurrences(of: "port: 443", with: "port: 443\n    forwarding: nat")
            .replacingOccurrences(of: "\"2001:2:0:2::11\" }", with: "\"2001:2:0:2::11\", port: 8443 }")
        let gateway = "workers: [0, 1]\n  nat_gateway: { address: 198.18.2.254 }"
        #expect(refusal(translated.replacingOccurrences(of: "workers: [0, 1]", with: gateway))
            .contains("director.nat_gateway.address6: is required by services[2] (IPv6, forwarding: nat)"))
        let withGateway = try ConfigurationParser.parse(yaml: translated.replacingOccurrences(
            of: "workers: [0, 1]", with: "workers: [0, 1]\n  nat_gateway: { address: 198.18.2.254, address6: \"2001:2:0:2::fe\" }"))
        #expect(withGateway.natGateway?.address6 == IPv6Address("2001:2:0:2::fe") && withGateway.services[2].realServers[0].port == 8443)
        #expect(refusal(translated.replacingOccurrences(of: "workers: [0, 1]", with: "workers: [0, 1]\n  nat_gateway: { address: 198.18.2.254, address6: \"2001:2::100\" }"))
            .contains("director.nat_gateway.address6: 2001:2::100 is the virtual address of services[2]"))
        #expect(refusal(ipv6.replacingOccurrences(of: "\"2001:2:0:2::99\"", with: "198.18.2.99"))
            .contains("services[2].fallback.address: 198.18.2.99 is not of the service's family (2001:2::100)"))
        #expect(refusal(ipv6.replacingOccurrences(of: "\"2001:2:0:2::12\", mac", with: "\"2001:2:0:2::11\", mac"))
            .contains("services[2].real_servers[1]: [2001:2:0:2::11]:443 is listed twice in this service"))
        #expect(refusal(ipv6.replacingOccurrences(of: "\"2001:2::100\"", with: "\"fe80::100\"")).contains("services[2].address: fe80::100 cannot be a virtual address"))
        #expect(refusal(ipv6.replacingOccurrences(of: "\"2001:2::100\"", with: "\"::ffff:198.18.0.1\"")).contains("cannot be a virtual address"))
        #expect(refusal(ipv6.replacingOccurrences(of: "\"2001:2:0:2::11\"", with: "\"fe80::11\"")).contains("services[2].real_servers[0].address: fe80::11 cannot be a real server's address"))
    }

    @Test("a pair: the lower id takes the lower half of the buckets and answers ARP")
    func pair() throws {
        let second = try ConfigurationParser.parse(yaml: valid.replacingOccurrences(
            of: "  workers: [0, 1]", with: "  workers: [0, 1]\n  node_id: 2\n" + peerSection(node: 1, address: "198.18.3.1")))
        #expect(second.nodeID == 2 && second.peer == Configuration.Peer(
            nodeID: 1, address: IPv4Address(198, 18, 3, 1), localAddress: IPv4Address(198, 18, 3, 9), key: [UInt8](repeating: 0x5A, count: 32)))
        #expect(second.peer?.heartbeatIntervalMilliseconds == 10 && second.peer?.deadAfterMissed == 5 && second.peer?.syncPort == 7439)
        #expect(second.peer?.heartbeatPort == 7440 && second.peer?.workerStallMilliseconds == 1000, "heartbeats on the next port; a stuck worker after 1 s")
        #expect(second.initialOwnership.ownedRanges == [512...1023] && !second.answersARP)
        let first = try ConfigurationParser.parse(yaml: valid.replacingOccurrences(
            of: "  workers: [0, 1]", with: "  workers: [0, 1]\n  node_id: 1\n" + peerSection(node: 2, address: "198.18.3.2") + "\n  buckets: 0-9,1000"))
        #expect(first.initialOwnership.ownedRanges == [0...9, 1000...1000] && first.answersARP)
        #expect(try ConfigurationParser.parse(yaml: valid).initialOwnership.ownedCount == 1024, "alone: every bucket")
    }

    @Test("the receive ring: a 32 MiB TPACKET_V3 ring by default that absorbs a second at 100 k frames/s; the TPACKET_V2 ring on request")
    func receiveRing() throws {
        let standard = try ConfigurationParser.parse(yaml: valid).receiveRing
        #expect(standard == .standard && standard.format == .tpacketV3 && standard.byteCount == 32 << 20)
        #expect(standard.absorbs(framesPerSecond: 100_000, frameLength: 60) >= 0.5, "half a second at 100 k small frames/s at least")
        #expect(standard.absorbs(framesPerSecond: 1_000_000, frameLength: 60) >= 0.05, "50 ms flat out at least")
        #expect(standard.framesHeld(frameLength: 1518) > 10_000)
        let lowLatency = try ConfigurationParser.parse(yaml: valid.replacingOccurrences(
            of: "  workers: [0, 1]", with: "  workers: [0, 1]\n  receive_ring: { format: tpacket_v2, block_count: 1024 }")).receiveRing
        #expect(lowLatency.format == .tpacketV2 && lowLatency.frameCount == 32_768 && lowLatency.byteCount == 64 << 20)
        #expect(abs(lowLatency.absorbs(framesPerSecond: 100_000, frameLength: 60) - 0.32768) < 0.001)
        #expect(lowLatency.summary.contains("tpacket_v2, 32768 frame slots × 2048 B = 64 MiB"))
    }

    @Test("an empty file, or a list at the top, is an error, not a crash")
    func wrongShape() {
        #expect(throws: ConfigurationError(field: "", problem: "the file is empty")) { try ConfigurationParser.parse(yaml: "") }
        #expect(throws: ConfigurationError(field: "(top level)", problem: "expected a mapping of fields")) { try ConfigurationParser.parse(yaml: "- a\n- b\n") }
    }

    @Test("a key file other users can read or change is refused, like ssh refuses such a private key",
          arguments: [(0o600, nil), (0o400, nil), (0o640, nil), (0o644, "is open to every user (mode 0644)"),
                      (0o604, "is open to every user (mode 0604)"), (0o620, "is writable by its group (mode 0620)")] as [(Int, String?)])
    func keyFileMode(_ mode: Int, _ problem: String?) throws {
        let path = "/tmp/director-key-test-\(getpid())-\(mode)"
        defer { unlink(path) }
        #expect(FileManager.default.createFile(atPath: path, contents: Data(labKey.utf8)))
        #expect(chmod(path, mode_t(mode)) == 0)
        let text = valid.replacingOccurrences(of: "workers: [0, 1]", with: "workers: [0, 1]\n  peer: { node_id: 2, address: 198.18.3.2, local_address: 198.18.3.1, key_file: \(path) }")
        do {
            let configuration = try ConfigurationParser.parse(yaml: text)
            #expect(problem == nil, "accepted a key file of mode \(String(mode, radix: 8))")
            #expect(configuration.peer != nil)
        } catch {
            #expect(problem != nil && "\(error)".contains("director.peer.key_file") && "\(error)".contains(problem!), "\(error)")
        }
    }
}
