import Foundation
import MetricsTestKit
import NIOPosix
import TLSShim
import Testing

@testable import Gateway

/// TLS on both legs through TLSShim: termination, verification toward `wss://` upstreams, and close
/// code 1015 recorded (never sent) for connections lost to a failed TLS handshake.
@Suite(.serialized, .timeLimit(.minutes(2))) struct GatewayTLSTests {
    static let ca = try! TLSCertificateGenerator.selfSigned(TLSCertificateRequest(commonName: "wsgate test CA") { $0.isCertificateAuthority = true })

    static func certificate(names: [String] = ["localhost"], ips: [String] = ["127.0.0.1"], expired: Bool = false) throws -> TLSGeneratedCertificate {
        try TLSCertificateGenerator.make(
            TLSCertificateRequest(commonName: names.first ?? "test") {
                $0.dnsNames = names
                $0.ipAddresses = ips
                if expired {
                    $0.notBefore = -7200
                    $0.notAfter = -3600
                }
            },
            issuedBy: Self.ca
        )
    }

    /// A temporary file with `contents`, removed after `body`.
    static func withFile<T>(_ contents: String, _ body: (String) async throws -> T) async throws -> T {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-\(UUID().uuidString)").path
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try await body(path)
    }

    static func accessLogLines(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// The access log's lines once `condition` holds for them (a line is written when its connection
    /// ends, after the client saw its answer), or after 10 s.
    static func accessLogLines(_ path: String, once condition: ([String]) -> Bool) async -> [String] {
        await waitFor { condition(Self.accessLogLines(path)) }
        return Self.accessLogLines(path)
    }

    static func tlsUpstream(_ certificate: TLSGeneratedCertificate) async throws -> FakeUpstream {
        let context = try TLSServerContext(configuration: TLSServerConfiguration(defaultIdentity: certificate.identity))
        return try await FakeUpstream.start(tls: context) { .accept($0) }
    }

    private func gatewayToTLSUpstream(
        _ upstream: FakeUpstream,
        serverName: String? = nil,
        trustTestCA: Bool,
        logPath: String
    ) async throws -> (status: Int, headers: [(String, String)], body: String) {
        try await Self.withFile(Self.ca.certificatePEM) { caPath in
            var result: (Int, [(String, String)], String) = (0, [], "")
            try await withGateway(
                upstreamPort: upstream.port,
                configure: {
                    $0.routes[0].upstreams = [GatewayConfiguration.Upstream(scheme: .wss, host: "127.0.0.1", port: upstream.port)]
                    var tls = GatewayConfiguration.UpstreamTLS(serverName: serverName)
                    if trustTestCA { tls.configuration.trustRoots = .certificates(.file(caPath)) }
                    $0.routes[0].upstreamTLS = tls
                    $0.accessLog = .file(logPath)
                }
            ) { port in
                result = try await TestWebSocketClient.rawHandshake(
                    port: port,
                    request:
                        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                )
            }
            return result
        }
    }

    /// Catalog T-11: (d) an upstream certificate valid for the route's name gives 101.
    @Test func aTrustedWssUpstreamIsRelayed() async throws {
        let upstream = try await Self.tlsUpstream(try Self.certificate())
        defer { Task { await upstream.close() } }
        try await Self.withFile("") { log in
            let answer = try await gatewayToTLSUpstream(upstream, serverName: "localhost", trustTestCA: true, logPath: log)
            #expect(answer.status == 101)
        }
    }

    // MARK: Upstream TLS is per route

    /// Catalog T-11: upstream certificate verification is on by default (full verification against the system bundle).
    /// Catalog T-13: the upstream SNI is the route's `server_name` or the member's configured host, never taken from the request.
    @Test func everyWssMemberOfARouteGetsTheRoutesTLSAndItsOwnHostAsServerName() throws {
        var route = GatewayConfiguration.Route(upstreams: [
            .init(scheme: .wss, host: "a.internal", port: 443),
            .init(scheme: .ws, host: "plain.internal", port: 80),
            .init(scheme: .wss, host: "b.internal", port: 8443),
        ])
        let wss = route.upstreams.filter { $0.scheme == .wss }
        // No `upstream_tls`: the defaults, full verification against the system bundle.
        #expect(GatewayTLS.upstreamConfiguration(of: route) == TLSClientConfiguration())
        var tls = GatewayConfiguration.UpstreamTLS()
        tls.configuration.trustRoots = .certificates(.pem(Self.ca.certificatePEM))
        route.upstreamTLS = tls
        #expect(GatewayTLS.upstreamConfiguration(of: route) == tls.configuration)
        #expect(wss.map { GatewayTLS.serverName(for: $0, of: route) } == ["a.internal", "b.internal"])
        route.upstreamTLS?.serverName = "shared.internal"
        #expect(wss.map { GatewayTLS.serverName(for: $0, of: route) } == ["shared.internal", "shared.internal"])
        // One client context for the route; none for a route without `wss://` members.
        let configuration = GatewayConfiguration(
            listeners: [.init(host: "127.0.0.1", port: 8080)],
            routes: [route, .init(pathPrefix: "/plain", upstreams: [.init(scheme: .ws, host: "a", port: 80)])]
        )
        let compiled = try GatewayTLS(configuration)
        #expect(Set(compiled.routes.keys) == [0])
    }

    @Test func twoWssMembersAreEachVerifiedAgainstTheirOwnHostWithTheRoutesTrust() async throws {
        let byName = try await Self.tlsUpstream(try Self.certificate(names: ["localhost"], ips: []))
        defer { Task { await byName.close() } }
        let byAddress = try await Self.tlsUpstream(try Self.certificate(names: ["address.test"], ips: ["127.0.0.1"]))
        defer { Task { await byAddress.close() } }
        let request =
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        for serverName in [nil, "localhost"] as [String?] {
            try await Self.withFile(Self.ca.certificatePEM) { caPath in
                var statuses: [Int] = []
                try await withGateway(
                    upstreamPort: byName.port,
                    configure: {
                        $0.routes[0].upstreams = [
                            .init(scheme: .wss, host: "localhost", port: byName.port),
                            .init(scheme: .wss, host: "127.0.0.1", port: byAddress.port),
                        ]
                        var tls = GatewayConfiguration.UpstreamTLS(serverName: serverName)
                        tls.configuration.trustRoots = .certificates(.file(caPath))
                        $0.routes[0].upstreamTLS = tls
                    }
                ) { port in
                    for _ in 0..<2 {
                        statuses.append(try await TestWebSocketClient.rawHandshake(port: port, request: request).status)
                    }
                }
                // Round robin: the `localhost` member first, then the 127.0.0.1 member, whose certificate
                // has only the address: it verifies against its own host, not against `server_name`.
                #expect(statuses == (serverName == nil ? [101, 101] : [101, 502]), "server_name \(serverName ?? "unset")")
            }
        }
    }

    /// Catalog T-12: an upstream TLS handshake that fails (as opposed to one that never completes) is 502 with the reason, recorded as 1015.
    /// Catalog T-11: (a)–(c) a self-signed, wrong-name or expired upstream certificate gives the client 502 before any 101, with a distinct reason, the upstream never receives the GET, and 1015 is recorded (not sent).
    @Test(arguments: ["untrusted", "wrong-name", "expired"])
    func anUpstreamCertificateFailureIs502WithTheReasonAndRecords1015(flaw: String) async throws {
        let certificate = try Self.certificate(names: ["localhost"], ips: [], expired: flaw == "expired")
        let upstream = try await Self.tlsUpstream(certificate)
        defer { Task { await upstream.close() } }
        try await Self.withFile("") { log in
            let answer = try await gatewayToTLSUpstream(
                upstream,
                serverName: flaw == "wrong-name" ? "other.example" : "localhost",
                trustTestCA: flaw != "untrusted",
                logPath: log
            )
            #expect(answer.status == 502)
            // The TLS handshake failed, so the upstream never got the GET.
            #expect(upstream.requests.isEmpty)
            #expect(answer.headers.contains { $0.0 == "X-Wsgate-Error" && $0.1 == "upstream-tls-handshake-failed" })
            let expected = ["untrusted": "not trusted", "wrong-name": "name", "expired": "expired"][flaw]!
            #expect(answer.body.lowercased().contains(expected), "\(answer.body)")
            let lines = await Self.accessLogLines(log) { !$0.isEmpty }
            #expect(lines.count == 1)
            #expect(lines.first?.contains("\"close_code\":1015") == true, "\(lines)")
            #expect(lines.first?.contains("\"status\":502") == true, "\(lines)")
        }
    }

    /// Catalog T-12: a wss upstream that accepts TCP and never answers the ClientHello gives 504 (X-Wsgate-Error: upstream-tls-handshake-timeout) within the upstream deadline, not 502; the client is closed, the upstream socket too (no leak), recorded as a TLS failure of class handshake_timeout (1015).
    /// Catalog U-09: the TLS part of the upstream handshake counts against the upstream handshake deadline (504, both legs closed).
    @Test func aWssUpstreamThatNeverAnswersTheClientHelloIs504() async throws {
        let metrics = TestMetrics()
        // A plain TCP stub: it waits for an HTTP head that a ClientHello never completes, so it never answers.
        let silent = try await FakeUpstream.start { _ in FakeUpstream.Reply(response: []) }
        defer { Task { await silent.close() } }
        try await Self.withFile(Self.ca.certificatePEM) { caPath in
            try await Self.withFile("") { log in
                try await withGateway(
                    upstreamPort: silent.port,
                    metrics: metrics,
                    configure: {
                        $0.routes[0].upstreams = [GatewayConfiguration.Upstream(scheme: .wss, host: "127.0.0.1", port: silent.port)]
                        var tls = GatewayConfiguration.UpstreamTLS(serverName: "localhost")
                        tls.configuration.trustRoots = .certificates(.file(caPath))
                        $0.routes[0].upstreamTLS = tls
                        $0.timeouts.upstreamConnect = .milliseconds(200)
                        $0.timeouts.upstreamHandshake = .milliseconds(300)
                        $0.accessLog = .file(log)
                    }
                ) { port in
                    let start = ContinuousClock.now
                    let answer = try await TestWebSocketClient.rawHandshake(
                        port: port,
                        request:
                            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                        timeout: .seconds(20)
                    )
                    let elapsed = ContinuousClock.now - start
                    #expect(answer.status == 504)
                    #expect(answer.headers.contains { $0.0 == "X-Wsgate-Error" && $0.1 == "upstream-tls-handshake-timeout" })
                    #expect(answer.headers.contains { $0.0 == "Connection" && $0.1 == "close" })
                    #expect(elapsed >= .milliseconds(300) && elapsed < .seconds(15), "\(elapsed)")
                }
                try await silent.waitUntilAllEnded()
                #expect(silent.accepted == 1)
                await metrics.eventually { Self.accessLogLines(log).count == 1 }
                #expect(Self.accessLogLines(log).first?.contains("\"close_code\":1015") == true)
            }
        }
        #expect(metrics.total("wsgate_tls_handshake_failures_total", [("leg", "upstream"), ("class", "handshake_timeout")]) == 1)
        #expect(metrics.total("wsgate_upgrades_refused_total", [("reason", "upstream-tls-handshake-timeout"), ("status", "504")]) == 1)
    }

    @Test func aWssListenerTerminatesTLSAndRecordsAFailedClientHandshakeAs1015() async throws {
        guard try await PythonPeer.require("websockets") else { return }
        let certificate = try Self.certificate()
        try await Self.withFile(Self.ca.certificatePEM) { caPath in
            try await Self.withFile("") { log in
                try await withGatewayAndDemo(configure: {
                    $0.listeners[0].tls = TLSServerConfiguration(defaultIdentity: certificate.identity)
                    $0.accessLog = .file(log)
                }) { port in
                    let script = """
                        import asyncio, ssl, sys, socket
                        from websockets.asyncio.client import connect
                        async def main():
                            ctx = ssl.create_default_context(cafile=sys.argv[2])
                            async with connect(f"wss://localhost:{sys.argv[1]}/echo", ssl=ctx) as ws:
                                await ws.send("over tls ✓")
                                assert await ws.recv() == "over tls ✓"
                            # A client that trusts nothing: its handshake fails.
                            bad = ssl.create_default_context()
                            try:
                                async with connect(f"wss://localhost:{sys.argv[1]}/echo", ssl=bad) as ws:
                                    pass
                                print("unexpectedly connected")
                            except ssl.SSLError:
                                print("OK")
                        asyncio.run(main())
                        """
                    let run = try await runPython(["-c", script, "\(port)", caPath], timeout: .seconds(30))
                    #expect(run.status == 0, "\(run.output)")
                    #expect(run.output.contains("OK"), "\(run.output)")
                    let lines = await Self.accessLogLines(log) { $0.count >= 2 }
                    #expect(lines.contains { $0.contains("\"tls_version\":\"TLSv1.3\"") && $0.contains("\"status\":101") }, "\(lines)")
                    #expect(lines.contains { $0.contains("\"close_code\":1015") && $0.contains("tls-handshake-failed") }, "\(lines)")
                }
            }
        }
    }

    /// Issue #11 §3: plain HTTP on a TLS listener is told so in clear text (nginx's behaviour) and
    /// is still recorded as a failed TLS handshake (1015) of its own class.
    /// Catalog T-08: plain HTTP on the TLS listener gets a clear-text 400 and the connection closes; counted as its own failure class.
    @Test func plainHTTPOnATLSListenerGetsAClearText400AndIsRecordedAs1015() async throws {
        let certificate = try Self.certificate()
        let metrics = TestMetrics()
        try await Self.withFile("") { log in
            try await withGatewayAndDemo(
                metrics: metrics,
                configure: {
                    $0.listeners[0].tls = TLSServerConfiguration(defaultIdentity: certificate.identity)
                    $0.accessLog = .file(log)
                }
            ) { port in
                let answer = try await TestWebSocketClient.rawHandshake(
                    port: port,
                    request: "GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                )
                #expect(answer.status == 400)
                #expect(answer.body.contains("TLS") && answer.body.contains("wss://"), "\(answer.body)")
                // The failure is counted when the handshake fails, the close code when the connection ends
                // (after the 400 is written): wait for both rather than assume an order.
                await metrics.eventually {
                    metrics.total("wsgate_tls_handshake_failures_total", [("leg", "client"), ("class", "plaintext_http")]) == 1
                        && metrics.total("wsgate_close_codes_total", [("side", "client"), ("code", "1015"), ("by", "gateway")]) == 1
                }
                #expect(metrics.total("wsgate_tls_handshake_failures_total", [("leg", "client"), ("class", "plaintext_http")]) == 1)
                #expect(metrics.total("wsgate_close_codes_total", [("side", "client"), ("code", "1015"), ("by", "gateway")]) == 1)
                let lines = await Self.accessLogLines(log) { !$0.isEmpty }
                #expect(lines.contains { $0.contains("\"close_code\":1015") && $0.contains("plaintext HTTP") }, "\(lines)")
            }
        }
    }
}
