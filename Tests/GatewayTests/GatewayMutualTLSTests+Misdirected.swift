import Foundation
import MetricsTestKit
import TLSShim
import Testing

@testable import Gateway

extension GatewayMutualTLSTests {
    /// Catalog T-04: over real sockets (Python `ssl`), a handshake under a name that asks for no certificate followed by a Host that requires one (or by no SNI) is 421 with Connection: close and never reaches the upstream; a Host with the same client-certificate settings as the SNI name is upgraded (101).
    @Test func aHostWhoseNameHasOtherClientAuthenticationIs421() async throws {
        guard try await PythonPeer.require("ssl") else { return }
        let files = try Files()
        let metrics = TestMetrics()
        let upstream = try await FakeUpstream.start { .accept($0) }
        defer { Task { await upstream.close() } }
        try await withGateway(
            upstreamPort: upstream.port,
            metrics: metrics,
            configure: {
                var tls = files.tls()
                tls.virtualHosts += [
                    TLSVirtualHost(serverNames: ["open2.test"], identity: files.server.identity),
                    TLSVirtualHost(
                        serverNames: ["secure2.test"],
                        identity: files.server.identity,
                        clientAuthentication: TLSClientAuthentication(trustRoots: .file(files.path("clients-ca.pem")))
                    ),
                ]
                $0.listeners[0].tls = tls
                $0.timeouts.close = .milliseconds(100)
            }
        ) { port in
            let script = """
                import socket, ssl, sys
                port, directory = int(sys.argv[1]), sys.argv[2]
                upgrade = sys.argv[3].encode().decode("unicode_escape")
                def attempt(label, sni, host, path, cert=None):
                    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                    if cert:
                        ctx.load_cert_chain(f"{directory}/{cert}.pem", f"{directory}/{cert}.key")
                    try:
                        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                            with ctx.wrap_socket(raw, server_hostname=sni) as tls:
                                tls.sendall(f"GET {path} HTTP/1.1\\r\\nHost: {host}\\r\\n{upgrade}\\r\\n".encode())
                                answer = b""
                                try:
                                    while b"\\r\\n\\r\\n" not in answer:
                                        chunk = tls.recv(4096)
                                        if not chunk:
                                            break
                                        answer += chunk
                                except (ssl.SSLError, ConnectionError):
                                    pass
                                text = answer.decode(errors="replace")
                                status = text.split("\\r\\n")[0] if text else "closed"
                                close = "close" if "\\r\\nconnection: close\\r\\n" in text.lower() else "keep"
                                print(label, status, close, flush=True)
                    except (ssl.SSLError, ConnectionError) as error:
                        print(label, "tls-error", str(error), flush=True)
                attempt("A", "open.test", "secure.test", "/a")
                attempt("B", "open.test", "Secure.Test:443", "/b")
                attempt("C", None, "secure.test", "/c")
                attempt("D", "open.test", "open2.test", "/d")
                attempt("E", "secure.test", "secure2.test", "/e", "good")
                attempt("F", "open.test", "open.test", "/f")
                """
            let run = try await runPython(
                ["-c", script, "\(port)", files.directory, Self.upgrade.replacingOccurrences(of: "\r\n", with: "\\r\\n")],
                timeout: .seconds(60)
            )
            #expect(run.status == 0, "\(run.output)")
            let lines = Dictionary(
                uniqueKeysWithValues: run.output.split(separator: "\n").compactMap { line -> (String, String)? in
                    let parts = line.split(separator: " ", maxSplits: 1)
                    return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
                }
            )
            for label in ["A", "B", "C"] {
                #expect(lines[label]?.hasPrefix("HTTP/1.1 421") == true, "\(label): \(run.output)")
                #expect(lines[label]?.hasSuffix("close") == true, "\(label): \(run.output)")
            }
            for label in ["D", "E", "F"] {
                #expect(lines[label]?.hasPrefix("HTTP/1.1 101") == true, "\(label): \(run.output)")
            }
            let paths = Set(upstream.requests.map { String($0.head.split(separator: " ")[1]) })
            #expect(paths == ["/d", "/e", "/f"], "\(paths)")
            #expect(metrics.total("wsgate_upgrades_refused_total", [("reason", "sni-host-mismatch"), ("status", "421")]) == 3)
        }
    }
}
