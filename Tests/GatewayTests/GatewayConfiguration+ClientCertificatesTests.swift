import Foundation
import NIOHTTP1
import TLSShim
import Testing

@testable import Gateway

/// `client_auth` on listeners and SNI entries, `client_cert` on routes (issue #13 §1), and the
/// `X-Forwarded-Client-Cert` value and its place in the upstream request.
@Suite struct GatewayConfigurationClientCertificatesTests {
    static func parse(_ tls: String, route: String = "") throws(ConfigurationError) -> GatewayConfiguration {
        try GatewayConfiguration(
            yaml: """
                listeners: [{address: "127.0.0.1:8443", tls: {certificate: c.pem, key: k.pem\(tls)}}]
                routes: [{upstreams: ["ws://127.0.0.1:9000"]\(route)}]
                """,
            baseDirectory: "/etc/wsgate"
        )
    }

    static func error(_ tls: String, route: String = "") -> ConfigurationError? {
        do {
            _ = try Self.parse(tls, route: route)
            return nil
        } catch {
            return error
        }
    }

    @Test func clientAuthOnTheListenerAndPerName() throws {
        let configuration = try Self.parse(
            """
            , client_auth: {ca: clients.pem, mode: optional, depth: 0},
              sni: [{names: [a.test], certificate: a.pem, key: a.key, client_auth: {ca: /abs/a-ca.pem}},
                    {names: [b.test], certificate: b.pem, key: b.key}]
            """
        )
        let tls = try #require(configuration.listeners[0].tls)
        #expect(tls.clientAuthentication == TLSClientAuthentication(trustRoots: .file("/etc/wsgate/clients.pem"), mode: .optional, verifyDepth: 0))
        // Defaults: require, depth 2; a name without client_auth asks for nothing (no inheritance).
        #expect(
            tls.virtualHosts[0].clientAuthentication == TLSClientAuthentication(trustRoots: .file("/abs/a-ca.pem"), mode: .require, verifyDepth: 2)
        )
        #expect(tls.virtualHosts[1].clientAuthentication == nil)
        #expect(configuration.routes[0].clientCertificate == .forward)
    }

    @Test func badValuesAreConfigurationErrorsWithTheirKeyPath() {
        let mode = Self.error(", client_auth: {ca: ca.pem, mode: sometimes}")
        #expect(mode?.code == .invalidValue)
        #expect(mode?.keyPath == "listeners[0].tls.client_auth.mode")
        #expect(mode?.message.contains("require or optional") == true)
        let depth = Self.error(", sni: [{names: [a.test], certificate: a.pem, key: a.key, client_auth: {ca: ca.pem, depth: 17}}]")
        #expect(depth?.code == .outOfRange)
        #expect(depth?.keyPath == "listeners[0].tls.sni[0].client_auth.depth")
        let missingCA = Self.error(", client_auth: {mode: require}")
        #expect(missingCA?.code == .missingKey)
        #expect(missingCA?.keyPath == "listeners[0].tls.client_auth.ca")
        let unknown = Self.error(", client_auth: {ca: ca.pem, verify: true}")
        #expect(unknown?.code == .unknownKey)
        let route = Self.error("", route: ", client_cert: always")
        #expect(route?.code == .invalidValue)
        #expect(route?.keyPath == "routes[0].client_cert")
        #expect(route?.message.contains("require, forward or off") == true)
    }

    @Test func aMissingOrUnreadableCAFileIsAStartError() throws {
        var configuration = try Self.parse(", client_auth: {ca: /nonexistent/clients-ca.pem}")
        configuration.listeners[0].tls?.defaultIdentity = TLSGeneratedCertificate.testIdentity.identity
        #expect {
            _ = try GatewayTLS(configuration)
        } throws: { error in
            "\(error)".contains("tls.client_auth.ca") && "\(error)".contains("/nonexistent/clients-ca.pem: no such file")
        }
        configuration.listeners[0].tls?.clientAuthentication = TLSClientAuthentication(trustRoots: .file("/tmp"))
        #expect {
            _ = try GatewayTLS(configuration)
        } throws: { error in
            "\(error)".contains("is a directory")
        }
        // A file that holds no certificate: the context build names it.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-empty-ca-\(UUID().uuidString).pem").path
        try "not a certificate\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        configuration.listeners[0].tls?.clientAuthentication = TLSClientAuthentication(trustRoots: .file(path))
        #expect {
            _ = try GatewayTLS(configuration)
        } throws: { error in
            "\(error)".contains("no PEM certificate")
        }
    }

    // MARK: X-Forwarded-Client-Cert

    @Test func theHeaderValueIsEnvoysFormat() {
        let certificate = TLSPeerCertificate(
            sha256Fingerprint: "ab01",
            subject: #"CN=client,O=Example\, Inc."#,
            uris: ["spiffe://example.test/ns/a/sa/b"],
            dnsNames: ["client.example.test", "alt.example.test"]
        )
        #expect(
            ClientCertificateHeader.value(for: certificate)
                == #"Hash=ab01;Subject="CN=client,O=Example\\, Inc.";URI=spiffe://example.test/ns/a/sa/b;DNS=client.example.test;DNS=alt.example.test"#
        )
        #expect(ClientCertificateHeader.valueText("a;b") == #""a;b""#)
        #expect(ClientCertificateHeader.quoted(#"say "hi""#) == #""say \"hi\"""#)
        #expect(ClientCertificateHeader.value(for: TLSPeerCertificate(sha256Fingerprint: "00", subject: "")) == #"Hash=00;Subject="""#)
    }
}

extension GatewayConfigurationClientCertificatesTests {
    /// A client-sent `X-Forwarded-Client-Cert` (any spelling, repeated) never reaches the upstream; the
    /// gateway's value is added once when there is a verified certificate to forward.
    @Test(arguments: [true, false])
    func theUpstreamHeadCarriesOnlyTheGatewaysClientCertificateHeader(verified: Bool) throws {
        var headers: HTTPHeaders = [
            "Host": "gw.example", "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
        ]
        headers.add(name: "X-Forwarded-Client-Cert", value: #"Hash=forged;Subject="CN=admin""#)
        headers.add(name: "x-forwarded-client-cert", value: "By=spiffe://evil")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/chat", headers: headers)
        let route = GatewayConfiguration.Route(upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 1)])
        guard case .success(let request) = ClientUpgradeRequest.validate(head, limits: .init(), routes: RouteTable([route])) else {
            Issue.record("the fixture request is invalid")
            return
        }
        let certificate = TLSPeerCertificate(sha256Fingerprint: "ab", subject: "CN=client", uris: [], dnsNames: ["c.test"])
        let upstreamHead = UpstreamHandshake(subprotocolsOffered: []).requestHead(
            for: request,
            upstream: route.upstreams[0],
            peer: nil,
            peerIsTrusted: false,
            clientUsedTLS: true,
            clientCertificate: verified ? certificate : nil
        )
        #expect(upstreamHead.decodedRequestHead?.headers["X-Forwarded-Client-Cert"] == (verified ? [#"Hash=ab;Subject="CN=client";DNS=c.test"#] : []))
    }
}

extension TLSGeneratedCertificate {
    /// A throwaway server identity for configurations that must build a context.
    static let testIdentity = try! TLSCertificateGenerator.selfSigned(TLSCertificateRequest(commonName: "localhost"))
}
