import Foundation
import NIOPosix
import Prometheus
import TLSShim
import Testing

@testable import Gateway

/// The admin listener end to end over real sockets (issue #14), each wait bounded: a relayed connection
/// appears in `/connections`, its traffic in `/metrics` before it closes, its frames in a tap stream
/// (handshake secrets redacted), and `POST /connections/{id}/close` ends both legs. The token guards
/// what it must.
@Suite struct AdminHandlerTests {
    static let token = "t0ken-for-tests"

    static func request(
        _ port: Int,
        _ method: String,
        _ path: String,
        token: String? = Self.token,
        body: String = ""
    ) async throws -> (
        status: Int, headers: [(String, String)], body: String
    ) {
        var request = "\(method) \(path) HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n"
        if let token { request += "Authorization: Bearer \(token)\r\n" }
        if !body.isEmpty { request += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" }
        request += "\r\n" + body
        return try await TestWebSocketClient.rawHandshake(port: port, request: request)
    }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func aRelayedConnectionIsListedCountedTappedAndClosedThroughTheAdminListener() async throws {
        let registry = PrometheusCollectorRegistry()
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
                metricsFactory: GatewayService.metricsFactory(registry: registry)
            )
            let connections = server.environment.connections
            let admin = try await AdminServer.start(
                host: "127.0.0.1",
                port: 0,
                registry: registry,
                group: MultiThreadedEventLoopGroup.singleton,
                observation: AdminObservation(live: connections.live, taps: connections.taps),
                token: AdminToken(.init(bytes: Array(Self.token.utf8))),
                isReady: { true }
            )
            let port = admin.localAddress!.port!

            // The guard: no token, no list; health and metrics stay open.
            #expect(try await Self.request(port, "GET", "/connections", token: nil).status == 401)
            #expect(try await Self.request(port, "GET", "/tap", token: "wrong").status == 401)
            #expect(try await Self.request(port, "GET", "/healthz", token: nil).status == 200)
            #expect(try await Self.request(port, "GET", "/metrics", token: nil).status == 200)

            // A tap, streaming before the connection opens.
            let tap = try await RawConnection.open(port: port)
            await tap.send("GET /tap?payload=full HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer \(Self.token)\r\n\r\n")
            #expect(try await tap.wait(for: .seconds(5)) { $0.text.contains("application/x-ndjson") })
            #expect(try await tap.wait(for: .seconds(5)) { _ in connections.taps.count == 1 })

            let client = try await TestWebSocketClient.connect(
                port: server.localAddresses[0].port!,
                path: "/echo?access_token=SECRET1&name=a",
                headers: [("Cookie", "session=SECRET2")]
            )
            try await client.send(text: "hello through the tap")
            #expect(try await client.receiveMessage() == .text("hello through the tap"))

            // Listed, with its figures.
            let list = try Self.json(try await Self.request(port, "GET", "/connections").body)
            let rows = try #require(list["connections"] as? [[String: Any]])
            #expect(rows.count == 1)
            let id = try #require(rows.first?["id"] as? Int)
            #expect(rows.first?["route"] as? String == "/")
            #expect(rows.first?["state"] as? String == "open")
            #expect((rows.first?["client_to_upstream"] as? [String: Int])?["bytes"] == 21)
            #expect(try await Self.request(port, "GET", "/connections/\(id)").status == 200)
            #expect(try await Self.request(port, "GET", "/connections/\(id + 1000)").status == 404)

            // The traffic is in /metrics while the connection lives (flushed within a second).
            let counted = #"wsgate_bytes_total{listener="127.0.0.1:0",route="/",direction="client_to_upstream"} 21"#
            let deadline = ContinuousClock.now + .seconds(5)
            var metrics = ""
            while ContinuousClock.now < deadline {
                metrics = try await Self.request(port, "GET", "/metrics", token: nil).body
                if metrics.contains(counted) { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(metrics.contains(counted), "\(metrics)")

            // The tap saw the handshake, redacted, and the frames both ways.
            #expect(try await tap.wait(for: .seconds(5)) { $0.text.components(separatedBy: "\"event\":\"frame\"").count >= 3 })
            let text = tap.text
            #expect(text.contains(#""event":"open""#))
            #expect(text.contains(#""scheme":"ws","listener":""#))
            #expect(text.contains("access_token=[redacted]&name=a"))
            #expect(!text.contains("SECRET1") && !text.contains("SECRET2"), "\(text)")
            #expect(text.contains(#""payload":"hello through the tap""#))

            // Closed by the operator: the client gets 1008, and the upstream leg is closed too.
            let close = try await Self.request(port, "POST", "/connections/\(id)/close", body: #"{"code":1008,"reason":"operator"}"#)
            #expect(close.status == 202)
            #expect(try Self.json(close.body)["closing"] as? Int == id)
            #expect(try await client.receiveMessage() == .close(.policyViolation, "operator"))
            try await client.close(code: .policyViolation)
            #expect(try await tap.wait(for: .seconds(5)) { $0.text.contains(#""by":"gateway","leg":"upstream""#) })
            #expect(try await tap.wait(for: .seconds(5)) { _ in connections.live.count == 0 })
            #expect(try await Self.request(port, "POST", "/connections/\(id)/close", body: #"{"code":1008}"#).status == 404)
            #expect(try await Self.request(port, "POST", "/connections/\(id)/close", body: #"{"code":1000}"#).status == 400)

            tap.close()
            #expect(try await tap.wait(for: .seconds(5)) { _ in connections.taps.count == 0 })
            try await admin.close()
            try await server.close()
        }
    }

    /// Issue #14 leftover: over a real TLS socket (TLSShim client trusting the test CA), the tap's `open`
    /// says `"scheme":"wss"`, so `wsgate tap --har` writes the URL the client used.
    @Test func aConnectionOverTLSIsTappedWithSchemeWss() async throws {
        let registry = PrometheusCollectorRegistry()
        let certificate = try GatewayTLSTests.certificate()
        try await withDemo { demo in
            var configuration = GatewayConfiguration(
                listeners: [.init(host: "127.0.0.1", port: 0)],
                routes: [.init(pathPrefix: "/", upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: demo.port)])],
                accessLog: .off
            )
            configuration.listeners[0].tls = TLSServerConfiguration(defaultIdentity: certificate.identity)
            configuration.admin = .off
            let server = try await GatewayServer.start(
                configuration: configuration,
                group: MultiThreadedEventLoopGroup.singleton,
                metricsFactory: GatewayService.metricsFactory(registry: registry)
            )
            let connections = server.environment.connections
            let admin = try await AdminServer.start(
                host: "127.0.0.1",
                port: 0,
                registry: registry,
                group: MultiThreadedEventLoopGroup.singleton,
                observation: AdminObservation(live: connections.live, taps: connections.taps),
                token: AdminToken(),
                isReady: { true }
            )
            let tap = try await RawConnection.open(port: admin.localAddress!.port!)
            await tap.send("GET /tap?payload=none HTTP/1.1\r\nHost: admin\r\n\r\n")
            #expect(try await tap.wait(for: .seconds(5)) { _ in connections.taps.count == 1 })
            let answer = try await TLSTestClient.upgrade(port: server.localAddresses[0].port!)
            #expect(answer.status == 101)
            #expect(try await tap.wait(for: .seconds(5)) { $0.text.contains(#""event":"open""#) })
            #expect(tap.text.contains(#""scheme":"wss","listener":""#), "\(tap.text)")
            #expect(!tap.text.contains(#""scheme":"ws","#))
            tap.close()
            try await admin.close()
            try await server.close()
        }
    }
}
