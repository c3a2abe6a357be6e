import Foundation
import MetricsTestKit
import NIOCore
import Testing

@testable import Gateway

/// `routes[].auth.jwt` end to end: a real gateway on loopback, tokens signed by PyJWT, a scripted
/// upstream that records what reaches it (issue #13 §2).
@Suite(.serialized, .timeLimit(.minutes(3))) struct GatewayJWTTests {
    static func request(_ target: String = "/chat", _ headers: [(String, String)] = []) -> String {
        var request = "GET \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        return request + "\r\n"
    }

    static func jwt(
        _ tokens: PyJWTTokens,
        _ configure: (inout GatewayConfiguration.JWTAuthentication) -> Void = { _ in }
    )
        -> GatewayConfiguration.JWTAuthentication
    {
        var jwt = GatewayConfiguration.JWTAuthentication(jwks: tokens.jwksPath)
        jwt.issuers = [PyJWTTokens.issuer]
        jwt.audiences = [PyJWTTokens.audience]
        jwt.algorithms = ["RS256", "ES256", "EdDSA", "HS256"]
        jwt.tokenSources = [.header, .query("access_token"), .cookie("session"), .subprotocol]
        jwt.claimsToHeaders = [.init(claim: "sub", header: "X-User"), .init(claim: "groups", header: "X-Groups")]
        jwt.requiredClaims = [.init(claim: "role", values: ["admin"])]
        jwt.realm = "chat"
        configure(&jwt)
        return jwt
    }

    /// An upstream that accepts, choosing the first subprotocol it is offered.
    static func upstream() async throws -> FakeUpstream {
        try await FakeUpstream.start { request in
            let first = request.header("Sec-WebSocket-Protocol")?.split(separator: ",").first.map { $0.trimmingCharacters(in: .whitespaces) }
            return .accept(request, extraHeaders: first.map { "Sec-WebSocket-Protocol: \($0)\r\n" } ?? "")
        }
    }

    @Test func eachTokenSourceAuthorizesAndTheTokenNeverReachesTheUpstream() async throws {
        guard let (tokens, directory) = try await JWTVerifierTests.fixture() else { return }
        defer { try? FileManager.default.removeItem(at: directory) }
        let upstream = try await Self.upstream()
        defer { Task { await upstream.close() } }
        let metrics = TestMetrics()
        let token = tokens["claims_header"]
        let entry =
            BearerTokenSources.subprotocolPrefix
            + Data(token.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        let cases: [(String, [(String, String)], String)] = [
            ("/chat?room=1", [("Authorization", "Bearer \(token)")], "header"),
            ("/chat?room=1&access_token=\(token)&x=2", [], "query"),
            ("/chat?room=1", [("Cookie", "theme=dark; session=\(token); lang=en")], "cookie"),
            ("/chat?room=1", [("Sec-WebSocket-Protocol", "chat.v1, \(entry)")], "subprotocol"),
        ]
        try await withGateway(upstreamPort: upstream.port, metrics: metrics, configure: { $0.routes[0].auth = .init(jwt: Self.jwt(tokens)) }) {
            port in
            for (target, headers, source) in cases {
                // A client-sent copy of a claim header never passes.
                let answer = try await TestWebSocketClient.rawHandshake(port: port, request: Self.request(target, headers + [("X-User", "mallory")]))
                #expect(answer.status == 101, "\(source): \(answer.body)")
                if source == "subprotocol" {
                    // The real subprotocol was agreed; the token entry was never offered upstream.
                    #expect(answer.headers.contains { $0.0 == "Sec-WebSocket-Protocol" && $0.1 == "chat.v1" })
                }
            }
        }
        let requests = upstream.requests
        try #require(requests.count == cases.count)
        for (request, (_, _, source)) in zip(requests, cases) {
            #expect(!request.head.contains(token), "\(source): the token reached the upstream")
            #expect(!request.head.contains(BearerTokenSources.subprotocolPrefix), "\(source)")
            #expect(request.header("Authorization") == nil, "\(source)")
            #expect(request.header("X-User") == "alice", "\(source)")
            #expect(request.header("X-Groups") == "ops, dev", "\(source)")
            let target = request.head.split(separator: " ")[1]
            #expect(target.hasPrefix("/chat?room=1"), "\(source): \(target)")
            #expect(!target.contains("access_token"), "\(source): \(target)")
        }
        #expect(requests[1].head.split(separator: " ")[1] == "/chat?room=1&x=2")
        #expect(requests[2].header("Cookie") == "theme=dark; lang=en")
        #expect(requests[3].header("Sec-WebSocket-Protocol") == "chat.v1")
        #expect(metrics.total("wsgate_auth_decisions_total", [("method", "jwt"), ("outcome", "allow")]) == 4)
    }

    @Test func refusalsAnswerWithTheirChallengeAndNeverReachTheUpstream() async throws {
        guard let (tokens, directory) = try await JWTVerifierTests.fixture() else { return }
        defer { try? FileManager.default.removeItem(at: directory) }
        let upstream = try await Self.upstream()
        defer { Task { await upstream.close() } }
        let metrics = TestMetrics()
        let bearer = { (name: String) in [("Authorization", "Bearer \(tokens[name])")] }
        let cases: [([(String, String)], Int, String?, String)] = [
            ([], 401, nil, "missing"),
            (bearer("none"), 401, "invalid_token", "algorithm"),
            (bearer("wrong_key"), 401, "invalid_token", "signature"),
            (bearer("confusion"), 401, "invalid_token", "unknown_key"),
            (bearer("expired"), 401, "invalid_token", "expired"),
            (bearer("not_yet_valid"), 401, "invalid_token", "not_yet_valid"),
            (bearer("wrong_issuer"), 401, "invalid_token", "issuer"),
            (bearer("wrong_audience"), 401, "invalid_token", "audience"),
            ([("Authorization", "Bearer not-a-jwt")], 401, "invalid_token", "malformed"),
            (bearer("user_role"), 403, "insufficient_scope", "claims"),
            ([("Sec-WebSocket-Protocol", BearerTokenSources.subprotocolPrefix + tokens["rs256"])], 400, nil, "subprotocol"),
        ]
        try await withGateway(upstreamPort: upstream.port, metrics: metrics, configure: { $0.routes[0].auth = .init(jwt: Self.jwt(tokens)) }) {
            port in
            for (headers, status, error, outcome) in cases {
                let answer = try await TestWebSocketClient.rawHandshake(port: port, request: Self.request("/chat", headers))
                #expect(answer.status == status, "\(outcome): \(answer.body)")
                let challenge = answer.headers.first { $0.0 == "WWW-Authenticate" }?.1
                if status == 400 {
                    #expect(challenge == nil)
                } else if let error {
                    #expect(challenge?.hasPrefix("Bearer realm=\"chat\", error=\"\(error)\", error_description=\"") == true, "\(outcome)")
                } else {
                    #expect(challenge == "Bearer realm=\"chat\"", "\(outcome)")
                }
                #expect(!answer.body.contains("eyJ"), "\(outcome): the body quotes the token")
                #expect(metrics.total("wsgate_auth_decisions_total", [("method", "jwt"), ("outcome", outcome)]) == 1, "\(outcome)")
            }
        }
        #expect(upstream.accepted == 0)
    }

    /// Catalog O-07: every spelling of the upgrade that wsgate accepts goes through the JWT check (no token: 401, never the upstream).
    @Test func everyUpgradeSpellingIsAuthenticatedAndTheAccessLogNeverHoldsTheToken() async throws {
        guard let (tokens, directory) = try await JWTVerifierTests.fixture() else { return }
        defer { try? FileManager.default.removeItem(at: directory) }
        // It closes at once after its 101, so that the relayed connections end (and are logged) quickly.
        let upstream = try await FakeUpstream.start { request in
            var reply = FakeUpstream.Reply.accept(request)
            reply.closeAfter = true
            return reply
        }
        defer { Task { await upstream.close() } }
        let log = directory.appendingPathComponent("access.log").path
        let spellings = [
            "Upgrade: WebSocket\r\nConnection: Upgrade", "UPGRADE: websocket\r\nConnection: keep-alive, Upgrade",
            "Upgrade:  websocket \r\nconnection: upgrade",
        ]
        try await withGateway(
            upstreamPort: upstream.port,
            configure: {
                $0.routes[0].auth = .init(jwt: Self.jwt(tokens))
                $0.accessLog = .file(log)
            }
        ) { port in
            for spelling in spellings {
                let request =
                    "GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\n\(spelling)\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                let answer = try await TestWebSocketClient.rawHandshake(port: port, request: request)
                #expect(answer.status == 401, "\(spelling)")
            }
            // A token in each place a client can put one, accepted and refused: none of it is logged.
            let token = tokens["rs256"]
            for headers in [[("Authorization", "Bearer \(token)")], [("Cookie", "session=\(token)")]] {
                let answer = try await TestWebSocketClient.rawHandshake(port: port, request: Self.request("/chat", headers))
                #expect(answer.status == 101)
            }
            let expired = try await TestWebSocketClient.rawHandshake(port: port, request: Self.request("/chat?access_token=\(tokens["expired"])"))
            #expect(expired.status == 401)
        }
        #expect(upstream.requests.count == 2)
        let deadline = ContinuousClock.now + .seconds(10)
        var text = ""
        while ContinuousClock.now < deadline {
            text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if text.split(separator: "\n").count >= 6 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(text.split(separator: "\n").count == 6, "\(text)")
        #expect(text.contains("auth-jwt-missing"))
        #expect(text.contains("auth-jwt-expired"))
        #expect(!text.contains("eyJ"), "a token in the access log")
    }

    /// A Python `websockets` upstream that speaks `chat.v1` and says what it was offered.
    static let subprotocolUpstream = """
        import asyncio
        from websockets.asyncio.server import serve
        async def handler(ws):
            offered = ws.request.headers.get("Sec-WebSocket-Protocol", "")
            await ws.send(f"{ws.subprotocol}|{offered}|{ws.request.path}")
            async for message in ws:
                await ws.send(message)
        async def main():
            async with serve(handler, "127.0.0.1", 0, subprotocols=["chat.v1"]) as server:
                print(server.sockets[0].getsockname()[1], flush=True)
                await asyncio.sleep(120)
        asyncio.run(main())
        """

    /// A Python `websockets` client carrying its token the way a browser can: in the subprotocol
    /// offer (Kubernetes' `base64url.bearer.authorization.k8s.io.` convention) next to a real one.
    static let subprotocolClient = """
        import asyncio, base64, sys
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus
        url, token = sys.argv[1], sys.argv[2]
        entry = "base64url.bearer.authorization.k8s.io." + base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
        async def main():
            async with connect(url, subprotocols=["chat.v1", entry], compression=None) as ws:
                assert ws.subprotocol == "chat.v1", ws.subprotocol
                hello = await ws.recv()
                chosen, offered, path = hello.split("|")
                assert chosen == "chat.v1" and offered == "chat.v1", hello
                assert "k8s.io" not in offered and token not in path, hello
                await ws.send("hi")
                assert await ws.recv() == "hi"
            try:
                async with connect(url, subprotocols=[entry], compression=None):
                    raise SystemExit("a token-only offer was accepted")
            except InvalidStatus as error:
                assert error.response.status_code == 400, error.response.status_code
            print("OK")
        asyncio.run(main())
        """

    @Test func aBrowserStyleTokenInTheSubprotocolOfferAgreesTheRealSubprotocolEndToEnd() async throws {
        guard let (tokens, directory) = try await JWTVerifierTests.fixture() else { return }
        defer { try? FileManager.default.removeItem(at: directory) }
        guard try await PythonPeer.require("websockets") else { return }
        let upstream = try PythonPeer(script: Self.subprotocolUpstream)
        defer { upstream.stop() }
        let upstreamPort = Int(try await upstream.firstLine())!
        try await withGateway(
            upstreamPort: upstreamPort,
            configure: { $0.routes[0].auth = .init(jwt: Self.jwt(tokens) { $0.tokenSources = [.subprotocol] }) }
        ) { port in
            let run = try await runPython(["-c", Self.subprotocolClient, "ws://127.0.0.1:\(port)/chat", tokens["es256"]], timeout: .seconds(30))
            #expect(run.status == 0, "\(run.output)")
            #expect(run.output.contains("OK"), "\(run.output)")
        }
    }

    /// A SIGHUP reload re-reads the JWKS: a bad file is refused and the running keys stay; a good one
    /// applies to new handshakes.
    @Test func aReloadRereadsTheJWKSAndABadOneKeepsTheRunningKeys() async throws {
        guard let (tokens, directory) = try await JWTVerifierTests.fixture() else { return }
        defer { try? FileManager.default.removeItem(at: directory) }
        let upstream = try await Self.upstream()
        defer { Task { await upstream.close() } }
        let metrics = TestMetrics()
        let bad = directory.appendingPathComponent("bad.json")
        try Data(#"{"keys": [{"kty": "RSA", "kid": "x", "n": "AQAB"}]}"#.utf8).write(to: bad)
        try await withGatewayServer(upstreamPort: upstream.port, metrics: metrics, configure: { $0.routes[0].auth = .init(jwt: Self.jwt(tokens)) }) {
            server,
            port in
            func status(_ token: String) async throws -> Int {
                try await TestWebSocketClient.rawHandshake(port: port, request: Self.request("/chat", [("Authorization", "Bearer \(token)")])).status
            }
            var configuration = server.configuration
            configuration.routes[0].auth?.jwt?.jwks = bad.path
            let error = await #expect(throws: GatewayError.self) { try await server.reload(configuration: configuration) }
            #expect("\(error.map { "\($0)" } ?? "")".contains("auth.jwt"))
            #expect(metrics.total("wsgate_reloads_total", [("result", "refused")]) == 1)
            #expect(try await status(tokens["rs256"]) == 101)
            configuration.routes[0].auth?.jwt?.jwks = tokens.rotatedJWKSPath
            try await server.reload(configuration: configuration)
            #expect(try await status(tokens["rs256"]) == 401)
            #expect(try await status(tokens["rotated"]) == 101)
        }
    }

    /// `close_on_expiry`: the live connection gets 1008 "token expired" when the token runs out.
    @Test func aLiveConnectionIsClosedWith1008WhenItsTokenExpires() async throws {
        guard let (tokens, directory) = try await JWTVerifierTests.fixture() else { return }
        defer { try? FileManager.default.removeItem(at: directory) }
        try await withGatewayAndDemo(configure: {
            $0.routes[0].auth = .init(
                jwt: Self.jwt(tokens) {
                    $0.closeOnExpiry = true
                    $0.clockSkew = .zero
                }
            )
        }) { port in
            // exp is 6 s after the token was signed (PyJWTTokens).
            let client = try await TestWebSocketClient.connect(
                port: port,
                path: "/echo",
                headers: [("Authorization", "Bearer \(tokens["expires_soon"])")]
            )
            try await client.send(text: "still valid")
            #expect(try await client.receiveMessage(timeout: .seconds(5)) == .text("still valid"))
            let started = ContinuousClock.now
            var message = try await client.receiveMessage(timeout: .seconds(15))
            while case .ping = message { message = try await client.receiveMessage(timeout: .seconds(15)) }
            #expect(message == .close(.policyViolation, "token expired"))
            #expect(ContinuousClock.now - started < .seconds(10))
        }
    }
}
