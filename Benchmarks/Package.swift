// swift-tools-version: 6.1
import PackageDescription

// Benchmarks for the `Frames` module and the gateway's relay and upgrade in memory, kept out of the root package so that neither `swift build`
// nor `swift test` at the repo root sees ordo-one/benchmark. See ../BENCHMARKS.md.
let package = Package(
    name: "wsgate-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "wsgate", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        // "MallocInterposer" only: the default "RuntimeInterposer" trait pulls
        // ordo-one/swift-runtime-interposer on Linux with Swift 6.3, which is not available here.
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "FramesBenchmarks",
            dependencies: [
                .product(name: "Frames", package: "wsgate"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/FramesBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // The relay and the upgrade in memory, through the gateway's `@_spi(Benchmarks)` (issue #15):
        // mallocs per message and per connection, checked against Thresholds/.
        .executableTarget(
            name: "GatewayBenchmarks",
            dependencies: [
                .product(name: "Gateway", package: "wsgate"),
                .product(name: "Frames", package: "wsgate"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/GatewayBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // The RelayCore prototype's in-memory framing (`RelayFraming` over the loop's buffer pool), mallocs
        // per message checked against Thresholds/. RelayCore is not a product of the root package: the
        // target compiles the prototype's RelayFraming.swift and BufferPool.swift through symbolic links.
        .executableTarget(
            name: "CoreBenchmarks",
            dependencies: [
                .product(name: "Frames", package: "wsgate"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/CoreBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // Retains and releases per message and per connection (the scenarios of the two targets above,
        // through symbolic links), in a target of its own: see BENCHMARKS.md, "thresh23".
        .executableTarget(
            name: "GatewayARCBenchmarks",
            dependencies: [
                .product(name: "Gateway", package: "wsgate"),
                .product(name: "Frames", package: "wsgate"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/GatewayARCBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
