import Foundation
import MetricsTestKit
import NIOCore
import NIOPosix
import TestPeers
import Testing

@testable import Gateway

/// Forward-auth over real sockets (issue #13 §3): a real HTTP auth service in Python
/// (`scripts/test-peers/auth_server.py`, standard library), the gateway in front of a recording upstream.
@Suite(.serialized, .timeLimit(.minutes(3))) struct ForwardAuthorizerTests {
    /// The Python auth service and its control port (connection and request statistics).
    final class AuthService: Sendable {
        let peer: PythonPeer
        let port: Int
        let controlPort: Int

        init() async throws {
            let script = TestPeers.packageRoot.appendingPathComponent("scripts/test-peers/auth_server.py").path
            self.peer = try PythonPeer(script: try String(contentsOfFile: script, encoding: .utf8))
            let ports = try await self.peer.firstLine().split(separator: " ").compactMap { Int($0) }
            guard ports.count == 2 else { throw PeerError("auth_server.py printed no ports") }
            (self.port, self.controlPort) = (ports[0], ports[1])
        }

        struct Stats: Decodable {
            struct Request: Decodable {
                var path: String
                var headers: [[String]]
                func values(_ name: String) -> [String] { self.headers.filter { $0[0].lowercased() == name.lowercased() }.map { $0[1] } }
            }
            var open: Int
            var max_open: Int
            var accepted: Int
            var requests: [Request]
        }

        func stats() async throws -> Stats {
            let connection = try await RawConnection.open(port: self.controlPort)
            await connection.send("GET / HTTP/1.1\r\nHost: control\r\n\r\n")
            _ = try await connection.waitForClose()
            let text = connection.text
            guard let start = text.range(of: "\r\n\r\n") else { throw PeerError("no stats answer: \(text)") }
            return try JSONDecoder().decode(Stats.self, from: Data(text[start.upperBound...].utf8))
        }

        /// Waits until the service's open connections satisfy `condition`; the last stats either way.
        func waitForOpen(timeout: Duration = .seconds(5), _ condition: (Int) -> Bool) async throws -> Stats {
            let deadline = ContinuousClock.now + timeout
            var stats = try await self.stats()
            while !condition(stats.open), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
                stats = try await self.stats()
            }
            return stats
        }

        func forward(
            _ path: String,
            configure: (inout GatewayConfiguration.ForwardAuthentication) -> Void = { _ in }
        ) -> GatewayConfiguration.ForwardAuthentication {
            var forward = GatewayConfiguration.ForwardAuthentication(url: "http://127.0.0.1:\(self.port)\(path)")
            forward.host = "127.0.0.1"
            forward.port = self.port
            forward.path = path
            // Kept-alive connections close soon after each test (other suites count the process's sockets).
            forward.idleTimeout = .milliseconds(200)
            configure(&forward)
            return forward
        }
    }

    static func request(extra: String = "") -> String {
        "GET /chat?room=1 HTTP/1.1\r\nHost: gw.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\(extra)\r\n"
    }

    /// One upgrade through the gateway; the connection once the gateway answered (or `timeout` passed).
    static func upgrade(port: Int, extra: String = "", timeout: Duration = .seconds(10)) async throws -> RawConnection {
        let connection = try await RawConnection.open(port: port)
        await connection.send(Self.request(extra: extra))
        _ = try await connection.wait(for: timeout) { $0.text.contains("\r\n\r\n") }
        return connection
    }

    static func withAuthGateway(
        _ forward: GatewayConfiguration.ForwardAuthentication,
        metrics: TestMetrics = TestMetrics(),
        accessLog: String? = nil,
        configure: (inout GatewayConfiguration) -> Void = { _ in },
        _ body: (_ port: Int, _ upstream: FakeUpstream) async throws -> Void
    ) async throws {
        try await Self.withAuthGatewayServer(forward, metrics: metrics, accessLog: accessLog, configure: configure) { _, port, upstream in
            try await body(port, upstream)
        }
    }

    /// As ``withAuthGateway(_:metrics:accessLog:configure:_:)``, with the server (for reload and drain).
    static func withAuthGatewayServer(
        _ forward: GatewayConfiguration.ForwardAuthentication,
        metrics: TestMetrics = TestMetrics(),
        accessLog: String? = nil,
        configure: (inout GatewayConfiguration) -> Void = { _ in },
        _ body: (_ server: GatewayServer, _ port: Int, _ upstream: FakeUpstream) async throws -> Void
    ) async throws {
        let upstream = try await FakeUpstream.start { .accept($0) }
        defer { Task { await upstream.close() } }
        try await withGatewayServer(
            upstreamPort: upstream.port,
            metrics: metrics,
            configure: {
                $0.routes[0].auth = .init(forward: forward)
                if let accessLog { $0.accessLog = .file(accessLog) }
                configure(&$0)
            }
        ) { server, port in
            try await body(server, port, upstream)
        }
    }

    /// Catalog H-13: the auth service sees the gateway's own X-Forwarded-For (the socket peer, 127.0.0.1), -Host and -Uri, never the client's forged copies.
    @Test func a2xxAllowsAndItsCopiedHeadersReachTheUpstreamInsteadOfTheClients() async throws {
        guard try await PythonPeer.require("asyncio") else { return }
        let auth = try await AuthService()
        let metrics = TestMetrics()
        let forward = auth.forward("/allow") {
            $0.copyHeaders = ["X-Auth-User", "X-Auth-Team", "X-Auth-Missing"]
        }
        try await Self.withAuthGateway(forward, metrics: metrics) { port, upstream in
            let client = try await Self.upgrade(
                port: port,
                extra: "X-Auth-User: forged\r\nX-Auth-Missing: forged\r\nCookie: session=1\r\nAuthorization: Bearer t0k\r\n"
                    + "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Uri: /admin\r\nX-Other: no\r\n"
            )
            defer { client.close() }
            #expect(client.status == 101, "\(client.text)")
            let request = try #require(upstream.requests.first)
            let userLines = request.head.split(separator: "\r\n").filter { $0.lowercased().hasPrefix("x-auth-user:") }
            #expect(userLines == ["X-Auth-User: ada"])
            #expect(request.header("X-Auth-Team") == "blue")
            #expect(request.header("X-Auth-Missing") == nil, "a client-sent copy of a copied header the service did not set passed")

            let seen = try #require(try await auth.stats().requests.first)
            #expect(seen.path == "/allow")
            #expect(seen.values("X-Forwarded-Method") == ["GET"])
            #expect(seen.values("X-Forwarded-Proto") == ["http"])
            #expect(seen.values("X-Forwarded-Host") == ["gw.example"])
            #expect(seen.values("X-Forwarded-Uri") == ["/chat?room=1"])
            #expect(seen.values("X-Forwarded-For") == ["127.0.0.1"])
            #expect(seen.values("Cookie") == ["session=1"])
            #expect(seen.values("Authorization") == ["Bearer t0k"])
            #expect(seen.values("X-Other").isEmpty)
            #expect(metrics.total("wsgate_auth_decisions_total", [("method", "forward"), ("outcome", "allow")]) == 1)
            // The kept-alive connection is closed once idle for idle_timeout.
            #expect(try await auth.waitForOpen { $0 == 0 }.open == 0)
        }
    }

    @Test func a401IsRelayedWithWWWAuthenticateAndTheUpstreamIsNeverContacted() async throws {
        guard try await PythonPeer.require("asyncio") else { return }
        let auth = try await AuthService()
        let metrics = TestMetrics()
        try await GatewayTLSTests.withFile("") { log in
            try await Self.withAuthGateway(auth.forward("/deny401"), metrics: metrics, accessLog: log) { port, upstream in
                let client = try await Self.upgrade(port: port)
                #expect(try await client.waitForClose())
                #expect(client.status == 401)
                #expect(client.text.contains("WWW-Authenticate: Bearer realm=\"wsgate\"\r\n"))
                #expect(client.text.contains("Connection: close\r\n"))
                #expect(!client.text.contains("X-Internal"))
                #expect(client.text.hasSuffix("\r\n\r\nlogin first"))
                #expect(upstream.accepted == 0)
                #expect(metrics.total("wsgate_auth_decisions_total", [("outcome", "deny_401")]) == 1)
                #expect(metrics.total("wsgate_upgrades_refused_total", [("reason", "auth-forward-denied"), ("status", "401")]) == 1)
                // The access log names the refusal's reason.
                let deadline = ContinuousClock.now + .seconds(5)
                while GatewayTLSTests.accessLogLines(log).isEmpty, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                #expect(
                    GatewayTLSTests.accessLogLines(log).contains { $0.contains("\"refusal\":\"auth-forward-denied\"") },
                    "\(GatewayTLSTests.accessLogLines(log))"
                )
            }
        }
    }

    @Test func a403IsRelayedWithItsBodyCutAt4KiB() async throws {
        guard try await PythonPeer.require("asyncio") else { return }
        let auth = try await AuthService()
        try await Self.withAuthGateway(auth.forward("/deny403")) { port, upstream in
            let client = try await Self.upgrade(port: port)
            #expect(try await client.waitForClose())
            #expect(client.status == 403)
            #expect(client.text.contains("Content-Length: 4096\r\n"))
            #expect(client.text.hasSuffix("\r\n\r\nnot for you" + String(repeating: "!", count: 4096 - 11)))
            #expect(upstream.accepted == 0)
        }
    }

    /// Each broken answer is refused quickly (well inside the 5 s deadline) and never reaches the upstream.
    @Test(arguments: [
        ("/error500", 502, "error"), ("/redirect", 502, "error"), ("/close-mid", 502, "error"), ("/giant-header", 502, "error"),
        ("/giant-body", 502, "error"), ("/reset", 502, "error"), ("/nothing-listens", 502, "unreachable"),
    ])
    func aBrokenAnswerIs502(path: String, status: Int, outcome: String) async throws {
        guard try await PythonPeer.require("asyncio") else { return }
        let auth = try await AuthService()
        let metrics = TestMetrics()
        var forward = auth.forward(path)
        if path == "/nothing-listens" { forward.port = try await Self.closedPort() }
        try await Self.withAuthGateway(forward, metrics: metrics) { port, upstream in
            let started = ContinuousClock.now
            let client = try await Self.upgrade(port: port)
            #expect(try await client.waitForClose())
            #expect(client.status == status, "\(path): \(client.text.prefix(200))")
            // Waiting for the 5 s deadline would take at least 5 s (and give 504): anything under it is
            // "quickly", however loaded the machine.
            #expect(ContinuousClock.now - started < .seconds(5), "\(path) waited for the deadline")
            #expect(upstream.accepted == 0)
            #expect(metrics.total("wsgate_auth_decisions_total", [("outcome", outcome)]) == 1, "\(path)")
            // Nothing is left open toward the service.
            #expect(try await auth.waitForOpen { $0 == 0 }.open == 0, "\(path)")
        }
    }

    @Test(arguments: ["/hang", "/slow/2000"])
    func aServiceThatDoesNotAnswerInTimeIs504AndItsConnectionIsClosed(path: String) async throws {
        guard try await PythonPeer.require("asyncio") else { return }
        let auth = try await AuthService()
        let metrics = TestMetrics()
        try await Self.withAuthGateway(auth.forward(path) { $0.timeout = .milliseconds(400) }, metrics: metrics) { port, upstream in
            let started = ContinuousClock.now
            let client = try await Self.upgrade(port: port)
            let waited = ContinuousClock.now - started
            #expect(client.status == 504, "\(client.text.prefix(200))")
            // Not before the 400 ms timeout; the 504 (not the service's late answer) shows the timeout
            // ended it, so the upper bound only says it did not hang (a loaded machine adds seconds).
            #expect(waited >= .milliseconds(390) && waited < .seconds(10), "answered after \(waited)")
            #expect(upstream.accepted == 0)
            #expect(metrics.total("wsgate_auth_decisions_total", [("outcome", "timeout")]) == 1)
            #expect(try await auth.waitForOpen { $0 == 0 }.open == 0, "the timed-out auth connection was left open")
        }
    }

    @Test func aClientThatLeavesWhileAuthIsPendingClosesTheAuthRequest() async throws {
        guard try await PythonPeer.require("asyncio") else { return }
        let auth = try await AuthService()
        let metrics = TestMetrics()
        try await Self.withAuthGateway(auth.forward("/hang") { $0.timeout = .seconds(30) }, metrics: metrics) { port, upstream in
            let clients = try await withThrowingTaskGroup(of: RawConnection.self) { group in
                for _ in 0..<5 {
                    group.addTask {
                        let connection = try await RawConnection.open(port: port)
                        await connection.send(Self.request())
                        return connection
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(try await auth.waitForOpen { $0 == 5 }.open == 5)
            for client in clients { client.close() }
            let after = try await auth.waitForOpen { $0 == 0 }
            #expect(after.open == 0, "auth connections leaked after the clients left")
            #expect(upstream.accepted == 0)
            #expect(metrics.total("wsgate_auth_decisions_total", [("outcome", "abandoned")]) == 5)
        }
    }

    @Test func manyUpgradesAgainstASlowServiceNeverExceedThePoolCap() async throws {
        guard try await PythonPeer.require("asyncio") else { return }
        let auth = try await AuthService()
        let loops = MultiThreadedEventLoopGroup.singleton.makeIterator().reduce(0) { count, _ in count + 1 }
        let forward = auth.forward("/slow/100") {
            $0.maxConnections = 2
            $0.timeout = .seconds(20)
        }
        try await Self.withAuthGateway(forward) { port, upstream in
            let statuses = try await withThrowingTaskGroup(of: Int?.self) { group in
                for _ in 0..<40 {
                    group.addTask {
                        let client = try await Self.upgrade(port: port, timeout: .seconds(20))
                        defer { client.close() }
                        return client.status
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == 101 }.count == 40, "\(statuses)")
            let stats = try await auth.stats()
            #expect(stats.max_open <= 2 * loops, "\(stats.max_open) auth connections open at once, cap 2 × \(loops) event loops")
            #expect(stats.accepted <= 2 * loops, "connections were not kept alive: \(stats.accepted) accepted")
            #expect(stats.requests.count == 40)
        }
    }

    /// With one auth connection per event loop and no waiting room, an upgrade that finds its loop's
    /// connection busy is 503 at once. The service never answers (`/hang`), so the busy connections stay
    /// busy however slowly the clients arrive (with a service that answered after a delay, a loaded
    /// machine spreading the clients past it let later ones through): every client is either held at
    /// the service (at most one per loop) or answered 503 while those are still held.
    @Test func waitersOverTheCapAre503AtOnce() async throws {
        guard try await PythonPeer.require("asyncio") else { return }
        let auth = try await AuthService()
        let metrics = TestMetrics()
        let loops = MultiThreadedEventLoopGroup.singleton.makeIterator().reduce(0) { count, _ in count + 1 }
        let forward = auth.forward("/hang") {
            $0.maxConnections = 1
            $0.maxWaiting = 0
            $0.timeout = .seconds(60)
        }
        try await Self.withAuthGateway(forward, metrics: metrics) { port, upstream in
            let count = 3 * loops + 2
            let clients = try await withThrowingTaskGroup(of: RawConnection.self) { group in
                for _ in 0..<count {
                    group.addTask {
                        let connection = try await RawConnection.open(port: port)
                        await connection.send(Self.request())
                        return connection
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            defer { for client in clients { client.close() } }
            // Settled: every client is either answered or held at the service.
            var held = 0
            let deadline = ContinuousClock.now + .seconds(20)
            repeat {
                held = try await auth.stats().open
                if clients.filter({ $0.status != nil }).count + held >= count { break }
                try await Task.sleep(for: .milliseconds(20))
            } while ContinuousClock.now < deadline
            let statuses = clients.map(\.status)
            #expect(held >= 1 && held <= loops, "\(held) auth requests held, \(loops) event loops")
            #expect(statuses.filter { $0 == 503 }.count == count - held, "\(statuses)")
            #expect(statuses.filter { $0 == nil }.count == held, "\(statuses)")
            #expect(metrics.total("wsgate_auth_decisions_total", [("outcome", "overloaded")]) == Int64(count - held))
            #expect(upstream.accepted == 0)
        }
    }

    /// A port nothing listens on (bound, then closed).
    static func closedPort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress!.port!
        try await channel.close()
        return port
    }
}
