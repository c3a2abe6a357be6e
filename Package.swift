// swift-tools-version: 6.1
import PackageDescription

// Layering (docs/DESIGN-NOTES.md, ../shared/DESIGN.md §2): `Frames` and `TLSShim` know nothing of
// each other or of the gateway; only `Gateway` touches sockets, logging and metrics.
let package = Package(
    name: "wsgate",
    products: [
        .executable(name: "wsgate", targets: ["wsgate"]),
        .library(name: "Frames", targets: ["Frames"]),
        .library(name: "TLSShim", targets: ["TLSShim"]),
        .library(name: "Gateway", targets: ["Gateway"]),
        // The epoll data-plane prototype (issue #15 part 2; BENCHMARKS.md, "core15"): for the load harness.
        .executable(name: "wsgate-core", targets: ["WSGateCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
        // JOSE for `routes[].auth.jwt` (issue #13 §2; docs/DESIGN-NOTES.md, "JWT at the handshake").
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        // RFC 8441 (WebSockets over HTTP/2) on TLS listeners with `http2: on` (issue #16).
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
    ],
    targets: [
        // RFC 6455 / RFC 7692 with no I/O.
        .target(
            name: "Frames",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ],
            swiftSettings: relayHotPathSettings
        ),
        // The system OpenSSL 3 (libssl-dev): module map plus static-inline wrappers for macros.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(
            name: "TLSShim",
            dependencies: [
                "COpenSSL",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ]
        ),
        .target(
            name: "Gateway",
            dependencies: [
                "Frames",
                "TLSShim",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "JWTKit", package: "jwt-kit"),
            ],
            swiftSettings: relayHotPathSettings
        ),
        // Issue #15 part 2: a prototype I/O core for relaying (per-loop epoll, structs in a slab, pooled
        // buffers, a timer wheel) over the pure `Frames` types. Only NIOCore's ByteBuffer from NIO.
        .target(name: "CRelayCore"),
        .target(
            name: "RelayCore",
            // TLSShim for its engine over caller memory (`TLSEngine`; docs/DESIGN-NOTES.md, "RelayCore").
            dependencies: ["Frames", "CRelayCore", "TLSShim", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: relayHotPathSettings
        ),
        .executableTarget(name: "WSGateCore", dependencies: ["RelayCore", "Frames"]),
        .executableTarget(
            name: "wsgate",
            dependencies: [
                "Gateway",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                // The embedded default's demo upstream counts into the gateway's registry.
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // libFuzzer harnesses (README, "Fuzzing"). In a normal build they link as no-op programs.
        .executableTarget(
            name: "FuzzFrameParser",
            dependencies: ["Frames", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .executableTarget(name: "FuzzExtensionHeader", dependencies: ["Frames"]),
        .executableTarget(
            name: "FuzzPerMessageDeflate",
            dependencies: ["Frames", .product(name: "NIOCore", package: "swift-nio")]
        ),
        // Handshake parsers, the PROXY header and the per-leg close state machine: their types are internal,
        // so these import Gateway `@testable` (fuzz builds are debug builds; in release they are empty).
        .executableTarget(
            name: "FuzzRequestHead",
            dependencies: [
                "Gateway", "Frames", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "FuzzUpstreamResponse",
            dependencies: [
                "Gateway", "Frames", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(name: "FuzzProxyProtocol", dependencies: ["Gateway", .product(name: "NIOCore", package: "swift-nio")]),
        .executableTarget(name: "FuzzRelayClose", dependencies: ["Gateway", "Frames", .product(name: "NIOCore", package: "swift-nio")]),
        // Where the tests find their peers: the provisioned Python environment, Chromium, HAProxy
        // (scripts/test, scripts/provision-test-peers), and the seeded generator every test target uses.
        // Foundation only.
        .target(name: "TestPeers", path: "Tests/TestPeers"),
        .testTarget(
            name: "TLSShimTests",
            dependencies: [
                "TLSShim",
                "TestPeers",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "RelayCoreTests",
            // TLSShim for its certificate generator and client engines (the TLS phase's peers).
            dependencies: ["RelayCore", "Frames", "CRelayCore", "TLSShim", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(
            name: "FramesTests",
            dependencies: [
                "Frames",
                // SplitMix64, shared with GatewayTests (TestPeers is Foundation-only and built anyway).
                "TestPeers",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "GatewayTests",
            dependencies: [
                "Gateway",
                "TestPeers",
                "Frames",
                "TLSShim",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]
        ),
    ]
)

// The relay's per-frame path (Frames' parser, Gateway's relay and the ByteBuffer code NIO inlines into
// them) spent about 11 % of its CPU in run-time exclusivity checks (`swift_beginAccess`, its access set
// in thread-local storage) on class properties: ByteBuffer's storage, the masking-key generator.
// Release builds of these two modules skip the run-time checks (compile-time checks stay; debug builds
// and the tests keep the run-time checks). BENCHMARKS.md, "Gateway load".
var relayHotPathSettings: [SwiftSetting] {
    [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
}
