// swift-tools-version: 6.1
import PackageDescription

// Module map (top to bottom = the order a frame meets them):
//   CDirectorShim   Linux packet-socket, BPF and libnuma headers, plus the few C helpers Swift cannot express.
//   FastPathProgram The XDP fast path (C for the BPF target, compiled by the CompileXDPProgram plugin).
//   CFastPath       libbpf and the layout of the fast path's maps, shared with the program (and of the
//                   benchmark generator's, TrafficGeneratorProgram, an XDP program the kernel runs in a loop).
//   CPrefetch       The prefetch intrinsic, for DirectorCore's table.
//   CTLSClient      A TLS client session over OpenSSL, for the https health checks.
//   DirectorWire    Pure byte-level views of Ethernet/802.1Q/ARP/IPv4/TCP/UDP, checksums, a packet builder.
//   DirectorCore    The balancing core: services, schedulers, connection table, rewrite, the per-packet
//                   pipeline. No I/O: it runs the same under the daemon and under tests.
//   PacketIO        TPACKET_V3 RX rings, TPACKET TX rings, fan-out, NUMA memory and thread pinning, the XDP
//                   fast path's loader, AF_XDP sockets (measured beside TPACKET_V3 by director-bench rings).
//   DirectorSync    The connection-sync protocol between the two dispatchers: wire format,
//                   authentication, replay protection, the reliable record stream, liveness and
//                   bucket handovers (no sockets: the daemon's sync thread runs it).
//   DirectorDaemon  Config, workers, the sync thread, ARP resolution of real servers, host-stack guard,
//                   health checks, control socket, metrics and status page over HTTP.
//   director        The production binary.
//   DirectorFuzzing What one fuzzer input does to the forwarder and to the sync session: run by the
//                   libFuzzer executables in Fuzz/ and, over the checked-in corpus, by the unit tests.
//   DirectorLab     The network-namespace lab used by tests, the demo and the benchmarks.
let package = Package(
    name: "director",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "director", targets: ["director"]),
        .executable(name: "director-lab", targets: ["director-lab"]),
        .executable(name: "director-bench", targets: ["director-bench"]),
        // For the microbenchmarks (Benchmarks/Micro, a package of its own).
        .library(name: "DirectorCore", targets: ["DirectorCore"]),
        .library(name: "DirectorWire", targets: ["DirectorWire"]),
        // For the fuzzers (Fuzz/, a package of its own: it builds with -sanitize=fuzzer).
        .library(name: "DirectorFuzzing", targets: ["DirectorFuzzing"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .target(
            name: "CDirectorShim",
            linkerSettings: [.linkedLibrary("numa")]
        ),
        .target(name: "CPrefetch"),
        // The XDP program, embedded as bytes: the plugin compiles fast_path.bpf.c for the BPF target.
        .target(name: "FastPathProgram", exclude: ["fast_path.bpf.c"], plugins: ["CompileXDPProgram"]),
        .plugin(name: "CompileXDPProgram", capability: .buildTool()),
        .target(name: "TrafficGeneratorProgram", exclude: ["traffic_generator.bpf.c"], plugins: ["CompileXDPProgram"]),
        .target(name: "CFastPath", linkerSettings: [.linkedLibrary("bpf")]),
        // TLS for the https health checks (OpenSSL: libssl-dev).
        .target(name: "CTLSClient", linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]),
        .target(name: "DirectorWire"),
        .target(name: "DirectorCore", dependencies: ["DirectorWire", "CPrefetch"]),
        .target(name: "PacketIO", dependencies: ["CDirectorShim", "CFastPath", "FastPathProgram", "DirectorWire", "DirectorCore"]),
        .target(
            name: "DirectorSync",
            dependencies: ["DirectorCore", "DirectorWire", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(
            name: "DirectorDaemon",
            dependencies: [
                "CDirectorShim", "CTLSClient", "DirectorWire", "DirectorCore", "PacketIO", "DirectorSync",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                // The metrics and status page's HTTP server.
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "director",
            dependencies: [
                "DirectorDaemon",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(name: "DirectorLab", dependencies: ["CDirectorShim"]),
        .executableTarget(
            name: "director-lab",
            dependencies: ["DirectorLab", "LoadGeneration", "PacketIO", "DirectorWire", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "pipeline-benchmark",
            dependencies: ["DirectorCore", "DirectorWire"],
            path: "Benchmarks/PipelineBenchmark"
        ),
        .target(
            name: "LoadGeneration",
            dependencies: ["DirectorCore", "DirectorWire", "DirectorSync", "PacketIO", "CFastPath", "TrafficGeneratorProgram"],
            path: "Benchmarks/LoadGeneration",
            // The lab tests drive floods with the debug build: the generator's loop is optimized
            // even there, so a flood's rate is the kernel's limit, not the unoptimized build's.
            swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]
        ),
        .executableTarget(
            name: "director-bench",
            dependencies: ["LoadGeneration", "DirectorLab", "PacketIO", "DirectorWire", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Benchmarks/DirectorBench"
        ),
        .executableTarget(
            name: "sync-benchmark",
            dependencies: ["DirectorSync", "DirectorCore", "DirectorWire"],
            path: "Benchmarks/SyncBenchmark"
        ),
        .target(
            name: "DirectorFuzzing",
            dependencies: ["DirectorCore", "DirectorWire", "DirectorSync"]
        ),
        .testTarget(name: "DirectorFuzzingTests", dependencies: ["DirectorFuzzing"]),
        .testTarget(name: "DirectorWireTests", dependencies: ["DirectorWire"]),
        .testTarget(name: "DirectorSyncTests", dependencies: ["DirectorSync", "DirectorCore", "DirectorWire", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "DirectorCoreTests", dependencies: ["DirectorCore", "DirectorWire", "DirectorDaemon", "DirectorSync", "CDirectorShim", "DirectorLab",
                                                              .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "LoadGenerationTests", dependencies: ["LoadGeneration", "DirectorWire"]),
        .testTarget(name: "LabTests", dependencies: ["DirectorLab", "DirectorDaemon", "PacketIO", "DirectorCore", "DirectorWire", "LoadGeneration"]),
    ]
)
