import Foundation
import Frames
import MetricsTestKit
import NIOCore
import NIOPosix
import Prometheus
import TLSShim
import Testing

@testable import Gateway

/// Each metric of issue #6, asserted where its decision is made, plus the admin listener.
@Suite(.timeLimit(.minutes(2))) struct OperationsMetricsTests {
    @Test func aRelayedConnectionIsCountedWithItsMessagesBytesAndCloseCodes() async throws {
        let metrics = TestMetrics()
        try await withGatewayAndDemo(metrics: metrics) { port in
            let listener = "127.0.0.1:0"
            let client = try await TestWebSocketClient.connect(port: port, path: "/echo")
            // The 101 may reach the client before the gateway's event loop has counted the session.
            await metrics.eventually { metrics.gauge("wsgate_connections_open", [("listener", listener), ("route", "/")]) == 1 }
            #expect(metrics.total("wsgate_connections_accepted_total", [("listener", listener)]) == 1)
            #expect(metrics.total("wsgate_connections_total", [("listener", listener), ("route", "/")]) == 1)
            #expect(metrics.gauge("wsgate_connections_open", [("listener", listener), ("route", "/")]) == 1)
            try await client.send(text: "hello")
            #expect(try await client.receiveMessage() == .text("hello"))
            try await client.send(binary: [1, 2, 3])
            #expect(try await client.receiveMessage() == .binary([1, 2, 3]))
            try await client.close(code: .normalClosure)
            #expect(try await client.receiveMessage() == .close(.normalClosure, ""))
            try await client.waitForTCPClose()
            await metrics.eventually { metrics.gauge("wsgate_connections_open", [("listener", listener), ("route", "/")]) == 0 }
            #expect(metrics.gauge("wsgate_connections_open", [("listener", listener), ("route", "/")]) == 0)
            // Added once, when the connection ended.
            #expect(metrics.total("wsgate_messages_total", [("direction", "client_to_upstream")]) == 2)
            #expect(metrics.total("wsgate_messages_total", [("direction", "upstream_to_client")]) == 2)
            #expect(metrics.total("wsgate_bytes_total", [("direction", "client_to_upstream")]) == 8)
            #expect(metrics.total("wsgate_bytes_total", [("direction", "upstream_to_client"), ("route", "/")]) == 8)
            // The client's 1000 (from its peer) and the upstream's answer (from its peer); nothing from the gateway.
            #expect(metrics.total("wsgate_close_codes_total", [("side", "client"), ("code", "1000"), ("by", "peer")]) == 1)
            #expect(metrics.total("wsgate_close_codes_total", [("side", "upstream"), ("code", "1000"), ("by", "peer")]) == 1)
            #expect(metrics.total("wsgate_close_codes_total", [("by", "gateway")]) == 0)
            // The upstream connect was timed, once, for its member.
            let latency = metrics.recorders(label: "wsgate_upstream_connect_seconds")
            #expect(latency.count == 1)
            #expect(latency.first?.dimensions.contains { $0 == ("route", "/") } == true)
            #expect(latency.first?.values.count == 1)
        }
    }

    /// Catalog P-02: over sockets, an unmasked frame gets 1002, the upstream 1001, and violations{side=client,rule=unmasked_client_frame} counts it.
    @Test func aProtocolViolationIsCountedByRuleAndSideWithTheCloseCodesTheGatewaySent() async throws {
        let metrics = TestMetrics()
        try await withGatewayAndRecordingUpstream(metrics: metrics, configure: { $0.timeouts.close = .milliseconds(200) }) { port, upstream in
            let client = try await TestWebSocketClient.connect(port: port, path: "/")
            try await client.sendRaw([0x81, 0x02, 0x68, 0x69])  // unmasked text "hi"
            #expect(try await client.receiveMessage() == .close(.protocolError, FramesError.Code.unmaskedClientFrame.description))
            try await client.waitForTCPClose()
            await metrics.eventually { metrics.total("wsgate_close_codes_total", [("side", "client"), ("code", "1002")]) == 1 }
            #expect(metrics.total("wsgate_protocol_violations_total", [("side", "client"), ("rule", "unmasked_client_frame")]) == 1)
            #expect(metrics.total("wsgate_close_codes_total", [("side", "upstream"), ("code", "1001"), ("by", "gateway")]) == 1)
            #expect(metrics.total("wsgate_close_codes_total", [("side", "client"), ("code", "1002"), ("by", "gateway")]) == 1)
        }
    }

    @Test func anUpstreamLostWithoutACloseIs1006FromThePeerAnd1014FromTheGateway() async throws {
        let metrics = TestMetrics()
        try await withGatewayAndRecordingUpstream(metrics: metrics) { port, upstream in
            let client = try await TestWebSocketClient.connect(port: port, path: "/")
            upstream.dropConnections()
            #expect(try await client.receiveMessage() == .close(CloseCode(1014), "upstream lost"))
            #expect(metrics.total("wsgate_close_codes_total", [("side", "upstream"), ("code", "1006"), ("by", "peer")]) == 1)
            #expect(metrics.total("wsgate_close_codes_total", [("side", "client"), ("code", "1014"), ("by", "gateway")]) == 1)
        }
    }

    @Test func upstreamConnectFailuresAreCountedByMember() async throws {
        let metrics = TestMetrics()
        // A port with nothing listening: bind one, then close it.
        let probe = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let deadPort = probe.localAddress!.port!
        try await probe.close()
        try await withGateway(upstreamPort: deadPort, metrics: metrics) { port in
            let answer = try await TestWebSocketClient.rawHandshake(port: port, request: Self.upgradeRequest)
            #expect(answer.status == 502)
        }
        let member = "ws://127.0.0.1:\(deadPort)"
        #expect(metrics.total("wsgate_upstream_connect_failures_total", [("route", "/"), ("member", member), ("reason", "refused")]) == 1)
        #expect(metrics.recorders(label: "wsgate_upstream_connect_seconds").isEmpty)
    }

    @Test func tlsHandshakeFailuresAreCountedByLegAndClassAndRecordedAs1015() async throws {
        let metrics = TestMetrics()
        let certificate = try GatewayTLSTests.certificate()
        // Client leg: a plaintext request on a TLS listener fails the handshake.
        try await withGatewayAndDemo(
            metrics: metrics,
            configure: {
                $0.listeners[0].tls = TLSServerConfiguration(defaultIdentity: certificate.identity)
            }
        ) { port in
            _ = try? await TestWebSocketClient.rawHandshake(port: port, request: Self.upgradeRequest, timeout: .seconds(2))
            await metrics.eventually { metrics.total("wsgate_tls_handshake_failures_total", [("leg", "client")]) == 1 }
        }
        #expect(metrics.total("wsgate_tls_handshake_failures_total", [("leg", "client")]) == 1)
        #expect(metrics.total("wsgate_close_codes_total", [("side", "client"), ("code", "1015"), ("by", "gateway")]) == 1)
        // Upstream leg: an upstream certificate nobody trusts.
        let upstream = try await GatewayTLSTests.tlsUpstream(certificate)
        defer { Task { await upstream.close() } }
        try await withGateway(
            upstreamPort: upstream.port,
            metrics: metrics,
            configure: {
                $0.routes[0].upstreams = [GatewayConfiguration.Upstream(scheme: .wss, host: "127.0.0.1", port: upstream.port)]
            }
        ) { port in
            let answer = try await TestWebSocketClient.rawHandshake(port: port, request: Self.upgradeRequest)
            #expect(answer.status == 502)
        }
        #expect(metrics.total("wsgate_tls_handshake_failures_total", [("leg", "upstream"), ("class", "certificate_not_trusted")]) == 1)
        #expect(metrics.total("wsgate_close_codes_total", [("side", "upstream"), ("code", "1015"), ("by", "gateway")]) == 1)
    }

    @Test func labelSlugsAreBounded() {
        #expect(GatewayMetrics.slug("reserved bit set (RFC 6455 §5.2)") == "reserved_bit_set")
        #expect(GatewayMetrics.slug("EOF during handshake") == "eof_during_handshake")
        #expect(GatewayMetrics.slug("control frame payload over 125 bytes (RFC 6455 §5.5)") == "control_frame_payload_over_125_bytes")
    }

    // MARK: The admin listener

    @Test func theAdminListenerServesMetricsHealthAndReadiness() async throws {
        let registry = PrometheusCollectorRegistry()
        let factory = GatewayService.metricsFactory(registry: registry)
        try await withDemo { demo in
            var configuration = GatewayConfiguration(
                listeners: [.init(host: "127.0.0.1", port: 0)],
                routes: [.init(pathPrefix: "/", upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: demo.port)])],
                accessLog: .off
            )
            configuration.admin = .off
            let server = try await GatewayServer.start(
                configuration: configuration,
                group: MultiThreadedEventLoopGroup.singleton,
                metricsFactory: factory
            )
            let admin = try await AdminServer.start(
                host: "127.0.0.1",
                port: 0,
                registry: registry,
                group: MultiThreadedEventLoopGroup.singleton,
                isReady: { !server.isDraining }
            )
            let adminPort = admin.localAddress!.port!
            let client = try await TestWebSocketClient.connect(port: server.localAddresses[0].port!, path: "/echo")
            try await client.send(text: "x")
            _ = try await client.receiveMessage()

            let health = try await Self.get(adminPort, "/healthz")
            #expect(health.status == 200)
            #expect(try await Self.get(adminPort, "/readyz").status == 200)
            #expect(try await Self.get(adminPort, "/nope").status == 404)
            let scrape = try await Self.get(adminPort, "/metrics")
            #expect(scrape.status == 200)
            #expect(scrape.headers.contains { $0.0.lowercased() == "content-type" && $0.1.hasPrefix("text/plain; version=0.0.4") })
            #expect(scrape.body.contains(#"wsgate_connections_open{listener="127.0.0.1:0",route="/"} 1"#), "\(scrape.body)")
            #expect(scrape.body.contains("# TYPE wsgate_upstream_connect_seconds histogram"), "\(scrape.body)")
            #expect(
                scrape.body.contains(#"wsgate_upstream_connect_seconds_bucket{route="/",member="ws://127.0.0.1:\#(demo.port)",le="0.0005"}"#),
                "\(scrape.body)"
            )

            // Draining: /readyz fails while /healthz still answers. The drain ends when the client
            // answers below; its deadline only bounds a hang (a loaded machine took over 5 s for the
            // requests in between, and the drain forced the connection).
            let drain = Task { await server.drain(timeout: .seconds(60)) }
            #expect(try await client.receiveMessage() == .close(.goingAway, RelaySession.drainReason))
            #expect(try await Self.get(adminPort, "/readyz").status == 503)
            #expect(try await Self.get(adminPort, "/healthz").status == 200)
            let during = try await Self.get(adminPort, "/metrics").body
            #expect(during.contains("\nwsgate_draining 1"), "\(during)")
            try await client.close(code: .goingAway)
            let result = await drain.value
            #expect(result == .init(closed: 1, forced: 0))
            let after = try await Self.get(adminPort, "/metrics").body
            #expect(after.contains(#"wsgate_drained_connections_total{result="closed"} 1"#), "\(after)")
            #expect(after.contains("\nwsgate_draining 0"), "\(after)")
            #expect(after.contains(#"wsgate_close_codes_total{side="client",code="1001",by="gateway"} 1"#), "\(after)")
            try await admin.close()
        }
    }

    static let upgradeRequest =
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

    /// A GET over a fresh connection (`Connection: close`).
    static func get(_ port: Int, _ path: String) async throws -> (status: Int, headers: [(String, String)], body: String) {
        try await TestWebSocketClient.rawHandshake(port: port, request: "GET \(path) HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
    }
}
