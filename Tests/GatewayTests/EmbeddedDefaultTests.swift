import MetricsTestKit
import NIOCore
import TLSShim
import Testing

@testable import Gateway

/// The embedded default (`swift run wsgate`, issue #12 §2): what a newcomer meets first. The process
/// itself (banner, admin endpoints, exit) is in `LifecycleCLITests`.
@Suite struct EmbeddedDefaultTests {
    let identity: TLSGeneratedCertificate

    init() throws {
        self.identity = try EmbeddedDefault.makeIdentity()
    }

    @Test func theAdminListenerIsOnAt127001Port9090LikeAConfigurationWithoutAnAdminKey() {
        let configuration = EmbeddedDefault.configuration(upstreamPort: 7000, identity: self.identity)
        #expect(configuration.admin.enabled)
        #expect(configuration.admin.host == "127.0.0.1")
        #expect(configuration.admin.port == 9090)
        #expect(configuration.admin == GatewayConfiguration.Admin(), "the same as a file with no admin key")
        #expect(configuration.listeners.map(\.port) == [8080, 8443])
        #expect(configuration.listeners.map { $0.tls != nil } == [false, true])

        #expect(EmbeddedDefault.configuration(upstreamPort: 7000, identity: self.identity, adminPort: 0).admin.port == 0)
        #expect(!EmbeddedDefault.configuration(upstreamPort: 7000, identity: self.identity, adminPort: nil).admin.enabled)
    }

    @Test func theDemoRouteNegotiatesPermessageDeflateWithTheClientAndOffersNoneToTheDemoUpstream() {
        let route = EmbeddedDefault.configuration(upstreamPort: 7000, identity: self.identity).routes
        #expect(route.count == 1)
        #expect(route[0].extensions.permessageDeflate.client == .negotiate)
        #expect(route[0].extensions.permessageDeflate.upstream == .strip)
        // A configured route keeps `strip` on both legs (README: why).
        #expect(GatewayConfiguration.PerMessageDeflatePolicy().client == .strip)
    }

    @Test func aClientThatOffersPermessageDeflateGetsItAndOneThatOffersNothingGetsNoExtension() async throws {
        let metrics = TestMetrics()
        try await withDemo { demo in
            let embedded = EmbeddedDefault.configuration(upstreamPort: demo.port, identity: self.identity)
            try await withGateway(upstreamPort: demo.port, metrics: metrics, configure: { $0.routes = embedded.routes }) { port in
                let offer = "permessage-deflate; client_max_window_bits"
                let compressed = try await TestWebSocketClient.rawHandshake(
                    port: port,
                    request: OperationsMetricsTests.upgradeRequest
                        .replacingOccurrences(of: "GET / ", with: "GET /echo ")
                        .replacingOccurrences(of: "\r\n\r\n", with: "\r\nSec-WebSocket-Extensions: \(offer)\r\n\r\n")
                )
                #expect(compressed.status == 101)
                let answer = compressed.headers.filter { $0.0.lowercased() == "sec-websocket-extensions" }.map(\.1)
                #expect(answer.count == 1)
                #expect(answer.first?.hasPrefix("permessage-deflate") == true, "\(compressed.headers)")

                let plain = try await TestWebSocketClient.connect(port: port, path: "/echo")
                #expect(!plain.responseHeaders.contains { $0.0.lowercased() == "sec-websocket-extensions" })
                try await plain.send(text: "hello")
                #expect(try await plain.receiveMessage() == .text("hello"))
                try await plain.close()
            }
        }
        await metrics.eventually {
            metrics.total("wsgate_extension_decisions_total", [("side", "client"), ("decision", "negotiated")]) == 1
        }
    }

    @Test func theBannerListsTheDemoAndTheAdminURLsOnTheBoundPorts() throws {
        let listeners = [try SocketAddress(ipAddress: "127.0.0.1", port: 18080), try SocketAddress(ipAddress: "127.0.0.1", port: 18443)]
        let admin = try SocketAddress(ipAddress: "127.0.0.1", port: 19090)
        let banner = EmbeddedDefault.banner(listeners: listeners, admin: admin, upstreamPort: 4242)
        for url in [
            "ws://127.0.0.1:18080/echo", "ws://127.0.0.1:18080/chat?name=you", "wss://127.0.0.1:18443/echo",
            "http://127.0.0.1:19090/metrics", "http://127.0.0.1:19090/healthz", "http://127.0.0.1:19090/readyz",
            "python3 -m websockets ws://127.0.0.1:18080/echo", "(127.0.0.1:4242)",
            "http://127.0.0.1:4242/?gateway=ws://127.0.0.1:18080", "http://127.0.0.1:19090/ ",
        ] {
            #expect(banner.contains(url), "\(url) in:\n\(banner)")
        }
        // The descriptions line up in one column.
        let rows = banner.split(separator: "\n").filter { $0.hasPrefix("  ws") || $0.hasPrefix("  http") }
        #expect(rows.count == 8)
        let columns = rows.map { row in row.count - row.dropFirst(2).drop { $0 != " " }.drop { $0 == " " }.count }
        #expect(Set(columns).count == 1, "\(banner)")

        let withoutAdmin = EmbeddedDefault.banner(listeners: listeners, admin: nil, upstreamPort: 4242)
        #expect(!withoutAdmin.contains("http://127.0.0.1:19090"))
        #expect(withoutAdmin.contains("The admin listener is off."))
    }
}
