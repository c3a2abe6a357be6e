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
        try await withGatewayAndRecordingUpstream(
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
        ) { port, upstream in
            let run = try await PythonTLSClient.run(
                [
                    PythonTLSAttempt(label: "A", sni: "open.test", host: "secure.test", path: "/a"),
                    PythonTLSAttempt(label: "B", sni: "open.test", host: "Secure.Test:443", path: "/b"),
                    PythonTLSAttempt(label: "C", sni: nil, host: "secure.test", path: "/c"),
                    PythonTLSAttempt(label: "D", sni: "open.test", host: "open2.test", path: "/d"),
                    PythonTLSAttempt(label: "E", sni: "secure.test", host: "secure2.test", path: "/e", certificate: "good"),
                    PythonTLSAttempt(label: "F", sni: "open.test", host: "open.test", path: "/f"),
                ],
                port: port,
                certificates: files.directory
            )
            #expect(run.status == 0, "\(run.output)")
            let lines = run.answers
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
