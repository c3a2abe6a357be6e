import MetricsTestKit
import NIOPosix
import Testing

@testable import Gateway

/// Runs a gateway on an ephemeral loopback port in front of `upstreamPort` for the duration of `body`.
/// Metrics go to `metrics` when given (assert them with `MetricsTestKit`).
func withGateway(
    upstreamPort: Int,
    metrics: TestMetrics? = nil,
    configure: (inout GatewayConfiguration) -> Void = { _ in },
    _ body: (_ port: Int) async throws -> Void
) async throws {
    try await withGatewayServer(upstreamPort: upstreamPort, metrics: metrics, configure: configure) { _, port in
        try await body(port)
    }
}

/// A gateway in front of a ``FakeUpstream`` that accepts every upgrade and records what reached it
/// (for tests that check what was forwarded, or that nothing was).
func withGatewayAndRecordingUpstream(
    metrics: TestMetrics? = nil,
    configure: (inout GatewayConfiguration) -> Void = { _ in },
    _ body: (_ port: Int, _ upstream: FakeUpstream) async throws -> Void
) async throws {
    let upstream = try await FakeUpstream.start { .accept($0) }
    defer { Task { await upstream.close() } }
    try await withGateway(upstreamPort: upstream.port, metrics: metrics, configure: configure) { port in
        try await body(port, upstream)
    }
}

/// A gateway in front of a Python upstream: `upstream.script` run with its arguments, printing its port
/// on its first line; stopped after `body`.
func withGatewayAndPythonUpstream(
    _ upstream: (script: String, arguments: [String]),
    metrics: TestMetrics? = nil,
    configure: (inout GatewayConfiguration) -> Void = { _ in },
    _ body: (_ port: Int) async throws -> Void
) async throws {
    let peer = try PythonPeer(script: upstream.script, arguments: upstream.arguments)
    defer { peer.stop() }
    let line = try await peer.firstLine()
    let upstreamPort = try #require(Int(line), "the Python upstream printed \(line), not its port")
    try await withGateway(upstreamPort: upstreamPort, metrics: metrics, configure: configure, body)
}

/// A gateway in front of the demo upstream.
func withGatewayAndDemo(
    metrics: TestMetrics? = nil,
    configure: (inout GatewayConfiguration) -> Void = { _ in },
    _ body: (_ port: Int) async throws -> Void
) async throws {
    try await withDemo { demo in
        try await withGateway(upstreamPort: demo.port, metrics: metrics, configure: configure, body)
    }
}
