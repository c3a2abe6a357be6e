import NIOHTTP1
import Testing

@testable import Gateway

/// Strict `Host` validation (issue #11 §2): a reg-name of RFC 3986 unreserved characters or an IPv6
/// literal `inet_pton` accepts, optional port of digits; everything else is 400.
@Suite struct HostHeaderTests {
    @Test(
        arguments: [
            ("example.com", "example.com", nil), ("Example.COM:8080", "example.com", 8080), ("[::1]:443", "[::1]", 443),
            ("[::1]", "[::1]", nil), ("[2001:DB8::1]", "[2001:db8::1]", nil), ("127.0.0.1:80", "127.0.0.1", 80),
            ("a_b-c.example~x", "a_b-c.example~x", nil), ("localhost:65535", "localhost", 65535), ("[::ffff:1.2.3.4]", "[::ffff:1.2.3.4]", nil),
        ] as [(String, String, Int?)]
    )
    func validHosts(value: String, host: String, port: Int?) throws {
        let parsed = try #require(HostHeader(value))
        #expect(parsed.host == host)
        #expect(parsed.port == port)
        #expect(parsed.value == value)
    }

    @Test(arguments: [
        // The issue's forgery: the bracketed part was never checked, then written into Forwarded: host="…".
        #"[a",for=6.6.6.6;proto=https;host="b]"#,
        "", ":80", "a:b", "a:80:90", "[::1", "[::1]x", "a b", "a:", "[]", "[::1]:", "[::1]:x", "[zz::1]", "[fe80::1%25eth0]",
        "[v1.abc]", "a,b", "a;b", "a=b", "a\"b", "a%41b", "a/b", "a@b", "a:65536", "a:123456", "a:+80", "ехаmple.com", "a\u{0}b",
        "[::1]]", "[1.2.3.4]", "a:-1", String(repeating: "a", count: 300),
    ])
    func invalidHostsAreRefused(value: String) {
        #expect(HostHeader(value) == nil)
    }

    /// Catalog H-10: a Host value outside the strict authority grammar is 400.
    @Test func theIssuesForgedHostGets400() throws {
        let routes = GatewayConfiguration.Route(upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 1)])
        let head = HTTPTestRequest.head(host: #"[a",for=6.6.6.6;proto=https;host="b]"#)
        switch ClientUpgradeRequest.validate(head, limits: .init(), routes: RouteTable([routes])) {
        case .success: Issue.record("accepted a forged Host")
        case .failure(let rejection):
            #expect(rejection.response.status == 400)
            #expect(rejection.reason == "host")
        }
    }
}

/// A valid upgrade request head with the given Host.
enum HTTPTestRequest {
    static func head(host: String, uri: String = "/", extra: [(String, String)] = []) -> HTTPRequestHead {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host)
        headers.add(name: "Upgrade", value: "websocket")
        headers.add(name: "Connection", value: "Upgrade")
        headers.add(name: "Sec-WebSocket-Key", value: "dGhlIHNhbXBsZSBub25jZQ==")
        headers.add(name: "Sec-WebSocket-Version", value: "13")
        for (name, value) in extra { headers.add(name: name, value: value) }
        return HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: headers)
    }
}
