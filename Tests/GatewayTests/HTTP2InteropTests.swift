import Foundation
import MetricsTestKit
import TLSShim
import TestPeers
import Testing

@testable import Gateway

/// WebSockets over HTTP/2 against a real client (issue #16): Python `h2` with `wsproto` framing
/// (`scripts/test-peers/h2-websocket-client.py`) on a TLS listener with `http2: on`, in front of the demo
/// upstream (plain `ws://`, HTTP/1.1). Each run of the client is bounded (30 s).
@Suite(.serialized, .timeLimit(.minutes(3))) struct HTTP2InteropTests {
    static let client = TestPeers.packageRoot.appendingPathComponent("scripts/test-peers/h2-websocket-client.py").path

    /// Runs the gateway (TLS, `http2` as given) before the demo upstream, and `body` with the port and
    /// the CA file the client trusts.
    static func withH2Gateway(
        http2: Bool = true,
        metrics: TestMetrics? = nil,
        configure: @escaping (inout GatewayConfiguration) -> Void = { _ in },
        _ body: (_ port: Int, _ ca: String) async throws -> Void
    ) async throws {
        let certificate = try GatewayTLSTests.certificate()
        try await GatewayTLSTests.withFile(GatewayTLSTests.ca.certificatePEM) { ca in
            try await withGatewayAndDemo(metrics: metrics) {
                $0.listeners[0].tls = TLSServerConfiguration(defaultIdentity: certificate.identity)
                $0.listeners[0].tls?.offersHTTP2 = http2
                configure(&$0)
            } _: { port in
                try await body(port, ca)
            }
        }
    }

    /// The gateway (TLS, `http2: on`, `configure` applied) before the demo upstream; `body` gets the
    /// server, its port and the CA file, for a test that drives the server (drain) or reads its figures.
    static func withH2GatewayServer(
        configure: (inout GatewayConfiguration) -> Void,
        _ body: (_ server: GatewayServer, _ port: Int, _ ca: String) async throws -> Void
    ) async throws {
        let certificate = try GatewayTLSTests.certificate()
        try await GatewayTLSTests.withFile(GatewayTLSTests.ca.certificatePEM) { ca in
            try await withDemo { demo in
                try await withGatewayServer(upstreamPort: demo.port) {
                    $0.listeners[0].tls = TLSServerConfiguration(defaultIdentity: certificate.identity)
                    $0.listeners[0].tls?.offersHTTP2 = true
                    configure(&$0)
                } _: { server, port in
                    try await body(server, port, ca)
                }
            }
        }
    }

    /// The h2 client in `mode` as a running peer, for a test that reads its lines as they come.
    static func peer(_ mode: String, _ port: Int, _ ca: String, _ extra: String...) throws -> PythonPeer {
        let runner = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
        return try PythonPeer(script: runner, arguments: [Self.client, mode, String(port), ca] + extra)
    }

    static func run(_ mode: String, _ port: Int, _ ca: String, _ extra: String...) async throws -> String {
        let run = try await runPython([Self.client, mode, String(port), ca] + extra, timeout: .seconds(60))
        #expect(run.status == 0, "\(mode): \(run.output)")
        return run.output
    }

    /// Many streams on one connection, each its own upstream connection (a normal HTTP/1.1 upgrade),
    /// each echoing and closing 1000 then END_STREAM; logged and counted as `h2` with status 200.
    @Test func manyStreamsOnOneConnectionEachEchoThroughAPlainUpstream() async throws {
        guard try await PythonPeer.require("h2"), try await PythonPeer.require("wsproto") else { return }
        let metrics = TestMetrics()
        try await GatewayTLSTests.withFile("") { log in
            try await Self.withH2Gateway(metrics: metrics, configure: { $0.accessLog = .file(log) }) { port, ca in
                let output = try await Self.run("echo", port, ca, "20")
                #expect(output.contains("OK 20"), "\(output)")
                // A stream's line is written when its session ends, which may be after the client exits:
                // wait for all 20 (a loaded machine only makes this slower), then assert.
                await waitFor {
                    GatewayTLSTests.accessLogLines(log).filter { $0.contains("\"protocol\":\"h2\"") }.count >= 20
                        && metrics.total("wsgate_connections_by_protocol_total", [("protocol", "h2")]) >= 20
                }
                let lines = GatewayTLSTests.accessLogLines(log)
                let streams = lines.filter { $0.contains("\"protocol\":\"h2\"") && $0.contains("\"status\":200") }
                #expect(streams.count == 20, "\(lines)")
                #expect(streams.allSatisfy { $0.contains("\"close_code\":1000") }, "\(streams)")
                #expect(metrics.total("wsgate_connections_by_protocol_total", [("protocol", "h2")]) == 20)
                #expect(metrics.total("wsgate_connections_by_protocol_total", [("protocol", "http1")]) == 0)
            }
        }
    }

    /// RFC 8441 §4: a CONNECT without `:protocol` is a tunnel request, refused with a status and END_STREAM.
    @Test func aConnectWithoutProtocolIsRefused400() async throws {
        guard try await PythonPeer.require("h2") else { return }
        try await Self.withH2Gateway { port, ca in
            let output = try await Self.run("no-protocol", port, ca)
            #expect(output.contains("STATUS 400") && output.contains("ENDED"), "\(output)")
        }
    }

    /// `h2` is offered only where `tls.http2: on`; elsewhere ALPN picks `http/1.1` for a client that
    /// offers both (RFC 7301 §3.2).
    /// Catalog T-07: `h2,http/1.1` selects http/1.1 on a listener without http2 (and h2 only where it is turned on).
    @Test func anH2ClientOnAListenerWithHTTP2OffGetsHTTP11() async throws {
        guard try await PythonPeer.require("h2") else { return }
        try await Self.withH2Gateway(http2: false) { port, ca in
            let output = try await Self.run("alpn", port, ca)
            #expect(output.contains("ALPN http/1.1"), "\(output)")
        }
        try await Self.withH2Gateway(http2: true) { port, ca in
            let output = try await Self.run("alpn", port, ca)
            #expect(output.contains("ALPN h2"), "\(output)")
        }
    }

    /// CVE-2023-44487: streams opened and reset at once past `limits.http2.max_resets` end the
    /// connection with GOAWAY ENHANCE_YOUR_CALM (11).
    @Test func rapidResetEndsTheConnectionWithEnhanceYourCalm() async throws {
        guard try await PythonPeer.require("h2") else { return }
        try await Self.withH2Gateway(configure: { $0.limits.http2.maxResets = 20 }) { port, ca in
            let output = try await Self.run("rapid-reset", port, ca, "200")
            #expect(output.contains("GOAWAY 11"), "\(output)")
        }
    }

    /// A stream that never sends DATA after its 200 is still under the idle timeout: Close 1001; once
    /// the client answered it, the gateway ends the stream (END_STREAM, RFC 8441 §5).
    @Test func aStreamThatNeverSendsDataIsClosedByTheIdleTimeout() async throws {
        guard try await PythonPeer.require("h2"), try await PythonPeer.require("wsproto") else { return }
        try await Self.withH2Gateway(configure: { $0.timeouts.idle = .seconds(1) }) { port, ca in
            let output = try await Self.run("silent", port, ca)
            #expect(output.contains("STATUS 200") && output.contains("CLOSE 1001"), "\(output)")
            #expect(output.contains("StreamEnded"), "the close handshake did not end the stream: \(output)")
        }
    }

    /// `limits.http2.max_streams_per_connection`: GOAWAY names the stream that reached it as the last;
    /// later streams are not served on this connection.
    @Test func theStreamLimitPerConnectionSendsGoAway() async throws {
        guard try await PythonPeer.require("h2") else { return }
        let metrics = TestMetrics()
        try await Self.withH2Gateway(metrics: metrics, configure: { $0.limits.http2.maxStreamsPerConnection = 5 }) { port, ca in
            let output = try await Self.run("lifetime", port, ca, "8")
            #expect(output.contains("GOAWAY 0 9"), "\(output)")
            #expect(!output.contains("(11, '200')"), "\(output)")
            try await Task.sleep(for: .milliseconds(300))
            #expect(metrics.total("wsgate_connections_by_protocol_total", [("protocol", "h2")]) <= 5)
        }
    }

    /// Drain: GOAWAY first (the graceful form, last stream ID 2^31-1), then the stream's WebSocket gets
    /// Close 1001; the connection ends when its stream has.
    /// Catalog G-01: on an HTTP/2 connection the drain sends GOAWAY, then Close 1001 on the stream's WebSocket.
    @Test func aDrainSendsGoAwayThenCloses1001OnEachStream() async throws {
        guard try await PythonPeer.require("h2"), try await PythonPeer.require("wsproto") else { return }
        try await Self.withH2GatewayServer(configure: { $0.timeouts.close = .seconds(1) }) { server, port, ca in
            let peer = try Self.peer("drain", port, ca)
            #expect(try await peer.firstLine() == "OPEN")
            let result = await server.drain(timeout: .seconds(5))
            let (status, output) = try await peer.finish()
            #expect(status == 0, "\(output)")
            let lines = output.split(separator: "\n").map(String.init)
            let goAway = lines.firstIndex { $0.hasPrefix("GOAWAY 0 2147483647") }
            let close = lines.firstIndex { $0 == "CLOSE-AFTER-GOAWAY" }
            #expect(goAway != nil && close != nil && goAway! < close!, "\(lines)")
            #expect(lines.last?.hasPrefix("EOF") == true, "\(lines)")
            #expect(result.forced == 0, "\(result)")
        }
    }

    /// RFC 8441 §5: RST_STREAM is the HTTP/2 form of a lost TCP connection: recorded as 1006, the
    /// upstream leg closed.
    @Test func aStreamResetIsRecordedAsALostConnection() async throws {
        guard try await PythonPeer.require("h2") else { return }
        try await GatewayTLSTests.withFile("") { log in
            try await Self.withH2Gateway(configure: { $0.accessLog = .file(log) }) { port, ca in
                let output = try await Self.run("reset-open", port, ca)
                #expect(output.contains("RESET-SENT"), "\(output)")
                await waitFor { GatewayTLSTests.accessLogLines(log).contains { $0.contains("\"protocol\":\"h2\"") } }
                let lines = GatewayTLSTests.accessLogLines(log)
                #expect(lines.contains { $0.contains("\"protocol\":\"h2\"") && $0.contains("\"close_code\":1006") }, "\(lines)")
            }
        }
    }

    /// Every stream counts as a connection for the per-IP cap (the TLS connection carrying them counts
    /// once too): with a cap of 3, the first two streams are served and the rest answered 503.
    @Test func everyStreamCountsForThePerIPConnectionCap() async throws {
        guard try await PythonPeer.require("h2") else { return }
        let metrics = TestMetrics()
        try await Self.withH2Gateway(metrics: metrics, configure: { $0.connectionLimits.perIPConnections = 3 }) { port, ca in
            let output = try await Self.run("lifetime", port, ca, "5")
            #expect(output.contains("STREAMS [(1, '200'), (3, '200'), (5, '503'), (7, '503'), (9, '503')]"), "\(output)")
        }
    }
}
