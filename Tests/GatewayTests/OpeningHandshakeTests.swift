import NIOHTTP1
import Testing

@testable import Gateway

/// ``OpeningHandshake``: the RFC 6455 §4.2.1 rules shared by the gateway's listener and the demo.
@Suite struct OpeningHandshakeTests {
    static let valid: HTTPHeaders = [
        "Host": "gw.example", "Upgrade": "websocket", "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
    ]

    static func headers(_ change: (inout HTTPHeaders) -> Void) -> HTTPHeaders {
        var headers = Self.valid
        change(&headers)
        return headers
    }

    @Test func aValidRequestPassesEveryRule() {
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: Self.valid)
        #expect(OpeningHandshake.isGet(head) && OpeningHandshake.isHTTP11(head))
        #expect(OpeningHandshake.duplicatedSingleton(in: Self.valid) == nil)
        #expect(OpeningHandshake.host(Self.valid) == "gw.example")
        #expect(OpeningHandshake.asksForWebSocket(Self.valid) && OpeningHandshake.asksForConnectionUpgrade(Self.valid))
        #expect(OpeningHandshake.asksForVersion13(Self.valid))
        #expect(OpeningHandshake.key(Self.valid) == "dGhlIHNhbXBsZSBub25jZQ==")
        #expect(!OpeningHandshake.announcesBody(Self.valid))
    }

    @Test func theRequestLineIsAnHTTP11Get() {
        #expect(!OpeningHandshake.isGet(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/")))
        #expect(!OpeningHandshake.isHTTP11(HTTPRequestHead(version: .http1_0, method: .GET, uri: "/")))
        #expect(!OpeningHandshake.isHTTP11(HTTPRequestHead(version: .init(major: 2, minor: 0), method: .GET, uri: "/")))
    }

    @Test func eachRuleRefusesWhatBreaksIt() {
        #expect(
            OpeningHandshake.duplicatedSingleton(
                in: Self.headers {
                    $0.add(name: "Origin", value: "a")
                    $0.add(name: "origin", value: "b")
                }
            ) == "Origin"
        )
        #expect(OpeningHandshake.host(Self.headers { $0.add(name: "Host", value: "other") }) == nil)
        #expect(OpeningHandshake.host(Self.headers { $0.remove(name: "Host") }) == nil)
        #expect(OpeningHandshake.asksForWebSocket(Self.headers { $0.replaceOrAdd(name: "Upgrade", value: "h2c, WebSocket") }))
        #expect(!OpeningHandshake.asksForWebSocket(Self.headers { $0.replaceOrAdd(name: "Upgrade", value: "websockets") }))
        #expect(OpeningHandshake.asksForConnectionUpgrade(Self.headers { $0.replaceOrAdd(name: "Connection", value: "keep-alive, upgrade") }))
        #expect(!OpeningHandshake.asksForConnectionUpgrade(Self.headers { $0.replaceOrAdd(name: "Connection", value: "keep-alive") }))
        #expect(!OpeningHandshake.asksForVersion13(Self.headers { $0.replaceOrAdd(name: "Sec-WebSocket-Version", value: "8") }))
        #expect(!OpeningHandshake.asksForVersion13(Self.headers { $0.add(name: "Sec-WebSocket-Version", value: "13") }))
        #expect(!OpeningHandshake.asksForVersion13(Self.headers { $0.remove(name: "Sec-WebSocket-Version") }))
        #expect(OpeningHandshake.key(Self.headers { $0.replaceOrAdd(name: "Sec-WebSocket-Key", value: "AAAAAA==") }) == nil)
        #expect(OpeningHandshake.key(Self.headers { $0.add(name: "Sec-WebSocket-Key", value: "dGhlIHNhbXBsZSBub25jZQ==") }) == nil)
        #expect(OpeningHandshake.announcesBody(Self.headers { $0.add(name: "Content-Length", value: "5") }))
        #expect(!OpeningHandshake.announcesBody(Self.headers { $0.add(name: "Content-Length", value: "0") }))
        #expect(OpeningHandshake.announcesBody(Self.headers { $0.add(name: "Transfer-Encoding", value: "chunked") }))
    }
}
