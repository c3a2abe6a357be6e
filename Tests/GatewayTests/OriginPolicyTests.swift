import MetricsTestKit
import NIOCore
import TLSShim
import Testing

@testable import Gateway

/// Origin policy (DESIGN §1.5, RELIABILITY O-02–O-04): strict parsing and normalisation, mixed content,
/// exact and wildcard allow-lists, `null` and missing origins; over real sockets, refusals are 403,
/// counted, and nothing after a refused request is read.
@Suite(.timeLimit(.minutes(2))) struct OriginPolicyTests {
    private static func policy(_ configure: (inout GatewayConfiguration.OriginPolicy) -> Void = { _ in }) throws -> CompiledOriginPolicy {
        var settings = GatewayConfiguration.OriginPolicy()
        configure(&settings)
        return try CompiledOriginPolicy(settings)
    }

    @Test(arguments: [
        ("https://app.example", "https://app.example"),
        ("HTTPS://APP.EXAMPLE", "https://app.example"),
        ("https://app.example:443", "https://app.example"),
        ("http://app.example:80", "http://app.example"),
        ("https://app.example:8443", "https://app.example:8443"),
        ("http://127.0.0.1:3000", "http://127.0.0.1:3000"),
        ("https://[::1]:8443", "https://[::1]:8443"),
        ("https://xn--pp-ula.example", "https://xn--pp-ula.example"),
        ("https://app.example.", "https://app.example."),
    ])
    func originsAreNormalised(text: String, normalised: String) throws {
        #expect(try #require(Origin(text)).description == normalised)
    }

    @Test(arguments: [
        "null", "", "app.example", "https://", "https://app.example/", "https://app.example/path",
        "https://app.example@evil.net", "https://user@app.example", "https://app.example:0", "https://app.example:65536",
        "https://app.example:", "https://app example", "https://äpp.example", "https://app.example?x", "https://app.example#f",
        "https://[::1", "https://[zz::1]", "https://app..example", "https://-app.example", "https://app.example:443:1",
        "https://a%2eexample", "1https://app.example",
    ])
    func malformedOriginsAreRejected(text: String) {
        #expect(Origin(text) == nil, "\(text)")
    }

    /// RELIABILITY O-02 with the allow-list `https://app.example`.
    /// Catalog O-02: with the allow-list https://app.example only it, APP.EXAMPLE and :443 pass; suffix, substring, port, scheme, dot, userinfo, IP and punycode look-alikes are refused.
    @Test(arguments: [
        ("https://app.example", true), ("https://APP.EXAMPLE", true), ("https://app.example:443", true),
        ("https://app.example.evil.net", false), ("https://evilapp.example", false), ("https://app.example:8443", false),
        ("http://app.example", false), ("https://app.example.", false), ("https://app.example@evil.net", false),
        ("https://127.0.0.1", false), ("https://xn--pp-ula.example", false),
    ])
    func theAllowListIsExact(origin: String, allowed: Bool) throws {
        let policy = try Self.policy { $0.allow = ["https://app.example"] }
        let decision = policy.check(origin, listenerUsesTLS: true)
        if allowed {
            #expect(decision == .allowed(reason: .listed), "\(origin)")
        } else {
            guard case .refused = decision else {
                Issue.record("\(origin) was allowed")
                return
            }
        }
    }

    @Test func wildcardsMatchSubdomainsOnlyWithTheirSchemeAndPort() throws {
        let policy = try Self.policy { $0.allow = ["https://*.example.com", "https://*.dev.example:8443"] }
        #expect(policy.check("https://a.example.com", listenerUsesTLS: true) == .allowed(reason: .wildcard))
        #expect(policy.check("https://A.B.Example.com:443", listenerUsesTLS: true) == .allowed(reason: .wildcard))
        #expect(policy.check("https://x.dev.example:8443", listenerUsesTLS: true) == .allowed(reason: .wildcard))
        for refused in [
            "https://example.com", "https://a.example.com:8443", "https://evilexample.com", "https://a.example.com.evil.net",
            "https://x.dev.example", "https://[::1]",
        ] {
            #expect(
                policy.check(refused, listenerUsesTLS: true) == .refused(reason: .notAllowed, message: "origin \(Origin(refused)!) is not allowed"),
                "\(refused)"
            )
        }
        // A wildcard does not lift the mixed-content rule.
        #expect(policy.check("http://a.example.com", listenerUsesTLS: true).reason == "mixed-content")
    }

    /// Catalog O-04: an http: Origin on a TLS listener is refused as mixed content; the plaintext listener's rule is documented and configurable.
    @Test func mixedContentIsRefusedOnBothKindsOfListener() throws {
        let policy = try Self.policy()
        #expect(policy.check("http://app.example", listenerUsesTLS: true).reason == "mixed-content")
        #expect(policy.check("https://app.example", listenerUsesTLS: false).reason == "mixed-content")
        #expect(policy.check("https://app.example", listenerUsesTLS: true) == .allowed(reason: .any))
        #expect(policy.check("http://app.example", listenerUsesTLS: false) == .allowed(reason: .any))
        let behindALoadBalancer = try Self.policy { $0.mixedContent = .allow }
        #expect(behindALoadBalancer.check("https://app.example", listenerUsesTLS: false) == .allowed(reason: .any))
    }

    /// Catalog O-03: null is refused unless allowed; a missing Origin follows its documented setting (allow by default, refuse when required).
    @Test func nullAndMissingOriginsHaveTheirOwnSettings() throws {
        let defaults = try Self.policy { $0.allow = ["https://app.example"] }
        #expect(defaults.check("null", listenerUsesTLS: true).reason == "null")
        #expect(defaults.check(nil, listenerUsesTLS: true) == .allowed(reason: .missingAllowed))
        #expect(defaults.check("file://", listenerUsesTLS: true).reason == "malformed")
        let strict = try Self.policy {
            $0.null = .allow
            $0.missing = .refuse
        }
        #expect(strict.check("null", listenerUsesTLS: true) == .allowed(reason: .nullAllowed))
        #expect(strict.check(nil, listenerUsesTLS: true).reason == "missing")
    }

    @Test func aMalformedAllowEntryIsAConfigurationErrorWithItsKeyPath() throws {
        var configuration = GatewayConfiguration(
            listeners: [.init(host: "127.0.0.1", port: 8080)],
            routes: [.init(upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 9000)])]
        )
        configuration.routes[0].origins.allow = ["https://ok.example", "https://bad.example/path"]
        #expect(
            throws: ConfigurationError(
                .invalidValue,
                keyPath: "routes[0].origins.allow[1]",
                message: #""https://bad.example/path" is not an origin (scheme://host[:port]) or a scheme://*.suffix pattern"#
            )
        ) { try configuration.validate() }
    }

    // MARK: Over real sockets

    private static func request(origin: String?) -> String {
        "GET /room HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            + (origin.map { "Origin: \($0)\r\n" } ?? "") + "\r\n"
    }

    /// Catalog O-02: a refused Origin is 403 with Connection: close, counted, and never reaches the upstream.
    /// Catalog O-04: a mixed-content Origin is 403 naming mixed content, counted by reason.
    @Test func aPlaintextListenerRefusesAnHTTPSOriginWith403AndCountsEveryDecision() async throws {
        let metrics = TestMetrics()
        let upstream = try await FakeUpstream.start { .accept($0) }
        defer { Task { await upstream.close() } }
        try await withGateway(
            upstreamPort: upstream.port,
            metrics: metrics,
            configure: {
                $0.routes[0].origins.allow = ["http://app.example", "https://app.example"]
            }
        ) { port in
            let refused = try await TestWebSocketClient.rawHandshake(port: port, request: Self.request(origin: "https://app.example"))
            #expect(refused.status == 403)
            #expect(refused.body.contains("mixed content"))
            #expect(refused.headers.contains { $0.0.lowercased() == "connection" && $0.1 == "close" })
            let notListed = try await TestWebSocketClient.rawHandshake(port: port, request: Self.request(origin: "http://evil.example"))
            #expect(notListed.status == 403)
            let allowed = try await TestWebSocketClient.rawHandshake(port: port, request: Self.request(origin: "http://APP.example:80"))
            #expect(allowed.status == 101)
        }
        let route = [("route", "/"), ("side", "client")]
        #expect(
            metrics.counterTotal(label: "wsgate_origin_decisions_total", dimensions: route + [("decision", "refuse"), ("reason", "mixed-content")])
                == 1
        )
        #expect(
            metrics.counterTotal(label: "wsgate_origin_decisions_total", dimensions: route + [("decision", "refuse"), ("reason", "not-allowed")]) == 1
        )
        #expect(metrics.counterTotal(label: "wsgate_origin_decisions_total", dimensions: route + [("decision", "allow"), ("reason", "listed")]) == 1)
        #expect(metrics.counterTotal(label: "wsgate_upgrades_refused_total") == 2)
        #expect(metrics.total("wsgate_upgrades_refused_total", [("reason", "origin-mixed-content"), ("status", "403")]) == 1)
        #expect(metrics.total("wsgate_upgrades_refused_total", [("reason", "origin-not-allowed"), ("status", "403")]) == 1)
        #expect(upstream.requests.count == 1, "a refused request reached the upstream")
    }

    /// RELIABILITY O-03 over sockets: two `Origin` headers are 400 whichever comes first; the legacy
    /// `Sec-WebSocket-Origin` is ignored, so such a request falls under the missing-origin setting.
    /// Catalog O-03: two Origin headers are 400 either order; Sec-WebSocket-Origin is ignored (the missing-Origin policy: 403 when required).
    @Test func repeatedAndLegacyOriginHeaders() async throws {
        let metrics = TestMetrics()
        try await withGatewayAndDemo(
            metrics: metrics,
            configure: {
                $0.routes[0].origins.allow = ["http://app.example"]
                $0.routes[0].origins.missing = .refuse
            }
        ) { port in
            let twice = Self.request(origin: "http://app.example").replacingOccurrences(
                of: "\r\n\r\n",
                with: "\r\nOrigin: http://evil.example\r\n\r\n"
            )
            #expect(try await TestWebSocketClient.rawHandshake(port: port, request: twice).status == 400)
            let reversed = Self.request(origin: "http://evil.example").replacingOccurrences(
                of: "\r\n\r\n",
                with: "\r\nOrigin: http://app.example\r\n\r\n"
            )
            #expect(try await TestWebSocketClient.rawHandshake(port: port, request: reversed).status == 400)
            let legacy = Self.request(origin: nil).replacingOccurrences(of: "\r\n\r\n", with: "\r\nSec-WebSocket-Origin: http://app.example\r\n\r\n")
            let answer = try await TestWebSocketClient.rawHandshake(port: port, request: legacy)
            #expect(answer.status == 403)
            #expect(answer.body.contains("an Origin header is required"))
        }
        #expect(
            metrics.counterTotal(
                label: "wsgate_origin_decisions_total",
                dimensions: [("route", "/"), ("side", "client"), ("decision", "refuse"), ("reason", "missing")]
            ) == 1
        )
    }

    /// Catalog O-04: on a TLS listener an `http:` Origin of an allowed host is 403 with a reason naming mixed content, counted as mixed-content, and never reaches the upstream; the `https:` Origin is upgraded.
    @Test func aTLSListenerRefusesAnHTTPOriginAsMixedContent() async throws {
        let metrics = TestMetrics()
        let upstream = try await FakeUpstream.start { .accept($0) }
        defer { Task { await upstream.close() } }
        let certificate = try GatewayTLSTests.certificate()
        try await withGateway(
            upstreamPort: upstream.port,
            metrics: metrics,
            configure: {
                $0.listeners[0].tls = TLSServerConfiguration(defaultIdentity: certificate.identity)
                $0.routes[0].origins.allow = ["http://app.example", "https://app.example"]
            }
        ) { port in
            let script = """
                import socket, ssl, sys
                def ask(origin):
                    ctx = ssl.create_default_context()
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)) as s:
                        s.sendall(sys.argv[2].replace("ORIGIN", origin).encode())
                        data = b""
                        while b"\\r\\n\\r\\n" not in data:
                            chunk = s.recv(65536)
                            if not chunk: break
                            data += chunk
                        try:
                            data += s.recv(65536) if b" 101 " not in data.split(b"\\r\\n")[0] else b""
                        except Exception:
                            pass
                        return data.decode(errors="replace")
                mixed = ask("http://app.example")
                print(mixed.split("\\r\\n")[0], "|", "mixed content" in mixed)
                print(ask("https://app.example").split("\\r\\n")[0])
                """
            let run = try await runPython(["-c", script, String(port), Self.request(origin: "ORIGIN")], timeout: .seconds(30))
            let lines = run.output.split(separator: "\n").map(String.init)
            #expect(lines.first == "HTTP/1.1 403 Forbidden | True", "\(run.output)")
            #expect(lines.dropFirst().first?.hasPrefix("HTTP/1.1 101") == true, "\(run.output)")
        }
        #expect(
            metrics.counterTotal(
                label: "wsgate_origin_decisions_total",
                dimensions: [("route", "/"), ("side", "client"), ("decision", "refuse"), ("reason", "mixed-content")]
            ) == 1
        )
        #expect(upstream.requests.count == 1, "only the https: Origin reached the upstream")
    }

    /// Catalog O-07: every spelling of the upgrade headers that wsgate treats as an upgrade meets the same origin policy (403 for a refused Origin, 101 for an allowed one); spellings it does not treat as one are refused as plain HTTP and never reach the upstream.
    @Test func everyUpgradeSpellingMeetsTheSameOriginPolicy() async throws {
        let upstream = try await FakeUpstream.start { .accept($0) }
        defer { Task { await upstream.close() } }
        func request(upgrade: String, connection: String, origin: String) -> String {
            "GET /room HTTP/1.1\r\nHost: 127.0.0.1\r\n\(upgrade)\r\n\(connection)\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: \(origin)\r\n\r\n"
        }
        let upgrades = [
            ("Upgrade: WebSocket", "Connection: Upgrade"), ("UPGRADE: websocket", "Connection: Upgrade"),
            ("Upgrade: websocket", "Connection: keep-alive, Upgrade"), ("Upgrade: websocket", "Connection: upgrade"),
            ("Upgrade:  websocket ", "Connection: Upgrade"), ("Upgrade: websocket", "Connection: close, Upgrade"),
        ]
        let notUpgrades = [
            ("Upgrade: websocket", "Connection: keep-alive"), ("Upgrade: h2c", "Connection: Upgrade"),
            ("X-Upgrade: websocket", "Connection: Upgrade"),
        ]
        try await withGateway(upstreamPort: upstream.port, configure: { $0.routes[0].origins.allow = ["http://app.example"] }) { port in
            for (upgrade, connection) in upgrades {
                let refused = try await TestWebSocketClient.rawHandshake(
                    port: port,
                    request: request(upgrade: upgrade, connection: connection, origin: "http://evil.example")
                )
                #expect(refused.status == 403, "\(upgrade) / \(connection)")
                let allowed = try await TestWebSocketClient.rawHandshake(
                    port: port,
                    request: request(upgrade: upgrade, connection: connection, origin: "http://app.example")
                )
                #expect(allowed.status == 101, "\(upgrade) / \(connection)")
            }
            for (upgrade, connection) in notUpgrades {
                for origin in ["http://evil.example", "http://app.example"] {
                    let answer = try await TestWebSocketClient.rawHandshake(
                        port: port,
                        request: request(upgrade: upgrade, connection: connection, origin: origin)
                    )
                    #expect(answer.status >= 400 && answer.status != 101, "\(upgrade) / \(connection): \(answer.status)")
                }
            }
        }
        #expect(upstream.requests.count == upgrades.count, "only the allowed upgrades reached the upstream")
    }

    @Test func nothingAfterARefusedRequestIsRead() async throws {
        let upstream = try await FakeUpstream.start { .accept($0) }
        defer { Task { await upstream.close() } }
        try await withGateway(upstreamPort: upstream.port, configure: { $0.routes[0].origins.allow = ["http://app.example"] }) { port in
            // A refused request with a second, acceptable request pipelined behind it in the same write:
            // one 403, then the connection closes; the second request is never read, so never upgraded.
            let answer = try await TestWebSocketClient.rawHandshake(
                port: port,
                request: Self.request(origin: "http://evil.example") + Self.request(origin: "http://app.example")
            )
            #expect(answer.status == 403)
            #expect(!answer.body.contains("HTTP/1.1"), "a second answer followed the refusal")

            // From an independent peer: everything until the gateway closes is exactly one answer, and
            // the close comes at once although the client keeps its side open (no keep-alive).
            let script = """
                import socket, sys
                s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
                s.sendall(sys.argv[2].encode() + sys.argv[3].encode())
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk: break
                    data += chunk
                print(data.count(b"HTTP/1.1 "), data.split(b"\\r\\n")[0].decode())
                """
            let result = try await runPython(
                ["-c", script, String(port), Self.request(origin: "http://evil.example"), Self.request(origin: "http://app.example")],
                timeout: .seconds(20)
            )
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.hasPrefix("1 HTTP/1.1 403"), "\(result.output)")
        }
        #expect(upstream.requests.isEmpty)
    }
}

extension CompiledOriginPolicy.Decision {
    fileprivate var reason: String {
        switch self {
        case .allowed(let reason), .refused(let reason, _): reason.rawValue
        }
    }
}
