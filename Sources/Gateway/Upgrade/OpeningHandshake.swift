import Frames
import NIOHTTP1

/// What a server checks on a WebSocket opening handshake (RFC 6455 §4.1, §4.2.1), one function per
/// rule, in one place for the gateway's listener (``ClientUpgradeRequest/validate(_:limits:routes:)``)
/// and the demo upstream (``DemoHandshake/evaluate(_:)``). Each caller orders the rules and answers a
/// failed one in its own way (the gateway with 405 for a method, the demo with 400, for example).
enum OpeningHandshake {
    /// Headers that may appear at most once in an opening handshake: RFC 6455 §4.2.1 items 2, 5 and 6
    /// (`Host`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version`), §4.1 item 8 (`Origin`), and those whose
    /// repetition would make the request ambiguous (`Upgrade`; `Content-Length`, RFC 9112 §6.3).
    static let singletonHeaders = ["Host", "Upgrade", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Origin", "Content-Length"]

    /// RFC 6455 §4.1 item 2, §4.2.1 item 1: the method MUST be `GET`.
    static func isGet(_ head: HTTPRequestHead) -> Bool {
        head.method == .GET
    }

    /// RFC 6455 §4.1 item 2, §4.2.1 item 1: an HTTP/1.1 request. (HTTP/2 and HTTP/3 bootstrap WebSockets
    /// with an extended CONNECT instead, RFC 8441 and RFC 9220; an HTTP/1.0 client cannot upgrade.)
    static func isHTTP11(_ head: HTTPRequestHead) -> Bool {
        head.version == .http1_1
    }

    /// The first of ``singletonHeaders`` that appears more than once, if any.
    static func duplicatedSingleton(in headers: HTTPHeaders) -> String? {
        Self.singletonHeaders.first { headers[$0].count > 1 }
    }

    /// RFC 6455 §4.2.1 item 2: the `Host` value, when there is exactly one.
    static func host(_ headers: HTTPHeaders) -> String? {
        let hosts = headers["Host"]
        return hosts.count == 1 ? hosts[0] : nil
    }

    /// RFC 6455 §4.2.1 item 3: `Upgrade` lists `websocket`, case-insensitively.
    static func asksForWebSocket(_ headers: HTTPHeaders) -> Bool {
        HTTPSyntax.lists("websocket", in: headers["Upgrade"])
    }

    /// RFC 6455 §4.2.1 item 4: `Connection` lists `upgrade`, case-insensitively.
    static func asksForConnectionUpgrade(_ headers: HTTPHeaders) -> Bool {
        HTTPSyntax.lists("upgrade", in: headers["Connection"])
    }

    /// RFC 6455 §4.2.1 item 6: `Sec-WebSocket-Version: 13`, once (otherwise a server answers 426 with
    /// the versions it speaks, §4.4).
    static func asksForVersion13(_ headers: HTTPHeaders) -> Bool {
        let versions = headers["Sec-WebSocket-Version"]
        return versions.count == 1 && HTTPSyntax.trimmingOWS(versions[0]) == "13"
    }

    /// RFC 6455 §4.2.1 item 5: the `Sec-WebSocket-Key`, once, base64 of 16 bytes; nil otherwise.
    static func key(_ headers: HTTPHeaders) -> String? {
        let keys = headers["Sec-WebSocket-Key"]
        guard keys.count == 1 else { return nil }
        let key = HTTPSyntax.trimmingOWS(keys[0])
        return HandshakeKey.isValidKey(key) ? key : nil
    }

    /// Whether the request announces a body (a `Content-Length` other than 0, or a
    /// `Transfer-Encoding`): an opening handshake has none, and bytes after its head are the client's
    /// first frames at best (DESIGN §1.3).
    static func announcesBody(_ headers: HTTPHeaders) -> Bool {
        headers["Content-Length"].contains { $0 != "0" } || headers.contains(name: "Transfer-Encoding")
    }
}
