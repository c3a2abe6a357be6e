import NIOHPACK
import NIOHTTP1
import Testing

@testable import Gateway

/// RFC 8441's extended CONNECT, translated into the HTTP/1.1 upgrade request the gateway checks
/// (issue #16): pure, no channel.
@Suite struct ExtendedConnectTests {
    static func request(_ replacing: [String: String?] = [:], extra: [(String, String)] = []) -> HPACKHeaders {
        var fields: [(String, String?)] = [
            (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"), (":path", "/chat/room?x=1"),
            (":authority", "gw.example"),
        ]
        fields = fields.map { name, value in (name, replacing.keys.contains(name) ? replacing[name]! : value) }
        var headers = HPACKHeaders()
        for case let (name, value?) in fields { headers.add(name: name, value: value) }
        headers.add(name: "sec-websocket-version", value: "13")
        for (name, value) in extra { headers.add(name: name, value: value) }
        return headers
    }

    @Test func anExtendedConnectBecomesTheEquivalentUpgradeRequest() throws {
        let headers = Self.request(extra: [
            ("sec-websocket-protocol", "chat"), ("origin", "https://app.example"), ("cookie", "a=1"), ("cookie", "b=2"),
            ("sec-websocket-key", "ignored"),
        ])
        let head = try ExtendedConnect.requestHead(headers, endStream: false).get()
        #expect(head.method == .GET && head.version == .http1_1 && head.uri == "/chat/room?x=1")
        #expect(head.headers["Host"] == ["gw.example"])
        #expect(head.headers["Upgrade"] == ["websocket"] && head.headers["Connection"] == ["Upgrade"])
        #expect(head.headers["Sec-WebSocket-Key"] == [ExtendedConnect.placeholderKey], "RFC 8441 §5: the client's key is not used")
        #expect(head.headers["sec-websocket-protocol"] == ["chat"] && head.headers["origin"] == ["https://app.example"])
        #expect(head.headers["cookie"] == ["a=1; b=2"], "RFC 9113 §8.2.3: split cookies are joined")
        #expect(!head.headers.contains { $0.name.hasPrefix(":") })
        // The same validation as an HTTP/1.1 upgrade accepts it.
        let routes = RouteTable([.init(hosts: ["gw.example"], pathPrefix: "/chat", upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 1)])])
        let request = try ClientUpgradeRequest.validate(head, limits: .init(), routes: routes).get()
        #expect(request.subprotocols == ["chat"] && request.origin == "https://app.example")
    }

    @Test func whatOnlyHTTP2CanGetWrongIsRefusedWithItsStatus() {
        let cases: [(HPACKHeaders, Bool, Int, String)] = [
            (Self.request([":method": "GET"]), false, 405, "method"),
            // RFC 8441 §4: a CONNECT without :protocol is a tunnel, not served.
            (Self.request([":protocol": nil, ":scheme": nil, ":path": nil]), false, 400, "h2-no-protocol"),
            (Self.request([":protocol": "webtransport"]), false, 400, "h2-protocol"),
            (Self.request([":scheme": "http"]), false, 400, "h2-scheme"),
            (Self.request([":path": nil]), false, 400, "path"),
            (Self.request([":authority": nil]), false, 400, "host"),
            (Self.request(extra: [("host", "other.example")]), false, 400, "host"),
            (Self.request(), true, 400, "h2-end-stream"),
        ]
        for (headers, endStream, status, reason) in cases {
            switch ExtendedConnect.requestHead(headers, endStream: endStream) {
            case .success:
                Issue.record("\(reason): accepted")
            case .failure(let rejection):
                #expect(rejection.response.status == status, "\(reason)")
                #expect(rejection.reason == reason)
            }
        }
    }

    @Test func theAnswerIsLowerCasedWithoutHTTP1OnlyFields() {
        let block = ExtendedConnect.responseHeaders(
            status: 200,
            [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Protocol", "chat")]
        )
        #expect(Array(block.map(\.name)) == [":status", "sec-websocket-protocol"])
        #expect(block.first(name: ":status") == "200")
    }
}
