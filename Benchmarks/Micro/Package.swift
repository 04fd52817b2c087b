// swift-tools-version: 6.1
// The data path's microbenchmarks, with package-benchmark (ordo-one). A package of its own so
// that building the director does not build the benchmark harness:
//
//     cd Benchmarks/Micro && swift package benchmark
import PackageDescription

// A package found by path is known by its folder's name: the checkout's, whatever it is called.
let director = Context.packageDirectory.split(separator: "/").dropLast(2).last.map { String($0).lowercased() } ?? "director"

let package = Package(
    name: "director-microbenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../.."),
        .package(url: "https://github.com/ordo-one/package-benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "DataPath",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "DirectorCore", package: director),
                .product(name: "DirectorWire", package: director),
            ],
            path: "Benchmarks/DataPath",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
    ]
)
