import Foundation
import MetricsTestKit
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TLSShim
import Testing

@testable import Gateway

/// Issue #11 over real sockets: a real HAProxy sending PROXY v1 (`send-proxy`) and v2
/// (`send-proxy-v2`) in front of the gateway, the upstream and the access log seeing the original
/// client; a peer outside `trusted_proxies` closed at accept; the forged Host refused; the SNI/Host
/// match answering 421.
@Suite(.serialized, .timeLimit(.minutes(2))) struct GatewayEdgeTests {
    /// The client's own address: a second loopback address, so that it differs from HAProxy's (127.0.0.1).
    static let clientAddress = "127.0.0.2"

    static func request(host: String = "edge.example", extra: String = "") -> String {
        "GET /room HTTP/1.1\r\nHost: \(host)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\(extra)\r\n"
    }

    @Test(arguments: [("send-proxy", ProxyProtocolMode.v1), ("send-proxy-v2", .v2), ("send-proxy-v2", .any), ("send-proxy", .any)])
    func haproxyCarriesTheClientAddressToTheUpstreamAndTheLog(option: String, mode: ProxyProtocolMode) async throws {
        guard try HAProxy.require() else { return }
        let upstream = try await FakeUpstream.start { .accept($0) }
        defer { Task { await upstream.close() } }
        try await GatewayTLSTests.withFile("") { log in
            try await withGateway(
                upstreamPort: upstream.port,
                configure: {
                    $0.listeners[0].proxyProtocol = mode
                    $0.trustedProxies = ["127.0.0.1"]
                    $0.accessLog = .file(log)
                    // The fake upstream never answers the gateway's Close: end the session quickly.
                    $0.timeouts.close = .milliseconds(100)
                }
            ) { port in
                let haproxy = try await HAProxy.start(forwardingTo: port, option: option)
                defer { haproxy.stop() }
                // A client forging its own forwarding headers: they are not believed (it is not trusted).
                let answer = try await RawClient.exchange(
                    from: Self.clientAddress,
                    port: haproxy.port,
                    Self.request(extra: "X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n")
                )
                #expect(answer.hasPrefix("HTTP/1.1 101"), "\(answer)")
                let request = try #require(upstream.requests.first)
                #expect(request.header("X-Forwarded-For") == Self.clientAddress)
                #expect(request.header("Forwarded") == "for=\(Self.clientAddress);host=edge.example;proto=http")
                #expect(request.header("X-Real-IP") == nil)
            }
            // The line is written when the session ends (the client left; the upstream got 1001).
            let deadline = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < deadline && !GatewayTLSTests.accessLogLines(log).contains(where: { $0.contains("\"status\":101") }) {
                try await Task.sleep(for: .milliseconds(50))
            }
            let lines = GatewayTLSTests.accessLogLines(log)
            #expect(lines.contains { $0.contains("\"client\":\"\(Self.clientAddress)\"") && $0.contains("\"status\":101") }, "\(lines)")
        }
    }

    @Test func aReloadTurnsPROXYProtocolOnForNewConnections() async throws {
        let upstream = try await FakeUpstream.start { .accept($0) }
        defer { Task { await upstream.close() } }
        try await withGatewayServer(upstreamPort: upstream.port) { server, port in
            var configuration = server.configuration
            configuration.listeners[0].proxyProtocol = .v1
            configuration.trustedProxies = ["127.0.0.1"]
            try await server.reload(configuration: configuration)
            // A request without the header is now refused; one with it names its client.
            let bare = try await RawClient.exchange(from: "127.0.0.1", port: port, Self.request())
            #expect(bare.isEmpty, "\(bare)")
            let proxied = try await RawClient.exchange(from: "127.0.0.1", port: port, "PROXY TCP4 1.2.3.4 127.0.0.1 1 2\r\n" + Self.request())
            #expect(proxied.hasPrefix("HTTP/1.1 101"), "\(proxied)")
            #expect(upstream.requests.map { $0.header("X-Forwarded-For") } == ["1.2.3.4"])
        }
    }

    @Test func aTruncatedHeaderIsClosedAtTheDeadlineAndNothingBehindItIsRead() async throws {
        let metrics = TestMetrics()
        try await withGatewayAndRecordingUpstream(
            metrics: metrics,
            configure: {
                $0.listeners[0].proxyProtocol = .v2
                $0.trustedProxies = ["127.0.0.1"]
                $0.timeouts.proxyHeader = .milliseconds(200)
            }
        ) { port, upstream in
            // The signature and a 12-byte INET length, then only 4 of the 12 address bytes.
            let partial = ProxyProtocolDecoder.v2Signature + [0x21, 0x11, 0, 12, 1, 2, 3, 4]
            let answer = try await RawClient.exchange(from: "127.0.0.1", port: port, String(decoding: partial, as: UTF8.self))
            #expect(answer.isEmpty)
            #expect(upstream.requests.isEmpty)
        }
        #expect(metrics.total("wsgate_proxy_protocol_refusals_total", [("reason", "proxy-protocol-timeout")]) == 1)
    }

    @Test func aListenerForV1RefusesHAProxysV2() async throws {
        guard try HAProxy.require() else { return }
        let metrics = TestMetrics()
        try await withGatewayAndRecordingUpstream(
            metrics: metrics,
            configure: {
                $0.listeners[0].proxyProtocol = .v1
                $0.trustedProxies = ["127.0.0.1"]
            }
        ) { port, upstream in
            let haproxy = try await HAProxy.start(forwardingTo: port, option: "send-proxy-v2")
            defer { haproxy.stop() }
            let answer = try await RawClient.exchange(from: Self.clientAddress, port: haproxy.port, Self.request())
            #expect(answer.isEmpty, "\(answer)")
            #expect(upstream.requests.isEmpty)
        }
        // HAProxy may retry a server that closed before answering: one refusal per attempt.
        #expect(metrics.total("wsgate_proxy_protocol_refusals_total", [("reason", "proxy-protocol-signature")]) >= 1)
    }

    @Test func aPeerOutsideTrustedProxiesIsClosedAtAcceptOnAProxyListener() async throws {
        let metrics = TestMetrics()
        try await withGatewayAndRecordingUpstream(
            metrics: metrics,
            configure: {
                $0.listeners[0].proxyProtocol = .any
                $0.trustedProxies = ["127.0.0.1"]
            }
        ) { port, upstream in
            // 127.0.0.2 claims to be 1.2.3.4 in a well-formed header: closed unread, nothing upstream.
            let answer = try await RawClient.exchange(from: Self.clientAddress, port: port, "PROXY TCP4 1.2.3.4 127.0.0.1 1 2\r\n" + Self.request())
            #expect(answer.isEmpty)
            #expect(upstream.requests.isEmpty)
            // The trusted peer with the same bytes gets through, as 1.2.3.4.
            let trusted = try await RawClient.exchange(from: "127.0.0.1", port: port, "PROXY TCP4 1.2.3.4 127.0.0.1 1 2\r\n" + Self.request())
            #expect(trusted.hasPrefix("HTTP/1.1 101"), "\(trusted)")
            #expect(upstream.requests.first?.header("X-Forwarded-For") == "1.2.3.4")
        }
        #expect(metrics.total("wsgate_proxy_protocol_refusals_total", [("reason", "untrusted-peer")]) == 1)
    }

    /// Catalog H-13: over a socket, an untrusted client's X-Forwarded-For/-Proto are replaced by the socket peer's; only a trusted proxy's are appended.
    @Test func aPlainListenerNoLongerBelievesAClientsForwardingHeadersButATrustedProxysAreAppended() async throws {
        try await withGatewayAndRecordingUpstream(configure: { $0.trustedProxies = ["127.0.0.1"] }) { port, upstream in
            let forged = "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nTrue-Client-IP: 6.6.6.6\r\n"
            _ = try await RawClient.exchange(from: Self.clientAddress, port: port, Self.request(extra: forged))
            _ = try await RawClient.exchange(from: "127.0.0.1", port: port, Self.request(extra: "X-Forwarded-For: 203.0.113.9\r\n"))
            let requests = upstream.requests
            try #require(requests.count == 2)
            #expect(requests[0].header("X-Forwarded-For") == Self.clientAddress)
            #expect(requests[0].header("X-Forwarded-Proto") == "http")
            #expect(requests[0].header("True-Client-IP") == nil)
            #expect(requests[1].header("X-Forwarded-For") == "203.0.113.9, 127.0.0.1")
        }
    }

    @Test func perIPConnectionCapsCountTheAddressOfThePROXYHeader() async throws {
        try await withGatewayAndRecordingUpstream(
            configure: {
                $0.listeners[0].proxyProtocol = .v1
                $0.trustedProxies = ["127.0.0.1"]
                $0.connectionLimits.perIPConnections = 1
            }
        ) { port, upstream in
            // Three connections from the same proxy: two for client 1.2.3.4 (the second over the cap of
            // 1), one for 5.6.7.8. Capping the proxy's own address would refuse the third too.
            let first = try await RawClient.connect(from: "127.0.0.1", port: port, "PROXY TCP4 1.2.3.4 127.0.0.1 1 2\r\n" + Self.request())
            defer { first.channel.close(promise: nil) }
            #expect(first.answer.hasPrefix("HTTP/1.1 101"), "\(first.answer)")
            let second = try await RawClient.exchange(from: "127.0.0.1", port: port, "PROXY TCP4 1.2.3.4 127.0.0.1 3 2\r\n" + Self.request())
            #expect(second.isEmpty, "\(second)")
            let other = try await RawClient.exchange(from: "127.0.0.1", port: port, "PROXY TCP4 5.6.7.8 127.0.0.1 1 2\r\n" + Self.request())
            #expect(other.hasPrefix("HTTP/1.1 101"), "\(other)")
        }
    }

    @Test func chainModeLogsTheRightMostUntrustedAddressOfATrustedPeer() async throws {
        let upstream = try await FakeUpstream.start { .accept($0) }
        defer { Task { await upstream.close() } }
        try await GatewayTLSTests.withFile("") { log in
            try await withGateway(
                upstreamPort: upstream.port,
                configure: {
                    $0.trustedProxies = ["127.0.0.1", "10.0.0.0/8"]
                    $0.clientAddress = .chain
                    $0.accessLog = .file(log)
                    $0.timeouts.close = .milliseconds(100)
                }
            ) { port in
                _ = try await RawClient.exchange(
                    from: "127.0.0.1",
                    port: port,
                    Self.request(extra: "X-Forwarded-For: 6.6.6.6, 198.51.100.4, 10.1.1.1\r\n")
                )
                // The untrusted client's chain is not walked.
                _ = try await RawClient.exchange(from: Self.clientAddress, port: port, Self.request(extra: "X-Forwarded-For: 6.6.6.6\r\n"))
                let deadline = ContinuousClock.now + .seconds(5)
                while ContinuousClock.now < deadline && GatewayTLSTests.accessLogLines(log).filter({ $0.contains("\"status\":101") }).count < 2 {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            let lines = GatewayTLSTests.accessLogLines(log)
            #expect(lines.contains { $0.contains("\"client\":\"198.51.100.4\"") }, "\(lines)")
            #expect(lines.contains { $0.contains("\"client\":\"\(Self.clientAddress)\"") }, "\(lines)")
            #expect(!lines.contains { $0.contains("6.6.6.6") }, "\(lines)")
        }
    }

    /// Issue #11 §1: with `client_address: chain`, the per-IP connection cap counts the right-most
    /// untrusted address a trusted proxy names, not the proxy: two clients behind one proxy each get
    /// their own count, and the second connection of one client over the cap is 503 before any upstream.
    @Test func chainModeCountsThePerIPCapByTheChainsClientNotTheProxy() async throws {
        try await withGatewayAndRecordingUpstream(
            configure: {
                $0.trustedProxies = ["127.0.0.1"]
                $0.clientAddress = .chain
                $0.connectionLimits.perIPConnections = 1
            }
        ) { port, upstream in
            let first = try await RawClient.connect(from: "127.0.0.1", port: port, Self.request(extra: "X-Forwarded-For: 198.51.100.4\r\n"))
            defer { first.channel.close(promise: nil) }
            #expect(first.answer.hasPrefix("HTTP/1.1 101"), "\(first.answer)")
            let second = try await RawClient.exchange(from: "127.0.0.1", port: port, Self.request(extra: "X-Forwarded-For: 198.51.100.4\r\n"))
            #expect(second.hasPrefix("HTTP/1.1 503"), "\(second)")
            let other = try await RawClient.connect(from: "127.0.0.1", port: port, Self.request(extra: "X-Forwarded-For: 198.51.100.5\r\n"))
            defer { other.channel.close(promise: nil) }
            #expect(other.answer.hasPrefix("HTTP/1.1 101"), "\(other.answer)")
            #expect(upstream.requests.count == 2)
        }
    }

    /// Catalog H-10: a forged Host over a socket is 400.
    @Test func theIssuesForgedHostIs400() async throws {
        try await withGatewayAndRecordingUpstream { port, upstream in
            let answer = try await RawClient.exchange(from: "127.0.0.1", port: port, Self.request(host: #"[a",for=6.6.6.6;proto=https;host="b]"#))
            #expect(answer.hasPrefix("HTTP/1.1 400"), "\(answer)")
            #expect(upstream.requests.isEmpty)
        }
    }

    /// Catalog T-04: with `require_sni_host_match`, a Host other than the SNI name (or no SNI) is 421 Misdirected Request with Connection: close, and nothing reaches an upstream.
    @Test func aHostThatIsNotTheSNINameIs421WhenTheListenerRequiresTheMatch() async throws {
        guard try await PythonPeer.require("ssl") else { return }
        let certificate = try GatewayTLSTests.certificate(names: ["localhost", "other.example"])
        try await withGatewayAndRecordingUpstream(
            configure: {
                $0.listeners[0].tls = TLSServerConfiguration(defaultIdentity: certificate.identity)
                $0.listeners[0].requireSNIHostMatch = true
            }
        ) { port, upstream in
            let run = try await PythonTLSClient.run(
                [
                    PythonTLSAttempt(label: "A", sni: "localhost", host: "localhost:443", path: "/"),
                    PythonTLSAttempt(label: "B", sni: "LOCALHOST", host: "localhost", path: "/"),
                    PythonTLSAttempt(label: "C", sni: "localhost", host: "other.example", path: "/"),
                    PythonTLSAttempt(label: "D", sni: nil, host: "localhost", path: "/"),
                ],
                port: port
            )
            #expect(run.status == 0, "\(run.output)")
            for label in ["A", "B"] {
                #expect(run.answers[label]?.hasPrefix("HTTP/1.1 101") == true, "\(label): \(run.output)")
            }
            for label in ["C", "D"] {
                #expect(run.answers[label]?.hasPrefix("HTTP/1.1 421") == true, "\(label): \(run.output)")
                #expect(run.answers[label]?.hasSuffix(" close") == true, "\(label): \(run.output)")
            }
            #expect(upstream.requests.count == 2, "a misdirected request reached the upstream")
        }
    }
}
