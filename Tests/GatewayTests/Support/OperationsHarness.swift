import MetricsTestKit
import NIOPosix

@testable import Gateway

/// Like `withGateway`, but hands the running ``GatewayServer`` to `body` (for drain and reload).
/// The server is closed afterwards if the body did not drain it.
func withGatewayServer(
    upstreamPort: Int,
    metrics: TestMetrics? = nil,
    configure: (inout GatewayConfiguration) -> Void = { _ in },
    _ body: (_ server: GatewayServer, _ port: Int) async throws -> Void
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
        try await body(server, server.localAddresses[0].port!)
    } catch {
        try? await server.close()
        throw error
    }
    try? await server.close()
}

extension TestMetrics {
    /// The total of counter `label` over the series whose dimensions include all of `matching`.
    func total(_ label: String, _ matching: [(String, String)] = []) -> Int64 {
        self.counters(label: label)
            .filter { counter in matching.allSatisfy { pair in counter.dimensions.contains { $0 == pair } } }
            .reduce(0) { $0 + $1.totalValue }
    }

    /// The value of meter (gauge) `label` with exactly `dimensions`, 0 if it was never touched.
    func gauge(_ label: String, _ dimensions: [(String, String)]) -> Double {
        (try? self.expectMeter(label, dimensions).lastValue) ?? 0
    }

    /// Waits up to `timeout` for `condition` (metrics of a connection are added when it ends).
    func eventually(_ timeout: Duration = .seconds(15), _ condition: () -> Bool) async {
        await waitFor(timeout, condition)
    }
}

/// Waits up to `timeout` for `condition`, polling; the caller then asserts what it waited for, so a
/// loaded machine only makes the test slower, never wrong (no sleep-then-assert).
func waitFor(_ timeout: Duration = .seconds(10), _ condition: () -> Bool) async {
    let deadline = ContinuousClock.now + timeout
    while !condition(), ContinuousClock.now < deadline {
        try? await Task.sleep(for: .milliseconds(10))
    }
}
