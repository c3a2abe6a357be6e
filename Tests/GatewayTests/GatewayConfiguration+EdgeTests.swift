import Testing

@testable import Gateway

/// The edge keys of the YAML schema (issue #11): `trusted_proxies`, `client_address`,
/// `listeners[].proxy_protocol`, `listeners[].require_sni_host_match`, `timeouts.proxy_header`.
@Suite struct GatewayConfigurationEdgeTests {
    private static func document(listener: String = "", extra: String = "") -> String {
        """
        listeners: [{address: "127.0.0.1:8080"\(listener)}]
        routes: [{upstreams: ["ws://127.0.0.1:9000"]}]
        \(extra)
        """
    }

    static let tls = ", tls: {certificate: a.pem, key: a.key}"

    @Test func everyEdgeKeyIsRead() throws {
        let yaml = Self.document(
            listener: ", proxy_protocol: v2",
            extra: """
                trusted_proxies: [10.0.0.0/8, "fd00::/8", 192.0.2.7]
                client_address: chain
                timeouts: {proxy_header: 2s}
                """
        )
        let configuration = try GatewayConfiguration(yaml: yaml)
        #expect(configuration.trustedProxies == ["10.0.0.0/8", "fd00::/8", "192.0.2.7"])
        #expect(configuration.clientAddress == .chain)
        #expect(configuration.listeners[0].proxyProtocol == .v2)
        #expect(configuration.timeouts.proxyHeader == .seconds(2))
        #expect(configuration.compiledTrustedProxies.contains("10.1.2.3"))
        let sni = try GatewayConfiguration(yaml: Self.document(listener: Self.tls + ", require_sni_host_match: true"))
        #expect(sni.listeners[0].requireSNIHostMatch)
    }

    @Test func defaultsTrustNobody() throws {
        let configuration = try GatewayConfiguration(yaml: Self.document())
        #expect(configuration.trustedProxies.isEmpty)
        #expect(configuration.clientAddress == .peer)
        #expect(configuration.listeners[0].proxyProtocol == .off)
        #expect(!configuration.listeners[0].requireSNIHostMatch)
        #expect(configuration.timeouts.proxyHeader == .seconds(5))
    }

    @Test(arguments: [
        (document(extra: "trusted_proxies: [10.0.0.0/33]"), "trusted_proxies[0]", "is not an IP address or CIDR block"),
        (document(extra: "trusted_proxies: [1.2.3.4, proxy.example]"), "trusted_proxies[1]", "is not an IP address or CIDR block"),
        (document(extra: "client_address: header"), "client_address", "use peer or chain"),
        (document(listener: ", proxy_protocol: v3", extra: "trusted_proxies: [10.0.0.1]"), "listeners[0].proxy_protocol", "use off, v1, v2 or any"),
        (document(listener: ", proxy_protocol: any"), "listeners[0].proxy_protocol", "needs trusted_proxies"),
        (document(listener: ", require_sni_host_match: true"), "listeners[0].require_sni_host_match", "needs tls"),
        (document(extra: "timeouts: {proxy_header: 0s}"), "timeouts.proxy_header", "greater than"),
    ])
    func errorsNameTheirKeyPath(yaml: String, keyPath: String, message: String) {
        do {
            _ = try GatewayConfiguration(yaml: yaml)
            Issue.record("parsed: \(yaml)")
        } catch {
            #expect(error.keyPath == keyPath, "\(error)")
            #expect(error.message.contains(message), "\(error)")
        }
    }
}
