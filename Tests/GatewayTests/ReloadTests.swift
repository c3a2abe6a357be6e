import Foundation
import MetricsTestKit
import NIOCore
import NIOPosix
import TLSShim
import Testing

@testable import Gateway

/// Reload (SIGHUP's work, DESIGN §6, RELIABILITY G-03–G-05) over real sockets: live connections keep
/// going, new ones get the new configuration and certificate, a broken configuration is refused.
@Suite(.serialized, .timeLimit(.minutes(2))) struct ReloadTests {
    /// A Python `websockets` client over TLS: one connection that lives across the reload (it sends a
    /// message, prints the certificate's CN, waits for the file `argv[3]` to exist, sends another), then
    /// a new connection that prints the CN it sees.
    static let script = #"""
        import asyncio, os, ssl, sys
        from websockets.asyncio.client import connect
        def cn(ws):
            cert = ws.transport.get_extra_info("peercert")
            return dict(x[0] for x in cert["subject"])["commonName"]
        async def main(port, ca, go):
            ctx = ssl.create_default_context(cafile=ca)
            url = f"wss://localhost:{port}/echo"
            async with connect(url, ssl=ctx) as ws:
                await ws.send("before")
                assert await ws.recv() == "before"
                print("live", cn(ws), flush=True)
                while not os.path.exists(go):
                    await asyncio.sleep(0.02)
                await ws.send("after")
                assert await ws.recv() == "after"
                print("survived", flush=True)
            async with connect(url, ssl=ctx) as ws:
                print("new", cn(ws), flush=True)
        asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
        """#

    /// Catalog G-03: after a certificate reload a live wss session goes on and a new connection sees the new certificate.
    @Test func aLiveConnectionSurvivesAndANewOneSeesTheNewCertificate() async throws {
        guard try await PythonPeer.require("websockets") else { return }
        let metrics = TestMetrics()
        let files = try ReloadCertificateDirectory()
        try files.install(commonName: "first")

        try await withDemo { demo in
            try await withGatewayServer(
                upstreamPort: demo.port,
                metrics: metrics,
                configure: { $0.listeners[0].tls = files.listenerTLS }
            ) { server, port in
                let peer = try PythonPeer(script: Self.script, arguments: ["\(port)", files.path("ca.pem"), files.path("go")])
                defer { peer.stop() }
                #expect(try await peer.firstLine() == "live first")

                // New certificate files and a new route table (/echo only): a reload.
                try files.install(commonName: "second")
                var configuration = server.configuration
                configuration.routes[0].pathPrefix = "/echo"
                try await server.reload(configuration: configuration)
                #expect(server.configuration.routes[0].pathPrefix == "/echo")
                _ = FileManager.default.createFile(atPath: files.path("go"), contents: nil)

                let run = try await peer.finish(timeout: .seconds(30))
                #expect(run.status == 0, "\(run.output)")
                #expect(run.output.contains("survived"), "\(run.output)")
                #expect(run.output.contains("new second"), "\(run.output)")
                #expect(metrics.total("wsgate_reloads_total", [("result", "applied")]) == 1)
            }
        }
    }

    @Test func aBrokenConfigurationIsRefusedAndTheOldOneStays() async throws {
        let metrics = TestMetrics()
        try await withDemo { demo in
            try await withGatewayServer(upstreamPort: demo.port, metrics: metrics) { server, port in
                let before = server.configuration
                // TLS added to a plaintext listener, with new routes: refused (TLS on/off needs a restart).
                var addsTLS = before
                addsTLS.listeners[0].tls = TLSServerConfiguration(
                    defaultIdentity: TLSIdentity(certificateChain: .file("/nonexistent/cert.pem"), privateKey: .file("/nonexistent/key.pem"))
                )
                addsTLS.routes[0].pathPrefix = "/nowhere"
                await #expect(throws: (any Error).self) { try await server.reload(configuration: addsTLS) }
                // A changed listener address: refused (addresses are bound at start).
                var moved = before
                moved.listeners[0].port = 1
                let error = await #expect(throws: GatewayError.self) { try await server.reload(configuration: moved) }
                #expect(error?.description.contains("restart") == true)
                // A route with an `auth` that has no method (built in code, so not validated): it would
                // let every client in, so it is refused.
                var emptyAuth = before
                emptyAuth.routes[0].auth = GatewayConfiguration.RouteAuthentication()
                let authError = await #expect(throws: GatewayError.self) { try await server.reload(configuration: emptyAuth) }
                #expect(authError?.description.contains("has auth with no method") == true, "\(String(describing: authError))")
                #expect(server.configuration == before)
                #expect(metrics.total("wsgate_reloads_total", [("result", "refused")]) == 3)
                // New connections still use the old routes.
                let client = try await TestWebSocketClient.connect(port: port, path: "/echo")
                try await client.send(text: "still here")
                #expect(try await client.receiveMessage() == .text("still here"))
            }
        }
    }

    /// Catalog G-04: starting from a TLS listener, a reload to a key that does not match the certificate, a missing certificate file, a missing key file, garbage PEM, an empty chain, or a half-written certificate is refused with an error that names the problem, counted (reloads refused), the old certificate keeps being served to new handshakes and no handshake fails; a later good reload applies.
    @Test func aBrokenCertificateIsRefusedAndTheOldOneKeepsServing() async throws {
        let metrics = TestMetrics()
        let files = try ReloadCertificateDirectory()
        let first = try ReloadCertificateDirectory.certificate("first")
        let other = try ReloadCertificateDirectory.certificate("other")
        try files.install(certificate: first.certificatePEM, key: first.privateKeyPEM)

        let pem = first.certificatePEM
        let broken: [(name: String, certificate: String?, key: String?, mentions: [String])] = [
            ("key does not match", first.certificatePEM, other.privateKeyPEM, ["key"]),
            ("certificate missing", nil, first.privateKeyPEM, ["cert.pem"]),
            ("key missing", first.certificatePEM, nil, ["key.pem"]),
            ("garbage PEM", "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n", first.privateKeyPEM, ["cert"]),
            ("empty chain", "", first.privateKeyPEM, ["cert"]),
            ("half-written certificate", String(pem.prefix(pem.count / 2)), first.privateKeyPEM, ["cert"]),
            ("garbage key", first.certificatePEM, "garbage", ["key"]),
        ]
        try await withDemo { demo in
            try await withGatewayServer(
                upstreamPort: demo.port,
                metrics: metrics,
                configure: { $0.listeners[0].tls = files.listenerTLS }
            ) { server, port in
                let before = server.configuration
                #expect(try await TLSTestClient.upgrade(port: port, sessionReuse: false) == ("CN=first", 101))
                for (index, flaw) in broken.enumerated() {
                    try files.install(certificate: flaw.certificate, key: flaw.key)
                    let error = await #expect(throws: (any Error).self, "\(flaw.name)") {
                        try await server.reload(configuration: before)
                    }
                    let message = "\(error.map { "\($0)" } ?? "")".lowercased()
                    #expect(flaw.mentions.allSatisfy { message.contains($0) }, "\(flaw.name): the error does not say what is wrong: \(message)")
                    #expect(metrics.total("wsgate_reloads_total", [("result", "refused")]) == Int64(index + 1), "\(flaw.name)")
                    // The old certificate keeps serving, and new handshakes succeed.
                    let seen = try await TLSTestClient.upgrade(port: port, sessionReuse: false)
                    #expect(seen.subject == "CN=first" && seen.status == 101, "\(flaw.name): \(seen)")
                }
                #expect(metrics.total("wsgate_reloads_total", [("result", "applied")]) == 0)
                #expect(metrics.total("wsgate_tls_handshake_failures_total") == 0, "a handshake failed because of a refused reload")
                // A good reload afterwards works.
                try files.install(commonName: "second")
                try await server.reload(configuration: before)
                #expect(metrics.total("wsgate_reloads_total", [("result", "applied")]) == 1)
                #expect(try await TLSTestClient.upgrade(port: port, sessionReuse: false) == ("CN=second", 101))
            }
        }
    }

    @Test func aReloadOpensTheAccessLogAgainForLogRotation() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-rotate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = directory.appendingPathComponent("access.log").path
        func lines(_ path: String) -> Int {
            ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").count
        }
        try await withDemo { demo in
            try await withGatewayServer(upstreamPort: demo.port, configure: { $0.accessLog = .file(log) }) { server, port in
                func oneConnection() async throws {
                    let client = try await TestWebSocketClient.connect(port: port, path: "/echo")
                    try await client.close()
                    _ = try await client.receiveMessage()
                    try await client.waitForTCPClose()
                }
                try await oneConnection()
                await waitFor { lines(log) == 1 }
                #expect(lines(log) == 1)
                // logrotate's way: move the file, then SIGHUP (here: reload the same configuration).
                try FileManager.default.moveItem(atPath: log, toPath: log + ".1")
                try await server.reload(configuration: server.configuration)
                try await oneConnection()
                await waitFor { lines(log) == 1 }
                #expect(lines(log) == 1, "the new connection's line goes to a new file")
                #expect(lines(log + ".1") == 1)
            }
        }
    }

    /// Catalog G-05: live sessions continue under the limits they were admitted with across a reload.
    @Test func liveConnectionsStayCountedAgainstUnchangedConnectionCaps() async throws {
        let metrics = TestMetrics()
        try await withDemo { demo in
            try await withGatewayServer(upstreamPort: demo.port, metrics: metrics, configure: { $0.connectionLimits.perIPConnections = 1 }) {
                server,
                port in
                let first = try await TestWebSocketClient.connect(port: port, path: "/echo")
                var configuration = server.configuration
                configuration.routes[0].pathPrefix = "/echo"
                try await server.reload(configuration: configuration)
                // The cap is the same, so the live connection still counts: a second one is refused.
                await #expect(throws: (any Error).self) {
                    _ = try await TestWebSocketClient.rawHandshake(port: port, request: OperationsMetricsTests.upgradeRequest, timeout: .seconds(2))
                }
                #expect(metrics.total("wsgate_connection_limit_refusals_total", [("limit", "ip_connections")]) == 1)
                try await first.send(text: "still relayed")
                #expect(try await first.receiveMessage() == .text("still relayed"))
            }
        }
    }

    /// Catalog G-04: `wsgate run` with a TLS listener: SIGHUP with a key that does not match the certificate is refused with an error log line naming the problem and `wsgate_reloads_total{result="refused"}`, the old certificate keeps serving new handshakes, and a later SIGHUP with a good certificate applies.
    @Test func sighupWithABrokenCertificateIsRefusedLoggedAndCountedAndTheOldCertificateServes() async throws {
        guard try WSGateProcess.require() else { return }
        let upstream = try await FakeUpstream.start { .accept($0) }
        defer { Task { await upstream.close() } }
        let files = try ReloadCertificateDirectory()
        let first = try ReloadCertificateDirectory.certificate("first")
        try files.install(certificate: first.certificatePEM, key: first.privateKeyPEM)
        let port = try await freeLoopbackPort()
        let adminPort = try await freeLoopbackPort()
        let configuration = """
            listeners:
              - address: 127.0.0.1:\(port)
                tls:
                  certificate: cert.pem
                  key: key.pem
            routes:
              - path: /
                upstreams: [ws://127.0.0.1:\(upstream.port)]
            access_log: off
            admin:
              address: 127.0.0.1:\(adminPort)
            """
        try configuration.write(toFile: files.path("wsgate.yaml"), atomically: true, encoding: .utf8)

        let gateway = try WSGateProcess(["run", "-c", files.path("wsgate.yaml")])
        try await gateway.waitFor("the admin banner") { out, _ in out.contains("wsgate: admin on") }
        #expect(try await TLSTestClient.upgrade(port: port, sessionReuse: false) == ("CN=first", 101))

        try files.install(certificate: first.certificatePEM, key: try ReloadCertificateDirectory.certificate("other").privateKeyPEM)
        gateway.signal(SIGHUP)
        try await gateway.waitFor("the refusal log line") { _, err in err.contains("reload refused") }
        let line = gateway.errors.split(separator: "\n").first { $0.contains("reload refused") }.map(String.init) ?? ""
        #expect(line.lowercased().contains("key"), "the log line does not say what is wrong: \(line)")
        let metrics = try await OperationsMetricsTests.get(adminPort, "/metrics").body
        #expect(metrics.contains(#"wsgate_reloads_total{result="refused"} 1"#), "\(metrics)")
        #expect(try await TLSTestClient.upgrade(port: port, sessionReuse: false) == ("CN=first", 101))

        try files.install(commonName: "second")
        gateway.signal(SIGHUP)
        try await gateway.waitFor("the reload log line") { _, err in err.contains("configuration reloaded") }
        #expect(try await TLSTestClient.upgrade(port: port, sessionReuse: false) == ("CN=second", 101))
        gateway.signal(SIGTERM)
        #expect(try await gateway.waitForExit(timeout: .seconds(10)).status == 0, "\(gateway.errors)")
    }
}
