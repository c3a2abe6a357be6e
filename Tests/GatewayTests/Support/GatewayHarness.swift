import MetricsTestKit
import NIOPosix

@testable import Gateway

/// Runs a gateway on an ephemeral loopback port in front of `upstreamPort` for the duration of `body`.
/// Metrics go to `metrics` when given (assert them with `MetricsTestKit`).
func withGateway(
    upstreamPort: Int,
    metrics: TestMetrics? = nil,
    configure: (inout GatewayConfiguration) -> Void = { _ in },
    _ body: (_ port: Int) async throws -> Void
) async throws {
    var configuration = GatewayConfiguration(
        listeners: [.init(host: "127.0.0.1", port: 0)],
        routes: [.init(pathPrefix: "/", upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: upstreamPort)])],
        accessLog: .off
    )
    configure(&configuration)
    let server = try await GatewayServer.start(
        configuration: configuration,
        group: MultiThreadedEventLoopGroup.singleton,
        metricsFactory: metrics ?? TestMetrics()
    )
    do {
        try await body(server.localAddresses[0].port!)
    } catch {
        try? await server.close()
        throw error
    }
    try await server.close()
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
