import Foundation
import MetricsTestKit
import NIOPosix
import TLSShim
import TestPeers
import Testing

@testable import Gateway

/// Client certificates on a TLS listener over real sockets (issue #13 §1): independent peers (Python
/// `ssl`, `openssl s_client`) with certificates generated into a temporary directory, a scripted
/// upstream that records what arrived, and the gateway's metrics and access log.
///
/// The listener: the default (no SNI, `localhost`) asks in `optional` mode, `secure.test` requires a
/// certificate, `open.test` asks for none; all trust `clients-ca.pem`.
@Suite(.serialized, .timeLimit(.minutes(3))) struct GatewayMutualTLSTests {
    /// PEM files of one test run; removed on deinit.
    final class Files: Sendable {
        let directory: String
        let server: TLSGeneratedCertificate
        let clientCA: TLSGeneratedCertificate
        let otherCA: TLSGeneratedCertificate
        /// The client certificate's SHA-256, as `openssl x509 -fingerprint` prints it (lower case, no colons).
        let clientFingerprint: String

        init() throws {
            self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-mtls-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
            let ca = { (name: String) in
                try TLSCertificateGenerator.selfSigned(TLSCertificateRequest(commonName: name) { $0.isCertificateAuthority = true })
            }
            self.clientCA = try ca("wsgate clients CA")
            self.otherCA = try ca("other CA")
            self.server = try TLSCertificateGenerator.selfSigned(
                TLSCertificateRequest(commonName: "localhost") { $0.dnsNames = ["localhost", "secure.test", "open.test"] }
            )
            func client(_ issuer: TLSGeneratedCertificate, expired: Bool = false) throws -> TLSGeneratedCertificate {
                try TLSCertificateGenerator.make(
                    TLSCertificateRequest(commonName: "client.example.test") {
                        $0.dnsNames = ["client.example.test"]
                        $0.uris = ["spiffe://example.test/client"]
                        if expired {
                            $0.notBefore = -7_200
                            $0.notAfter = -3_600
                        }
                    },
                    issuedBy: issuer
                )
            }
            let good = try client(self.clientCA)
            let files: [(String, String)] = [
                ("clients-ca.pem", self.clientCA.certificatePEM), ("other-ca.pem", self.otherCA.certificatePEM),
                ("good.pem", good.certificatePEM), ("good.key", good.privateKeyPEM),
            ]
            for (name, text) in files { try text.write(toFile: "\(self.directory)/\(name)", atomically: true, encoding: .utf8) }
            for (name, certificate) in [("other", try client(self.otherCA)), ("expired", try client(self.clientCA, expired: true))] {
                try certificate.certificatePEM.write(toFile: "\(self.directory)/\(name).pem", atomically: true, encoding: .utf8)
                try certificate.privateKeyPEM.write(toFile: "\(self.directory)/\(name).key", atomically: true, encoding: .utf8)
            }
            let run = try runTool(
                try TestPeers.executable("openssl", package: "openssl"),
                ["x509", "-in", "\(self.directory)/good.pem", "-noout", "-fingerprint", "-sha256"]
            )
            self.clientFingerprint = (run.output.split(separator: "=").last.map(String.init) ?? "")
                .trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: ":", with: "").lowercased()
        }

        func path(_ name: String) -> String { "\(self.directory)/\(name)" }

        deinit { try? FileManager.default.removeItem(atPath: self.directory) }

        /// The listener's TLS: optional by default, required on `secure.test` (trusting `ca`), none on `open.test`.
        func tls(secureCA: String = "clients-ca.pem") -> TLSServerConfiguration {
            TLSServerConfiguration(defaultIdentity: self.server.identity) {
                $0.clientAuthentication = TLSClientAuthentication(trustRoots: .file(self.path("clients-ca.pem")), mode: .optional)
                $0.virtualHosts = [
                    TLSVirtualHost(
                        serverNames: ["secure.test"],
                        identity: self.server.identity,
                        clientAuthentication: TLSClientAuthentication(trustRoots: .file(self.path(secureCA)))
                    ),
                    TLSVirtualHost(serverNames: ["open.test"], identity: self.server.identity),
                ]
            }
        }
    }

    /// Issue #13 §1. Missing, untrusted and expired certificates fail the handshake with
    /// their alert and class; a verified one reaches the upstream as `X-Forwarded-Client-Cert`; a
    /// client-sent copy never does; per route `require` (403) and `off`.
    @Test func certificatesAreCheckedPerNameAndForwardedPerRoute() async throws {
        guard try await PythonPeer.require("ssl") else { return }
        let files = try Files()
        let metrics = TestMetrics()
        let upstream = try await FakeUpstream.start { .accept($0) }
        defer { Task { await upstream.close() } }
        let log = files.path("access.log")
        try await withGateway(
            upstreamPort: upstream.port,
            metrics: metrics,
            configure: {
                $0.listeners[0].tls = files.tls()
                var required = $0.routes[0]
                required.pathPrefix = "/req"
                required.clientCertificate = .require
                var off = $0.routes[0]
                off.pathPrefix = "/off"
                off.clientCertificate = .off
                $0.routes += [required, off]
                $0.accessLog = .file(log)
                // The scripted upstream never answers a Close: relayed connections end (and are logged) soon.
                $0.timeouts.close = .milliseconds(100)
            }
        ) { port in
            // Every request carries a forged copy of the header the gateway sets.
            let forged = "X-Forwarded-Client-Cert: Hash=forged;Subject=\"CN=admin\"\r\n"
            let cases: [(label: String, name: String, path: String, certificate: String?)] = [
                ("A", "secure.test", "/a", "good"), ("B", "secure.test", "/b", nil), ("C", "secure.test", "/c", "other"),
                ("D", "secure.test", "/d", "expired"), ("E", "open.test", "/e", "good"), ("F", "localhost", "/req/f", nil),
                ("G", "localhost", "/req/g", "good"), ("H", "localhost", "/off/h", "good"), ("I", "localhost", "/i", nil),
            ]
            let run = try await PythonTLSClient.run(
                cases.map {
                    PythonTLSAttempt(label: $0.label, sni: $0.name, host: $0.name, path: $0.path, certificate: $0.certificate, headers: forged)
                },
                port: port,
                certificates: files.directory
            )
            #expect(run.status == 0, "\(run.output)")
            let lines = run.answers
            #expect(lines["A"]?.hasPrefix("HTTP/1.1 101") == true, "\(run.output)")
            // TLS 1.3 alerts (RFC 8446 §6.2): certificate_required, unknown_ca, certificate_expired.
            #expect(lines["B"]?.contains("CERTIFICATE_REQUIRED") == true, "\(run.output)")
            #expect(lines["C"]?.contains("UNKNOWN_CA") == true, "\(run.output)")
            #expect(lines["D"]?.contains("CERTIFICATE_EXPIRED") == true, "\(run.output)")
            #expect(lines["E"]?.hasPrefix("HTTP/1.1 101") == true, "\(run.output)")
            #expect(lines["F"]?.hasPrefix("HTTP/1.1 403") == true, "\(run.output)")
            #expect(lines["G"]?.hasPrefix("HTTP/1.1 101") == true, "\(run.output)")
            #expect(lines["H"]?.hasPrefix("HTTP/1.1 101") == true, "\(run.output)")
            #expect(lines["I"]?.hasPrefix("HTTP/1.1 101") == true, "\(run.output)")

            let byPath = Dictionary(
                uniqueKeysWithValues: upstream.requests.map { request in
                    (String(request.head.split(separator: " ")[1]), request.header("X-Forwarded-Client-Cert"))
                }
            )
            #expect(Set(byPath.keys) == ["/a", "/e", "/req/g", "/off/h", "/i"])
            let expected =
                "Hash=\(files.clientFingerprint);Subject=\"CN=client.example.test\";URI=spiffe://example.test/client;DNS=client.example.test"
            #expect(byPath["/a"] == .some(expected))
            #expect(byPath["/req/g"] == .some(expected))
            // Not asked (open.test), not forwarded (off), none sent: the forged copy is gone all the same.
            #expect(byPath["/e"] == .some(nil))
            #expect(byPath["/off/h"] == .some(nil))
            #expect(byPath["/i"] == .some(nil))
            #expect(upstream.requests.allSatisfy { !$0.head.contains("forged") })

            await metrics.eventually {
                metrics.total("wsgate_tls_handshake_failures_total", [("leg", "client")]) == 3
                    && metrics.total("wsgate_close_codes_total", [("side", "client"), ("code", "1015")]) == 3
            }
            for (tlsClass, outcome) in [
                ("client_certificate_required", "missing"), ("client_certificate_untrusted", "untrusted"), ("client_certificate_expired", "expired"),
            ] {
                #expect(metrics.total("wsgate_tls_handshake_failures_total", [("leg", "client"), ("class", tlsClass)]) == 1, "\(tlsClass)")
                #expect(metrics.total("wsgate_client_certificates_total", [("outcome", outcome)]) == 1, "\(outcome)")
            }
            #expect(metrics.total("wsgate_client_certificates_total", [("outcome", "verified")]) == 3)
            #expect(metrics.total("wsgate_client_certificates_total", [("outcome", "not_presented")]) == 2)
            #expect(metrics.total("wsgate_upgrades_refused_total", [("reason", "client-certificate-required"), ("status", "403")]) == 1)
            // Relayed connections are logged when they end.
            var logLines: [Substring] = []
            let deadline = ContinuousClock.now + .seconds(10)
            repeat {
                try await Task.sleep(for: .milliseconds(50))
                logLines = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n")
            } while logLines.count < 9 && ContinuousClock.now < deadline
            #expect(logLines.filter { $0.contains(#""client_cert_subject":"CN=client.example.test""#) }.count == 3, "\(logLines)")
            #expect(logLines.contains { $0.contains("\"close_code\":1015") && $0.contains("client certificate required") }, "\(logLines)")
        }
    }

    /// One `openssl s_client` run: `input` on stdin, `-ign_eof` so it reads until the gateway closes.
    static func sClient(port: Int, _ arguments: [String]) throws -> String {
        let request = "GET /not-an-upgrade HTTP/1.1\r\nHost: x\r\n\r\n"
        return try runTool(
            try TestPeers.executable("openssl", package: "openssl"),
            ["s_client", "-connect", "127.0.0.1:\(port)", "-ign_eof"] + arguments,
            input: request
        ).output
    }

    /// Issue #13 §1 "session resumption never skips a check". A session made on
    /// `open.test` (no certificate asked) resumes there (control) and never on `secure.test`: offered
    /// there by session ID, ticket or TLS 1.3 PSK, it gets a full handshake that asks for the
    /// certificate and fails without one.
    @Test(arguments: [
        ["-tls1_2", "-no_ticket"],  // TLS 1.2 session ID
        ["-tls1_2"],  // TLS 1.2 ticket
        ["-tls1_3"],  // TLS 1.3 PSK
    ])
    func aSessionFromANameWithoutClientAuthNeverResumesOnOneThatRequiresIt(flags: [String]) async throws {
        let files = try Files()
        let metrics = TestMetrics()
        let session = files.path("session.pem")
        try await withGatewayAndDemo(metrics: metrics, configure: { $0.listeners[0].tls = files.tls() }) { port in
            let first = try Self.sClient(port: port, flags + ["-servername", "open.test", "-sess_out", session])
            #expect(first.contains("New,"), "\(first)")
            let control = try Self.sClient(port: port, flags + ["-servername", "open.test", "-sess_in", session])
            #expect(control.contains("Reused,"), "the control must resume: \(control)")

            let crossed = try Self.sClient(port: port, flags + ["-servername", "secure.test", "-sess_in", session])
            #expect(!crossed.contains("Reused,"), "\(crossed)")
            #expect(crossed.contains("Acceptable client certificate CA names"), "a full handshake asks for the certificate: \(crossed)")
            await metrics.eventually {
                metrics.total("wsgate_tls_handshake_failures_total", [("class", "client_certificate_required")]) == 1
            }
            #expect(metrics.total("wsgate_tls_handshake_failures_total", [("class", "client_certificate_required")]) == 1)
            #expect(metrics.total("wsgate_client_certificates_total", [("outcome", "verified")]) == 0)
        }
    }

    /// Issue #13 §1 with Python's `ssl` as the peer: a session made on `open.test` is reused there
    /// (control) and, offered on `secure.test`, is not: the full handshake asks for the certificate.
    @Test func pythonSessionReuseNeverCrossesIntoANameThatRequiresACertificate() async throws {
        guard try await PythonPeer.require("ssl") else { return }
        let files = try Files()
        let metrics = TestMetrics()
        try await withGatewayAndDemo(metrics: metrics, configure: { $0.listeners[0].tls = files.tls() }) { port in
            let script = """
                import socket, ssl, sys
                port = int(sys.argv[1])
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                def visit(name, session=None):
                    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                        with ctx.wrap_socket(raw, server_hostname=name, session=session) as tls:
                            tls.sendall(b"GET /not-an-upgrade HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
                            try:
                                while tls.recv(4096):
                                    pass
                            except ssl.SSLEOFError:
                                pass
                            return tls.session, tls.session_reused
                for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
                    ctx.minimum_version = ctx.maximum_version = version
                    session, _ = visit("open.test")
                    _, reused = visit("open.test", session)
                    print(version.name, "control-reused", reused, flush=True)
                    try:
                        _, reused = visit("secure.test", session)
                        print(version.name, "crossed-connected reused", reused, flush=True)
                    except (ssl.SSLError, ConnectionError) as error:
                        print(version.name, "crossed-refused", error, flush=True)
                """
            let run = try await runPython(["-c", script, "\(port)"], timeout: .seconds(60))
            #expect(run.status == 0, "\(run.output)")
            for version in ["TLSv1_2", "TLSv1_3"] {
                #expect(run.output.contains("\(version) control-reused True"), "\(run.output)")
                #expect(run.output.contains("\(version) crossed-refused"), "\(run.output)")
            }
            await metrics.eventually {
                metrics.total("wsgate_tls_handshake_failures_total", [("class", "client_certificate_required")]) == 2
            }
            #expect(metrics.total("wsgate_tls_handshake_failures_total", [("class", "client_certificate_required")]) == 2)
        }
    }

    /// Issue #13 §1 SIGHUP. A reload that no longer trusts the client's CA takes effect
    /// for the next handshake, resumed or not (a session from before the reload is not resumed), and a
    /// live connection keeps the context it was accepted with.
    @Test(arguments: [["-tls1_2"], ["-tls1_3"]])
    func aReloadedCAAppliesToNewHandshakesResumedOrNotAndLiveConnectionsKeepTheirs(flags: [String]) async throws {
        guard try await PythonPeer.require("websockets") else { return }
        let files = try Files()
        let metrics = TestMetrics()
        let session = files.path("session.pem")
        let certificate = ["-cert", files.path("good.pem"), "-key", files.path("good.key")]
        try await withDemo { demo in
            try await withGatewayServer(upstreamPort: demo.port, metrics: metrics, configure: { $0.listeners[0].tls = files.tls() }) { server, port in
                let first = try Self.sClient(port: port, flags + certificate + ["-servername", "secure.test", "-sess_out", session])
                #expect(first.contains("New,"), "\(first)")
                let control = try Self.sClient(port: port, flags + certificate + ["-servername", "secure.test", "-sess_in", session])
                #expect(control.contains("Reused,"), "the control must resume: \(control)")

                // A live WebSocket over secure.test, then the reload, then the same socket again.
                let script = """
                    import asyncio, os, ssl, sys
                    from websockets.asyncio.client import connect
                    port, directory = sys.argv[1], sys.argv[2]
                    def context(cert):
                        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                        ctx.check_hostname = False
                        ctx.verify_mode = ssl.CERT_NONE
                        ctx.load_cert_chain(f"{directory}/{cert}.pem", f"{directory}/{cert}.key")
                        return ctx
                    async def main():
                        # Host must name secure.test too: a Host with other client-certificate settings is 421.
                        uri = f"wss://secure.test:{port}/echo"
                        at = dict(host="127.0.0.1", port=int(port), server_hostname="secure.test")
                        async with connect(uri, ssl=context("good"), **at) as ws:
                            await ws.send("before")
                            assert await ws.recv() == "before"
                            open(f"{directory}/ready", "w").close()
                            for _ in range(400):
                                if os.path.exists(f"{directory}/reloaded"):
                                    break
                                await asyncio.sleep(0.05)
                            await ws.send("after")
                            assert await ws.recv() == "after"
                            print("LIVE-OK", flush=True)
                        try:
                            async with connect(uri, ssl=context("good"), **at) as ws:
                                await ws.send("x")
                                await ws.recv()
                            print("NEW-CONNECTED", flush=True)
                        except Exception as error:
                            print("NEW-REFUSED", error, flush=True)
                        async with connect(uri, ssl=context("other"), **at) as ws:
                            await ws.send("other")
                            assert await ws.recv() == "other"
                            print("OTHER-OK", flush=True)
                    asyncio.run(main())
                    """
                let python = Task { try await runPython(["-c", script, "\(port)", files.directory], timeout: .seconds(60)) }
                let deadline = ContinuousClock.now + .seconds(30)
                while !FileManager.default.fileExists(atPath: files.path("ready")) && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                var reloaded = server.environment.configuration
                reloaded.listeners[0].tls = files.tls(secureCA: "other-ca.pem")
                try await server.reload(configuration: reloaded)
                _ = FileManager.default.createFile(atPath: files.path("reloaded"), contents: nil)
                let run = try await python.value
                #expect(run.output.contains("LIVE-OK"), "\(run.output)")
                #expect(run.output.contains("NEW-REFUSED"), "\(run.output)")
                #expect(run.output.contains("OTHER-OK"), "\(run.output)")

                let resumed = try Self.sClient(port: port, flags + certificate + ["-servername", "secure.test", "-sess_in", session])
                #expect(!resumed.contains("Reused,"), "\(resumed)")
                await metrics.eventually {
                    metrics.total("wsgate_tls_handshake_failures_total", [("class", "client_certificate_untrusted")]) == 2
                }
                #expect(metrics.total("wsgate_tls_handshake_failures_total", [("class", "client_certificate_untrusted")]) == 2)
            }
        }
    }
}

/// Runs a tool to completion with `input` on stdin (then EOF), bounded by `timeout` seconds.
func runTool(_ path: String, _ arguments: [String], input: String = "", timeout: Double = 20) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-tool-\(UUID().uuidString).log")
    _ = FileManager.default.createFile(atPath: output.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: output) }
    let handle = try FileHandle(forWritingTo: output)
    defer { try? handle.close() }
    let stdin = Pipe()
    process.standardOutput = handle
    process.standardError = handle
    process.standardInput = stdin
    try process.run()
    stdin.fileHandleForWriting.write(Data(input.utf8))
    try? stdin.fileHandleForWriting.close()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning {
        if Date() >= deadline {
            kill(process.processIdentifier, SIGKILL)  // SIGTERM may stay pending (blocked, inherited)
            process.waitUntilExit()
            return (-1, "timed out after \(timeout) s: " + ((try? String(contentsOf: output, encoding: .utf8)) ?? ""))
        }
        Thread.sleep(forTimeInterval: 0.02)
    }
    return (process.terminationStatus, (try? String(contentsOf: output, encoding: .utf8)) ?? "")
}
