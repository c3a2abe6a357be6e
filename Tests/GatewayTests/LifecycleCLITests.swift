import Foundation
import Frames
import NIOConcurrencyHelpers
import Testing

@testable import Gateway

/// The `wsgate run` process end to end: SIGTERM drains and exits 0, SIGHUP reloads or refuses.
@Suite(.serialized, .timeLimit(.minutes(2))) struct LifecycleCLITests {
    static func config(port: Int, adminPort: Int, upstreamPort: Int, path: String = "/", drain: String = "5s", close: String = "500ms") -> String {
        """
        listeners:
          - address: 127.0.0.1:\(port)
        routes:
          - path: \(path)
            upstreams: [ws://127.0.0.1:\(upstreamPort)]
        access_log: off
        admin:
          address: 127.0.0.1:\(adminPort)
        timeouts:
          drain: \(drain)
          close: \(close)
        """
    }

    /// Catalog G-01: SIGTERM: /readyz 503, both legs get 1001, the process exits 0 and logs drained/forced counts.
    /// Catalog G-05: (b) SIGHUP with a syntactically invalid file is refused, logged with the file and line and counted; the old configuration keeps serving, and a good one applies to new connections.
    @Test func sighupRefusesABrokenConfigurationAndAppliesAGoodOneAndSigtermDrainsBothLegsWith1001AndExits0() async throws {
        guard try WSGateProcess.require() else { return }
        // A scripted upstream that records what it receives (it answers the drain's Close only when
        // the test has checked /readyz: with a close timeout ending that leg, a loaded machine could
        // finish the drain, and the process, before the check).
        // Only the first upgrade is accepted; later ones get a 403 relayed (so that the frames it records
        // are those of the first connection).
        let upgrades = NIOLockedValueBox(0)
        let upstream = try await FakeUpstream.start { request in
            let first = upgrades.withLockedValue { count in
                count += 1
                return count == 1
            }
            return first
                ? .accept(request) : FakeUpstream.Reply(response: Array("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".utf8), closeAfter: true)
        }
        defer { Task { await upstream.close() } }
        do {
            let port = try await freeLoopbackPort()
            let adminPort = try await freeLoopbackPort()
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-cli-config-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let configPath = directory.appendingPathComponent("wsgate.yaml").path
            // Only the peers' answers end the drain (no close timeout, no deadline within reach), so it
            // is still under way when /readyz is asked, however slow the machine.
            try Self.config(port: port, adminPort: adminPort, upstreamPort: upstream.port, drain: "60s", close: "60s").write(
                toFile: configPath,
                atomically: true,
                encoding: .utf8
            )

            let gateway = try WSGateProcess(["run", "-c", configPath])
            try await gateway.waitFor("the admin banner") { out, _ in out.contains("wsgate: admin on") }
            let client = try await TestWebSocketClient.connect(port: port, path: "/echo")
            try await client.send(text: "one")
            try await upstream.waitUntilReceived { $0.count >= 9 }
            #expect(try await OperationsMetricsTests.get(adminPort, "/readyz").status == 200)

            // SIGHUP with a broken file: refused, logged, the old configuration keeps serving.
            try "listeners: [".write(toFile: configPath, atomically: true, encoding: .utf8)
            gateway.signal(SIGHUP)
            try await gateway.waitFor("the refusal log line") { _, err in err.contains("reload refused") }
            // The log names the file and where in it the error is.
            #expect(gateway.errors.contains(configPath) && gateway.errors.contains("line "), "\(gateway.errors)")
            try await client.send(text: "two")
            try await upstream.waitUntilReceived { $0.count >= 18 }
            let second = try await TestWebSocketClient.rawHandshake(port: port, request: OperationsMetricsTests.upgradeRequest)
            #expect(second.status == 403, "a new connection is routed by the old configuration")
            #expect(upstream.requests.count == 2)
            let metrics = try await OperationsMetricsTests.get(adminPort, "/metrics").body
            #expect(metrics.contains(#"wsgate_reloads_total{result="refused"} 1"#), "\(metrics)")

            // SIGHUP with a good file: new connections are routed by it (only /v2 now: / is 404), the live
            // connection goes on.
            try Self.config(port: port, adminPort: adminPort, upstreamPort: upstream.port, path: "/v2", drain: "60s", close: "60s")
                .write(toFile: configPath, atomically: true, encoding: .utf8)
            gateway.signal(SIGHUP)
            try await gateway.waitFor("the reload log line") { _, err in err.contains("configuration reloaded") }
            #expect(try await TestWebSocketClient.rawHandshake(port: port, request: OperationsMetricsTests.upgradeRequest).status == 404)
            try await client.send(text: "three")
            try await upstream.waitUntilReceived { $0.count >= 29 }

            // SIGTERM: the client and the upstream both get 1001; the process exits 0.
            try await Task.sleep(for: .milliseconds(100))
            let before = upstream.received.count
            gateway.signal(SIGTERM)
            #expect(try await client.receiveMessage() == .close(.goingAway, RelaySession.drainReason))
            try await upstream.waitUntilReceived { $0.count > before }
            let frames = try upstream.receivedFrames()
            #expect(frames.map { String(decoding: $0.2, as: UTF8.self) }.prefix(3) == ["one", "two", "three"])
            #expect(frames.last?.1?.closeCode == .goingAway)
            #expect(try await OperationsMetricsTests.get(adminPort, "/readyz").status == 503)
            // Both peers answer the Close now: the upstream (an unmasked Close 1001), then the client.
            upstream.write([0x88, 0x02, 0x03, 0xE9])
            try await client.close(code: .goingAway)
            try await client.waitForTCPClose()
            let exit = try await gateway.waitForExit(timeout: .seconds(10))
            #expect(exit.reason == .exit)
            #expect(exit.status == 0, "\(gateway.errors)")
            #expect(gateway.errors.contains("closed=1 forced=0"), "\(gateway.errors)")
        }
    }

    /// Catalog G-02: peers that never answer are force-closed at the drain deadline, a second SIGTERM/SIGINT is ignored (documented), and the process exits 0 after the deadline and long before the close timeout (asserted: between 1 s and 20 s, with a 60 s close timeout; the exact deadline is tested under virtual time).
    @Test func aSecondSignalDuringTheDrainIsIgnoredAndTheDeadlineBoundsTheExit() async throws {
        guard try WSGateProcess.require() else { return }
        let upstream = try await FakeUpstream.start { .accept($0) }
        defer { Task { await upstream.close() } }
        let port = try await freeLoopbackPort()
        let adminPort = try await freeLoopbackPort()
        let configPath = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-cli-\(UUID().uuidString).yaml").path
        defer { try? FileManager.default.removeItem(atPath: configPath) }
        // The close timeout (500 ms) would end the connection before the deadline: make it far longer,
        // so that only the deadline can end it however slow a loaded machine is.
        try Self.config(port: port, adminPort: adminPort, upstreamPort: upstream.port, drain: "1s")
            .replacingOccurrences(of: "close: 500ms", with: "close: 60s")
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        let gateway = try WSGateProcess(["run", "-c", configPath])
        try await gateway.waitFor("the admin banner") { out, _ in out.contains("wsgate: admin on") }
        // Neither this client nor the upstream ever answers a Close.
        let client = try await TestWebSocketClient.connect(port: port, path: "/")
        let start = ContinuousClock.now
        gateway.signal(SIGTERM)
        #expect(try await client.receiveMessage() == .close(.goingAway, RelaySession.drainReason))
        gateway.signal(SIGTERM)
        gateway.signal(SIGINT)
        try await client.waitForTCPClose(timeout: .seconds(20))
        let exit = try await gateway.waitForExit(timeout: .seconds(20))
        #expect(exit.reason == .exit && exit.status == 0, "\(exit) \(gateway.errors)")
        #expect(ContinuousClock.now - start >= .milliseconds(900), "the drain lasted until its deadline")
        // Closed at the deadline, the process is gone soon after (forceCloseAll waits at most 2 s more),
        // long before the 60 s close timeout.
        #expect(ContinuousClock.now - start < .seconds(20), "the exit took \(ContinuousClock.now - start)")
        #expect(gateway.errors.contains("closed=0 forced=1"), "\(gateway.errors)")
    }

    /// `swift run wsgate` (issue #12 §2): the banner lists the demo's and the admin listener's URLs on
    /// the ports bound, the admin endpoints answer, and a client's permessage-deflate offer is answered.
    @Test func theEmbeddedDefaultPrintsItsURLsServesTheAdminEndpointsAndNegotiatesPermessageDeflate() async throws {
        guard try WSGateProcess.require() else { return }
        let port = try await freeLoopbackPort()
        let tlsPort = try await freeLoopbackPort()
        let gateway = try WSGateProcess(["--port", "\(port)", "--tls-port", "\(tlsPort)", "--admin-port", "0"])
        try await gateway.waitFor("the banner") { out, _ in out.contains("Stop with Ctrl-C.") }
        let banner = gateway.output
        for url in ["ws://127.0.0.1:\(port)/echo", "ws://127.0.0.1:\(port)/chat?name=you", "wss://127.0.0.1:\(tlsPort)/echo"] {
            #expect(banner.contains(url), "\(banner)")
        }
        let healthz = try #require(banner.split(separator: "\n").first { $0.contains("/healthz") }, "\(banner)")
        let url = try #require(healthz.split(separator: " ").first { $0.hasPrefix("http://127.0.0.1:") })
        let adminPort = try #require(Int(url.dropFirst("http://127.0.0.1:".count).prefix { $0.isNumber }))
        #expect(banner.contains("http://127.0.0.1:\(adminPort)/metrics") && banner.contains("http://127.0.0.1:\(adminPort)/readyz"))
        #expect(try await OperationsMetricsTests.get(adminPort, "/healthz").status == 200)
        #expect(try await OperationsMetricsTests.get(adminPort, "/readyz").status == 200)

        let offer = OperationsMetricsTests.upgradeRequest.replacingOccurrences(
            of: "GET / ",
            with: "GET /echo "
        ).replacingOccurrences(of: "\r\n\r\n", with: "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
        let answer = try await TestWebSocketClient.rawHandshake(port: port, request: offer)
        #expect(answer.status == 101)
        #expect(
            answer.headers.contains { $0.0.lowercased() == "sec-websocket-extensions" && $0.1.hasPrefix("permessage-deflate") },
            "\(answer.headers)"
        )
        let metrics = try await OperationsMetricsTests.get(adminPort, "/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.body.contains("wsgate_extension_decisions_total{"), "\(metrics.body)")

        gateway.signal(SIGTERM)
        let exit = try await gateway.waitForExit(timeout: .seconds(15))
        #expect(exit.reason == .exit && exit.status == 0, "\(exit) \(gateway.errors)")
    }

    /// An `auth` with no method would let every client in: `wsgate check` and `wsgate run` refuse it with
    /// the route's name and what to write, and a SIGHUP to it is refused while the old configuration serves.
    @Test func anAuthWithNoMethodFailsTheCheckStopsTheStartAndIsRefusedOnReload() async throws {
        guard try WSGateProcess.require() else { return }
        let port = try await freeLoopbackPort()
        let adminPort = try await freeLoopbackPort()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-empty-auth-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let good = Self.config(port: port, adminPort: adminPort, upstreamPort: 9, path: "/chat")
        let emptyAuth = good.replacingOccurrences(of: "upstreams: [ws://127.0.0.1:9]", with: "upstreams: [ws://127.0.0.1:9]\n    auth: {}")
        #expect(emptyAuth != good)
        let path = directory.appendingPathComponent("wsgate.yaml").path
        try emptyAuth.write(toFile: path, atomically: true, encoding: .utf8)
        func namesTheRouteAndTheFix(_ text: String) -> Bool {
            text.contains("routes[0].auth") && text.contains("route \"/chat\"") && text.contains("jwt: {jwks: FILE}")
        }

        let check = try WSGateProcess(["check", "-c", path])
        #expect(try await check.waitForExit(timeout: .seconds(15)).status != 0)
        #expect(namesTheRouteAndTheFix(check.errors), "\(check.errors)")

        let refusedStart = try WSGateProcess(["run", "-c", path])
        #expect(try await refusedStart.waitForExit(timeout: .seconds(15)).status != 0)
        #expect(namesTheRouteAndTheFix(refusedStart.errors), "\(refusedStart.errors)")

        try good.write(toFile: path, atomically: true, encoding: .utf8)
        let gateway = try WSGateProcess(["run", "-c", path])
        try await gateway.waitFor("the admin banner") { out, _ in out.contains("wsgate: admin on") }
        try emptyAuth.write(toFile: path, atomically: true, encoding: .utf8)
        gateway.signal(SIGHUP)
        try await gateway.waitFor("the refusal log line") { _, err in err.contains("reload refused") }
        #expect(namesTheRouteAndTheFix(gateway.errors), "\(gateway.errors)")
        let metrics = try await OperationsMetricsTests.get(adminPort, "/metrics").body
        #expect(metrics.contains(#"wsgate_reloads_total{result="refused"} 1"#), "\(metrics)")
        gateway.signal(SIGTERM)
        #expect(try await gateway.waitForExit(timeout: .seconds(10)).status == 0, "\(gateway.errors)")
    }

    /// `wsgate check` counts in words a reader expects: "1 listener, 1 route", "2 listeners, 2 routes".
    @Test func checkCountsListenersAndRoutesInTheSingularAndThePlural() async throws {
        guard try WSGateProcess.require() else { return }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-check-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let one = directory.appendingPathComponent("one.yaml").path
        try "listeners: [{address: 127.0.0.1:18001}]\nroutes: [{upstreams: [ws://127.0.0.1:9]}]\n"
            .write(toFile: one, atomically: true, encoding: .utf8)
        let two = directory.appendingPathComponent("two.yaml").path
        try """
        listeners: [{address: 127.0.0.1:18001}, {address: 127.0.0.1:18002}]
        routes: [{upstreams: [ws://127.0.0.1:9]}, {path: /chat, upstreams: [ws://127.0.0.1:9]}]

        """.write(toFile: two, atomically: true, encoding: .utf8)
        for (path, summary) in [(one, "(1 listener, 1 route)"), (two, "(2 listeners, 2 routes)")] {
            let check = try WSGateProcess(["check", "-c", path])
            let exit = try await check.waitForExit(timeout: .seconds(15))
            #expect(exit.status == 0, "\(check.errors)")
            #expect(check.output == "wsgate: configuration \(path) is valid \(summary)\n")
        }
    }
}
