import Foundation
import MetricsTestKit
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
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-reload-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        func install(_ commonName: String) throws {
            let certificate = try TLSCertificateGenerator.make(
                TLSCertificateRequest(commonName: commonName) { $0.dnsNames = ["localhost"] },
                issuedBy: GatewayTLSTests.ca
            )
            try certificate.certificatePEM.write(toFile: path("cert.pem"), atomically: true, encoding: .utf8)
            try certificate.privateKeyPEM.write(toFile: path("key.pem"), atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path("key.pem"))  // PrivateKeyFiles
        }
        try GatewayTLSTests.ca.certificatePEM.write(toFile: path("ca.pem"), atomically: true, encoding: .utf8)
        try install("first")

        try await withDemo { demo in
            try await withGatewayServer(
                upstreamPort: demo.port,
                metrics: metrics,
                configure: {
                    $0.listeners[0].tls = TLSServerConfiguration(
                        defaultIdentity: TLSIdentity(certificateChain: .file(path("cert.pem")), privateKey: .file(path("key.pem")))
                    )
                }
            ) { server, port in
                let peer = try PythonPeer(script: Self.script, arguments: ["\(port)", path("ca.pem"), path("go")])
                defer { peer.stop() }
                #expect(try await peer.firstLine() == "live first")

                // New certificate files and a new route table (/echo only): a reload.
                try install("second")
                var configuration = server.configuration
                configuration.routes[0].pathPrefix = "/echo"
                try await server.reload(configuration: configuration)
                #expect(server.configuration.routes[0].pathPrefix == "/echo")
                _ = FileManager.default.createFile(atPath: path("go"), contents: nil)

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
                // Certificates that do not load.
                var broken = before
                broken.listeners[0].tls = TLSServerConfiguration(
                    defaultIdentity: TLSIdentity(certificateChain: .file("/nonexistent/cert.pem"), privateKey: .file("/nonexistent/key.pem"))
                )
                broken.routes[0].pathPrefix = "/nowhere"
                await #expect(throws: (any Error).self) { try await server.reload(configuration: broken) }
                // A changed listener address: refused (addresses are bound at start).
                var moved = before
                moved.listeners[0].port = 1
                let error = await #expect(throws: GatewayError.self) { try await server.reload(configuration: moved) }
                #expect(error?.description.contains("restart") == true)
                #expect(server.configuration == before)
                #expect(metrics.total("wsgate_reloads_total", [("result", "refused")]) == 2)
                // New connections still use the old routes.
                let client = try await TestWebSocketClient.connect(port: port, path: "/echo")
                try await client.send(text: "still here")
                #expect(try await client.receiveMessage() == .text("still here"))
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
                try await Task.sleep(for: .milliseconds(100))
                #expect(lines(log) == 1)
                // logrotate's way: move the file, then SIGHUP (here: reload the same configuration).
                try FileManager.default.moveItem(atPath: log, toPath: log + ".1")
                try await server.reload(configuration: server.configuration)
                try await oneConnection()
                try await Task.sleep(for: .milliseconds(100))
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
}
