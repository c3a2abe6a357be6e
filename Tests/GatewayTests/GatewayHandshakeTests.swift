import Foundation
import Frames
import MetricsTestKit
import NIOCore
import NIOPosix
import Testing

@testable import Gateway

/// The upgrade in both directions over real sockets: every refusal is an exact HTTP answer, and only a
/// fully valid 101 from the upstream switches to frames (DESIGN §1.3–1.8).
@Suite(.timeLimit(.minutes(2))) struct GatewayHandshakeTests {
    private static func request(path: String = "/", extra: String = "", key: String = "dGhlIHNhbXBsZSBub25jZQ==") -> String {
        "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\(extra)\r\n"
    }

    // MARK: The client's request

    /// Catalog H-06: version 8 is 426 with Sec-WebSocket-Version: 13, answered by the gateway itself (never forwarded); every refusal closes.
    /// Catalog H-07: POST with the upgrade headers is 405, never upgraded.
    /// Catalog H-04: a malformed Sec-WebSocket-Key is 400.
    @Test func refusalsHaveTheirExactStatus() async throws {
        let metrics = TestMetrics()
        try await withGatewayAndDemo(metrics: metrics, configure: { $0.routes[0].hosts = ["127.0.0.1"] }) { port in
            let cases: [(String, Int)] = [
                ("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 426),
                (Self.request().replacingOccurrences(of: "Version: 13", with: "Version: 8"), 426),
                (Self.request().replacingOccurrences(of: "GET", with: "POST"), 405),
                (Self.request(key: "not-a-key"), 400),
                (Self.request().replacingOccurrences(of: "Host: 127.0.0.1", with: "Host: elsewhere.example"), 404),
                ("garbage\r\n\r\n", 400),
            ]
            for (request, status) in cases {
                let answer = try await TestWebSocketClient.rawHandshake(port: port, request: request)
                #expect(answer.status == status, "\(request.prefix(40))")
                #expect(answer.headers.contains { $0.0.lowercased() == "connection" && $0.1 == "close" })
            }
            let version = try await TestWebSocketClient.rawHandshake(
                port: port,
                request: Self.request().replacingOccurrences(of: "Version: 13", with: "Version: 8")
            )
            #expect(version.headers.contains { $0.0 == "Sec-WebSocket-Version" && $0.1 == "13" })
        }
        // One refusal counted per answer, by reason and status.
        #expect(metrics.counterTotal(label: "wsgate_upgrades_refused_total") == 7)
        func refusals(_ key: String, _ value: String) -> Int64 {
            metrics.counters(label: "wsgate_upgrades_refused_total")
                .filter { $0.dimensions.contains { $0 == (key, value) } }
                .reduce(0) { $0 + $1.totalValue }
        }
        #expect(refusals("status", "426") == 3)
        #expect(refusals("status", "404") == 1)
        #expect(refusals("reason", "ws-version") == 2)
    }

    /// Catalog H-02: a 17 KiB header over a socket is 431 (wsgate's 16 KiB limit, not NIO's 80 KiB).
    @Test func anOversizedRequestHeadIs431() async throws {
        try await withGatewayAndDemo { port in
            let big = Self.request(extra: "X-Padding: \(String(repeating: "a", count: 17 * 1024))\r\n")
            let answer = try await TestWebSocketClient.rawHandshake(port: port, request: big)
            #expect(answer.status == 431)
        }
    }

    /// Catalog H-01: a head that never ends is answered 408 at the head deadline, over a socket.
    @Test func aRequestHeadThatNeverEndsIs408() async throws {
        try await withGatewayAndDemo(configure: { $0.timeouts.requestHead = .seconds(1) }) { port in
            let answer = try await TestWebSocketClient.rawHandshake(port: port, request: "GET / HTTP/1.1\r\nHost: x\r\n")
            #expect(answer.status == 408)
        }
    }

    @Test func bytesBeforeThe101Are400AndNeverForwarded() async throws {
        try await withGatewayAndRecordingUpstream { port, upstream in
            // A masked text frame right behind the request, before any answer.
            let answer = try await TestWebSocketClient.rawHandshake(
                port: port,
                request: Self.request() + String(decoding: [0x81, 0x80, 1, 2, 3, 4], as: UTF8.self)
            )
            #expect(answer.status == 400)
            #expect(upstream.received.isEmpty)
        }
    }

    // MARK: The upstream's answer

    /// Catalog U-03: a 4xx from the upstream is relayed (status, body, Connection: close), a 200 becomes 502; never a 101, both legs close.
    @Test(arguments: [
        ("HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 5\r\n\r\nnope!", 426, "nope!"),
        (
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi", 502,
            "the upstream answered 200 instead of 101 Switching Protocols\n"
        ),
        ("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", 403, ""),
    ])
    func aNon101IsRelayedAndBothSidesClose(response: String, status: Int, body: String) async throws {
        let upstream = try await FakeUpstream.start { _ in FakeUpstream.Reply(response: Array(response.utf8)) }
        defer { Task { await upstream.close() } }
        try await withGateway(upstreamPort: upstream.port) { port in
            let answer = try await TestWebSocketClient.rawHandshake(port: port, request: Self.request())
            #expect(answer.status == status)
            #expect(answer.body == body)
            #expect(!answer.headers.contains { $0.0.lowercased() == "upgrade" })
            #expect(answer.headers.contains { $0.0.lowercased() == "connection" && $0.1 == "close" })
        }
        try await upstream.waitUntilAllEnded()
        #expect(upstream.received.isEmpty)
    }

    /// Catalog H-16: an upstream choosing a subprotocol the client did not offer (or an extension not offered) is 502.
    /// Catalog U-06: a 101 naming an extension or subprotocol that was not offered (or otherwise invalid) is 502.
    @Test(arguments: [
        "wrong-accept", "extension", "subprotocol", "no-upgrade-header",
    ])
    func anInvalid101Is502(flaw: String) async throws {
        let upstream = try await FakeUpstream.start { request in
            switch flaw {
            case "wrong-accept":
                return FakeUpstream.Reply(
                    response: Array(
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"
                            .utf8
                    )
                )
            case "extension":
                return .accept(request, extraHeaders: "Sec-WebSocket-Extensions: permessage-deflate\r\n")
            case "subprotocol":
                return .accept(request, extraHeaders: "Sec-WebSocket-Protocol: never-offered\r\n")
            default:
                return FakeUpstream.Reply(
                    response: Array("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(request.accept)\r\n\r\n".utf8)
                )
            }
        }
        defer { Task { await upstream.close() } }
        try await withGateway(upstreamPort: upstream.port) { port in
            let answer = try await TestWebSocketClient.rawHandshake(port: port, request: Self.request())
            #expect(answer.status == 502, "\(flaw)")
        }
    }

    /// Catalog U-10: (a) an upstream that refuses the connection is 502 at once.
    @Test func anUnreachableUpstreamIs502() async throws {
        // A port that was just free: bind, note it, close.
        let probe = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let closedPort = probe.localAddress!.port!
        try await probe.close()
        try await withGateway(upstreamPort: closedPort) { port in
            let answer = try await TestWebSocketClient.rawHandshake(port: port, request: Self.request())
            #expect(answer.status == 502)
        }
    }

    /// Catalog U-09: an upstream that accepts TCP and never answers the upgrade request gives 504 at the upstream deadline (half a second here, not minutes), then both legs close.
    @Test func anUpstreamThatNeverAnswersIs504() async throws {
        let upstream = try await FakeUpstream.start { _ in FakeUpstream.Reply(response: []) }
        defer { Task { await upstream.close() } }
        try await withGateway(
            upstreamPort: upstream.port,
            configure: {
                $0.timeouts.upstreamConnect = .milliseconds(200)
                $0.timeouts.upstreamHandshake = .milliseconds(300)
            }
        ) { port in
            let answer = try await TestWebSocketClient.rawHandshake(port: port, request: Self.request(), timeout: .seconds(20))
            #expect(answer.status == 504)
            #expect(answer.headers.contains { $0.0.lowercased() == "connection" && $0.1 == "close" })
        }
        // The upstream leg is closed too (it may not have read the request yet on a loaded machine).
        try await upstream.waitUntilAllEnded()
        #expect(upstream.accepted == 1 && upstream.requests.count <= 1)
    }

    // MARK: What goes upstream

    /// Catalog H-13: with no trusted proxy, the client's X-Forwarded-For/-Proto/-Host, Forwarded and X-Real-IP are dropped; the upstream sees the gateway's own values, each exactly once (X-Forwarded-For: 127.0.0.1), and the access log names the socket's peer.
    /// Catalog H-11: the upstream request is re-serialized from parsed fields (hop-by-hop headers and those named in Connection removed).
    @Test func theUpstreamRequestCarriesAFreshKeyForwardedHeadersAndNoHopByHopHeaders() async throws {
        let upstream = try await FakeUpstream.start { .accept($0, extraHeaders: "Sec-WebSocket-Protocol: chat.v1\r\n") }
        defer { Task { await upstream.close() } }
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-forwarded-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        try await withGateway(
            upstreamPort: upstream.port,
            configure: {
                $0.routes[0].subprotocols = ["chat.v1"]
                $0.accessLog = .file(log)
            }
        ) { port in
            let extra = [
                "Sec-WebSocket-Protocol: chat.v2, chat.v1", "X-Custom: kept", "Connection: X-Secret", "X-Secret: dropped",
                "Keep-Alive: timeout=5", "X-Forwarded-For: 203.0.113.9", "Sec-WebSocket-Extensions: permessage-deflate",
                "Forwarded: for=1.2.3.4;proto=https", "X-Real-IP: 1.2.3.4", "X-Forwarded-Proto: https", "X-Forwarded-Host: evil.example",
            ].map { $0 + "\r\n" }.joined()
            let answer = try await TestWebSocketClient.rawHandshake(port: port, request: Self.request(path: "/room?x=1", extra: extra))
            #expect(answer.status == 101)
            #expect(answer.headers.contains { $0.0 == "Sec-WebSocket-Protocol" && $0.1 == "chat.v1" })
            #expect(answer.headers.contains { $0.0 == "Sec-WebSocket-Accept" && $0.1 == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" })
            #expect(!answer.headers.contains { $0.0 == "Sec-WebSocket-Extensions" })
            let request = try #require(upstream.requests.first)
            #expect(request.head.hasPrefix("GET /room?x=1 HTTP/1.1\r\n"))
            #expect(request.key != "dGhlIHNhbXBsZSBub25jZQ==" && HandshakeKey.isValidKey(request.key))
            #expect(request.header("X-Custom") == "kept")
            #expect(request.header("X-Secret") == nil)
            #expect(request.header("Keep-Alive") == nil)
            #expect(request.header("Sec-WebSocket-Extensions") == nil)
            #expect(request.header("Sec-WebSocket-Protocol") == "chat.v1")
            // No trusted proxy: the client's own X-Forwarded-For is removed, the gateway's set once (issue #11 §1).
            #expect(request.header("X-Forwarded-For") == "127.0.0.1")
            #expect(request.header("X-Forwarded-Proto") == "http")
            #expect(request.header("Forwarded") == "for=127.0.0.1;host=127.0.0.1;proto=http")
            #expect(request.header("X-Forwarded-Host") == "127.0.0.1")
            #expect(request.header("X-Real-IP") == nil)
            // Set exactly once each: nothing the client sent survives beside them.
            let lines = request.head.split(separator: "\r\n").map { $0.lowercased() }
            for name in ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"] {
                #expect(lines.filter { $0.hasPrefix(name + ":") }.count == 1, "\(name)")
            }
            #expect(!request.head.contains("1.2.3.4") && !request.head.contains("203.0.113.9") && !request.head.contains("evil.example"))
            #expect(request.header("Host") == "127.0.0.1:\(upstream.port)")
            // The log names the socket's peer, never a forwarded address.
            upstream.dropConnections()
            let deadline = ContinuousClock.now + .seconds(5)
            var line = ""
            while line.isEmpty, ContinuousClock.now < deadline {
                line = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                if line.isEmpty { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(line.contains(#""client":"127.0.0.1"#), "\(line)")
            #expect(!line.contains("1.2.3.4") && !line.contains("203.0.113.9"), "\(line)")
        }
    }
}
