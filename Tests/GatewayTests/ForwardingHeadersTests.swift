import Testing

@testable import Gateway

/// The forwarding-header rewrite (issue #11 §1): nothing a client writes reaches the upstream as a
/// statement about the client unless the peer is a trusted proxy; the gateway's own values appear
/// exactly once, RFC 7239 values quoted where the grammar needs it.
@Suite struct ForwardingHeadersTests {
    static let forged: [(name: String, value: String)] = [
        ("X-Forwarded-For", "1.2.3.4"), ("x-forwarded-proto", "https"), ("X-Forwarded-Host", "bank.example"),
        ("X-Forwarded-Port", "443"), ("X-Forwarded-Prefix", "/admin"), ("X-Forwarded-Ssl", "on"), ("X-Real-IP", "1.2.3.4"),
        ("True-Client-IP", "1.2.3.4"), ("X-Client-IP", "1.2.3.4"), ("Forwarded", "for=1.2.3.4;proto=https"),
        ("X-Forwarded-For", "5.6.7.8"), ("FORWARDED", "for=9.9.9.9"),
    ]

    static func hop(_ peer: String?, trusted: Bool, tls: Bool = false, host: String = "gw.example:8443") -> ForwardingHeaders.Hop {
        .init(peer: peer.flatMap { IPAddress($0) }, peerIsTrusted: trusted, usedTLS: tls, host: HostHeader(host)!)
    }

    static func names(_ headers: [(String, String)]) -> [String] { headers.map { $0.0.lowercased() } }

    /// Catalog H-13: from an untrusted peer every client-sent forwarding header is removed and the gateway's own set once.
    @Test func fromAnUntrustedPeerEveryClientForwardingHeaderIsReplacedOnce() {
        let headers = ForwardingHeaders.headers(incoming: Self.forged, hop: Self.hop("203.0.113.9", trusted: false, tls: true))
        #expect(
            headers.map { "\($0.0): \($0.1)" } == [
                "X-Forwarded-For: 203.0.113.9",
                "X-Forwarded-Proto: https",
                "X-Forwarded-Host: gw.example:8443",
                #"Forwarded: for=203.0.113.9;host="gw.example:8443";proto=https"#,
            ]
        )
    }

    @Test func fromATrustedPeerTheChainsAreAppendedAndTheProxysViewKept() {
        let headers = ForwardingHeaders.headers(incoming: Self.forged, hop: Self.hop("10.0.0.2", trusted: true))
        let value = { (name: String) in headers.filter { $0.0.lowercased() == name }.map(\.1) }
        #expect(value("x-forwarded-for") == ["1.2.3.4, 5.6.7.8, 10.0.0.2"])
        #expect(value("forwarded") == ["for=1.2.3.4;proto=https, for=9.9.9.9, for=10.0.0.2;host=\"gw.example:8443\";proto=http"])
        #expect(value("x-forwarded-proto") == ["https"])
        #expect(value("x-forwarded-host") == ["bank.example"])
        #expect(value("x-real-ip") == ["1.2.3.4"])
        #expect(value("x-forwarded-port") == ["443"])
        // Each of the four the gateway writes appears once.
        for name in ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"] {
            #expect(Self.names(headers).filter { $0 == name }.count == 1)
        }
    }

    @Test func aTrustedPeerWithoutHeadersGetsTheGatewaysOwn() {
        let headers = ForwardingHeaders.headers(incoming: [], hop: Self.hop("10.0.0.2", trusted: true))
        #expect(headers.map(\.1) == ["10.0.0.2", "http", "gw.example:8443", #"for=10.0.0.2;host="gw.example:8443";proto=http"#])
    }

    @Test(
        arguments: [
            ("::1", "example.com", #"for="[::1]";host=example.com;proto=http"#),
            ("2001:db8::7", "[2001:db8::1]:8443", #"for="[2001:db8::7]";host="[2001:db8::1]:8443";proto=http"#),
            ("192.0.2.1", "a.example", "for=192.0.2.1;host=a.example;proto=http"),
            (nil, "a.example", "for=unknown;host=a.example;proto=http"),
        ] as [(String?, String, String)]
    )
    func forwardedElementsFollowRFC7239(peer: String?, host: String, expected: String) {
        #expect(ForwardingHeaders.forwardedElement(for: peer.flatMap { IPAddress($0) }, host: host, proto: "http") == expected)
    }

    @Test func nonTokenValuesAreQuotedAndEscaped() {
        #expect(ForwardingHeaders.value("a\"b\\c") == #""a\"b\\c""#)
        #expect(ForwardingHeaders.value("") == #""""#)
        #expect(ForwardingHeaders.value("a;b,c=d") == #""a;b,c=d""#)
        #expect(ForwardingHeaders.value("token-ok") == "token-ok")
    }

    @Test func headerValuesWithControlCharactersAreNotPassedFromATrustedPeer() {
        let headers = ForwardingHeaders.headers(incoming: [("X-Real-IP", "1.2.3.4\r\nX-Evil: 1")], hop: Self.hop("10.0.0.2", trusted: true))
        #expect(!Self.names(headers).contains("x-real-ip"))
    }

    // MARK: Client address

    static let trusted = TrustedProxies(["10.0.0.0/8", "fd00::/8"].compactMap { IPAddressRange($0) })

    @Test(
        arguments: [
            // (peer, X-Forwarded-For, source, expected)
            ("203.0.113.9", ["1.2.3.4"], ClientAddressSource.chain, "203.0.113.9"),  // untrusted peer: its header is ignored
            ("10.0.0.2", ["1.2.3.4"], .chain, "1.2.3.4"),
            ("10.0.0.2", ["1.2.3.4, 10.0.0.7"], .chain, "1.2.3.4"),  // right-most untrusted
            ("10.0.0.2", ["6.6.6.6, 1.2.3.4, 10.0.0.7"], .chain, "1.2.3.4"),  // a forged left part is never reached
            ("10.0.0.2", ["6.6.6.6", "1.2.3.4"], .chain, "1.2.3.4"),  // several header lines are one list
            ("10.0.0.2", ["10.0.0.9, 10.0.0.7"], .chain, "10.0.0.9"),  // all trusted: the left-most
            ("10.0.0.2", ["1.2.3.4, garbage, 10.0.0.7"], .chain, "10.0.0.7"),  // not an address: stop at the hop that sent it
            ("10.0.0.2", [], .chain, "10.0.0.2"),
            ("fd00::1", ["2001:db8::5"], .chain, "2001:db8::5"),
            ("10.0.0.2", ["1.2.3.4"], .peer, "10.0.0.2"),
        ] as [(String, [String], ClientAddressSource, String)]
    )
    func clientAddressResolution(peer: String, forwardedFor: [String], source: ClientAddressSource, expected: String) {
        let client = ForwardingHeaders.clientAddress(peer: IPAddress(peer), forwardedFor: forwardedFor, source: source, trusted: Self.trusted)
        #expect(client?.description == expected)
    }
}
