import NIOHTTP1
import Testing

@testable import Gateway

@Suite struct ClientUpgradeRequestTests {
    static let routes = RouteTable([
        .init(pathPrefix: "/", upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 1)]),
        .init(
            hosts: ["chat.example.com"],
            pathPrefix: "/chat",
            upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 2)],
            subprotocols: ["chat.v1"]
        ),
    ])

    private func head(
        method: HTTPMethod = .GET,
        version: HTTPVersion = .http1_1,
        uri: String = "/echo",
        _ headers: [(String, String)] = []
    ) -> HTTPRequestHead {
        HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(headers))
    }

    private static let valid: [(String, String)] = [
        ("Host", "gw.example.com:8080"), ("Upgrade", "websocket"), ("Connection", "keep-alive, Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13"),
    ]

    private func replacing(_ name: String, with value: String?) -> [(String, String)] {
        var headers = Self.valid.filter { $0.0 != name }
        if let value { headers.append((name, value)) }
        return headers
    }

    private func status(_ head: HTTPRequestHead, limits: GatewayConfiguration.Limits = .init()) -> Int? {
        if case .failure(let rejection) = ClientUpgradeRequest.validate(head, limits: limits, routes: Self.routes) {
            return rejection.response.status
        }
        return nil
    }

    @Test func aValidRequestIsAccepted() throws {
        let result = ClientUpgradeRequest.validate(head(Self.valid), limits: .init(), routes: Self.routes)
        let request = try result.get()
        #expect(request.host == "gw.example.com")
        #expect(request.key == "dGhlIHNhbXBsZSBub25jZQ==")
        #expect(request.route.index == 0)
    }

    /// Catalog H-06: versions 8 and 14 are 426; a missing, list-valued or malformed version is 400.
    /// Catalog H-07: POST is 405, HTTP/1.0 400, h2c without websocket 426 (plain HTTP), never upgraded.
    /// Catalog H-08: Content-Length or Transfer-Encoding on the upgrade request is 400.
    /// Catalog H-11: a header name over 256 bytes is 400.
    /// Catalog H-14: a Sec-WebSocket-Protocol that is not a list of tokens is 400.
    @Test func eachRuleHasItsExactStatus() {
        #expect(status(head(method: .POST, Self.valid)) == 405)
        #expect(status(head(version: .http1_0, Self.valid)) == 400)
        #expect(status(head(replacing("Host", with: nil))) == 400)
        #expect(status(head(replacing("Host", with: "bad host"))) == 400)
        #expect(status(head(Self.valid + [("Host", "other")])) == 400)  // duplicate singleton
        #expect(status(head(Self.valid + [("Content-Length", "5")])) == 400)
        #expect(status(head(Self.valid + [("Transfer-Encoding", "chunked")])) == 400)
        #expect(status(head(replacing("Upgrade", with: nil))) == 426)
        #expect(status(head(replacing("Upgrade", with: "h2c"))) == 426)
        #expect(status(head(replacing("Connection", with: "keep-alive"))) == 400)
        #expect(status(head(replacing("Sec-WebSocket-Version", with: "8"))) == 426)
        #expect(status(head(replacing("Sec-WebSocket-Version", with: "14"))) == 426)
        #expect(status(head(replacing("Sec-WebSocket-Version", with: nil))) == 400)
        #expect(status(head(replacing("Sec-WebSocket-Version", with: "13, 8"))) == 400)
        #expect(status(head(replacing("Sec-WebSocket-Version", with: "013"))) == 400)
        #expect(status(head(Self.valid + [(String(repeating: "n", count: 257), "1")])) == 400)
        #expect(status(head(Self.valid + [(String(repeating: "n", count: 256), "1")])) == nil)
        #expect(status(head(Self.valid + [("Sec-WebSocket-Protocol", "chat, b   x")])) == 400)
        #expect(status(head(Self.valid + [("Sec-WebSocket-Protocol", "chat, \"quoted\"")])) == 400)
        #expect(status(head(replacing("Sec-WebSocket-Key", with: "short"))) == 400)
        #expect(status(head(replacing("Sec-WebSocket-Key", with: nil))) == 400)
        #expect(status(head(uri: "http://x/echo", Self.valid)) == 400)
        #expect(status(head(Self.valid + [("Sec-WebSocket-Extensions", "permessage-deflate; x=\"")])) == 400)
    }

    @Test func versionRefusalTellsTheClientWhichVersionToUse() throws {
        let result = ClientUpgradeRequest.validate(head(replacing("Sec-WebSocket-Version", with: "8")), limits: .init(), routes: Self.routes)
        guard case .failure(let rejection) = result else {
            Issue.record("accepted")
            return
        }
        #expect(rejection.response.headers.contains { $0.0 == "Sec-WebSocket-Version" && $0.1 == "13" })
    }

    @Test func tooManyHeadersIs431() {
        var limits = GatewayConfiguration.Limits()
        limits.requestHeaders = 6
        #expect(status(head(Self.valid + [("X-A", "1"), ("X-B", "2")]), limits: limits) == 431)
        #expect(status(head(Self.valid + [("X-A", "1")]), limits: limits) == nil)
    }

    @Test func upgradeAndConnectionTokensAreCaseInsensitive() {
        let headers = replacing("Upgrade", with: "WebSocket").filter { $0.0 != "Connection" } + [("Connection", "UPGRADE")]
        #expect(status(head(headers)) == nil)
    }

    @Test func subprotocolsAreFilteredByTheRouteAllowList() throws {
        let headers = replacing("Host", with: "chat.example.com") + [("Sec-WebSocket-Protocol", "chat.v2, chat.v1"), ("Sec-WebSocket-Protocol", "x")]
        let request = try ClientUpgradeRequest.validate(head(uri: "/chat/room?x=1", headers), limits: .init(), routes: Self.routes).get()
        #expect(request.route.index == 1)
        #expect(request.subprotocols == ["chat.v1"])
    }

    @Test(arguments: [
        ("example.com", "example.com"), ("Example.COM:8080", "example.com"), ("[::1]:443", "[::1]"), ("[::1]", "[::1]"),
    ])
    func hostHeaderParsing(value: String, expected: String) {
        #expect(ClientUpgradeRequest.hostName(fromHostHeader: value) == expected)
    }

    /// Catalog H-10: an empty Host, a bare port, extra colons, a broken IPv6 literal or a space are refused (400).
    @Test(arguments: ["", ":80", "a:b", "a:80:90", "[::1", "[::1]x", "a b", "a:"])
    func malformedHostHeaders(value: String) {
        #expect(ClientUpgradeRequest.hostName(fromHostHeader: value) == nil)
    }
}
