// swift-tools-version: 6.1
// The fuzzers: libFuzzer drives `ForwarderFuzzing.run` and `SyncFuzzing.run` (DirectorFuzzing,
// in the main package) under AddressSanitizer. A package of its own because its executables
// have no main (libFuzzer's is linked in) and build only with -sanitize=fuzzer:
//
//     bash scripts/fuzz.sh                  # both fuzzers, bounded, over Fuzz/Corpus
import PackageDescription

// A package found by path is known by its folder's name: the checkout's, whatever it is called.
let director = Context.packageDirectory.split(separator: "/").dropLast().last.map { String($0).lowercased() } ?? "director"

let package = Package(
    name: "director-fuzzers",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "..")],
    targets: [
        .executableTarget(name: "forwarder-fuzzer", dependencies: [.product(name: "DirectorFuzzing", package: director)]),
        .executableTarget(name: "sync-fuzzer", dependencies: [.product(name: "DirectorFuzzing", package: director)]),
    ]
)
