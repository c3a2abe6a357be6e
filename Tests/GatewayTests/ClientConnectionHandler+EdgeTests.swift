import NIOCore
import TLSShim
import Testing

@testable import Gateway

/// The Host against the TLS name the handshake selected (`ClientConnectionHandler+Edge.swift`), in
/// memory: the handler with a made-up ``TLSConnectionInfo``.
@Suite struct ClientConnectionHandlerEdgeTests {
    /// `secure.test` (and `*.secure.test`, `secure2.test`) require certificates from one CA, `open.test`
    /// and `open2.test` ask for none, the default asks in optional mode.
    static let table = try! TLSClientAuthenticationTable(
        hosts: [["secure.test", "*.secure.test"], ["open.test"], ["open2.test"], ["secure2.test"]],
        keys: ["optional", "require", "none", "none", "require"]
    )

    static func info(sni: String?, entry: Int?) -> TLSConnectionInfo {
        TLSConnectionInfo(
            version: .tls1_3,
            cipherSuite: "TLS_AES_128_GCM_SHA256",
            serverName: sni,
            negotiatedProtocol: nil,
            peerCertificateSubject: nil,
            sessionReused: false,
            clientAuthentication: .init(table: Self.table, selectedEntry: entry)
        )
    }

    static func request(host: String) -> [UInt8] {
        Array(
            ("GET /chat HTTP/1.1\r\nHost: \(host)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").utf8
        )
    }

    /// Catalog T-04: a Host that selects a TLS name with other client-certificate settings than the SNI's is 421 Misdirected Request with Connection: close, counted, and nothing reaches an upstream.
    @Test(
        arguments: [
            ("open.test", 1, "secure.test"),
            ("open.test", 1, "SECURE.test:443"),
            ("open.test", 1, "a.secure.test"),
            ("open.test", 1, "gw.example"),  // unmatched Host: the default (optional)
            (nil, nil, "secure.test"),  // no SNI: the default
            ("secure.test", 0, "open.test"),
        ] as [(String?, Int?, String)]
    )
    func aHostWithOtherClientAuthenticationIs421(sni: String?, entry: Int?, host: String) throws {
        let upgrade = try ClientConnectionHandlerTests.Upgrade(clientUsedTLS: true) {
            $0.routes[0].hosts = ["gw.example", "secure.test", "*.secure.test", "open.test"]
        }
        upgrade.handler.clientTLSEstablished(Self.info(sni: sni, entry: entry))
        let request = Self.request(host: host)
        upgrade.deliver(request, to: upgrade.client, cutAt: [request.count / 2])
        let answer = try #require(try ClientConnectionHandlerTests.answer(upgrade.client))
        #expect(answer.status == 421)
        #expect(answer.headers.contains { $0.0.lowercased() == "connection" && $0.1 == "close" })
        #expect(!upgrade.client.isActive)
        #expect(upgrade.connector.targets.isEmpty)
        #expect(upgrade.refusals("sni-host-mismatch") == 1)
        _ = try? upgrade.client.finish(acceptAlreadyClosed: true)
    }

    /// Catalog T-04: a Host naming the SNI's own entry, or another with the same client-certificate settings, is routed by its Host as before.
    @Test(
        arguments: [
            ("open.test", 1, "open2.test"),
            ("open.test", 1, "OPEN.Test:8443"),
            ("secure.test", 0, "secure2.test"),
            ("secure.test", 0, "b.secure.test"),
            ("unknown.test", nil, "gw.example"),
        ] as [(String?, Int?, String)]
    )
    func aHostWithTheSameClientAuthenticationIsRouted(sni: String?, entry: Int?, host: String) throws {
        let upgrade = try ClientConnectionHandlerTests.Upgrade(clientUsedTLS: true) {
            $0.routes[0].hosts = ["gw.example", "open.test", "open2.test", "secure2.test", "*.secure.test"]
        }
        upgrade.handler.clientTLSEstablished(Self.info(sni: sni, entry: entry))
        upgrade.deliver(Self.request(host: host), to: upgrade.client)
        #expect(upgrade.connector.targets == ["127.0.0.1:9001"])
        #expect(try ClientConnectionHandlerTests.answer(upgrade.client) == nil)
        #expect(upgrade.refusals("sni-host-mismatch") == 0)
        upgrade.client.close(promise: nil)
        upgrade.loop.run()
        _ = try? upgrade.client.finish(acceptAlreadyClosed: true)
    }
}
