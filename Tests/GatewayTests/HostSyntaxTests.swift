import Testing

@testable import Gateway

/// Host names, listen addresses and upstream URLs (`HostSyntax.swift`). The error cases are in the
/// invalid-document table of `GatewayConfiguration+YAMLTests`, with their key paths.
@Suite struct HostSyntaxTests {
    @Test(arguments: [
        ("ws://127.0.0.1:9000", GatewayConfiguration.Upstream(scheme: .ws, host: "127.0.0.1", port: 9000)),
        ("ws://app", .init(scheme: .ws, host: "app", port: 80)),
        ("wss://app", .init(scheme: .wss, host: "app", port: 443)),
        ("WSS://app.internal:8443/socket", .init(scheme: .wss, host: "app.internal", port: 8443, path: "/socket")),
        ("ws://[::1]:9000/a/b", .init(scheme: .ws, host: "::1", port: 9000, path: "/a/b")),
        ("wss://[2001:db8::1]", .init(scheme: .wss, host: "2001:db8::1", port: 443)),
        ("ws://app/", .init(scheme: .ws, host: "app", port: 80, path: "/")),
    ])
    func upstreamURLs(text: String, expected: GatewayConfiguration.Upstream) throws {
        #expect(try HostSyntax.upstream(text, at: ConfigPath()) == expected)
    }

    @Test(arguments: [
        ("0.0.0.0:8443", "0.0.0.0", 8443),
        ("[::]:8443", "::", 8443),
        ("gateway_1.local:1", "gateway_1.local", 1),
    ])
    func listenAddresses(text: String, host: String, port: Int) throws {
        let address = try HostSyntax.listenAddress(text, at: ConfigPath())
        #expect(address.host == host && address.port == port)
    }

    @Test func hostPatternsAreExactNamesWildcardsOrBracketedIPv6() {
        #expect(HostSyntax.isHostPattern("*.example.com"))
        #expect(HostSyntax.isHostPattern("[::1]"))
        #expect(!HostSyntax.isHostPattern("x.*"))
        #expect(!HostSyntax.isHostPattern("a b"))
        #expect(!HostSyntax.isHostName("-a.example"))
    }
}
