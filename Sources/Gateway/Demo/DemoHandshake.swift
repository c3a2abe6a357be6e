import Frames
import NIOHTTP1

/// The demo upstream's side of the opening handshake (RFC 6455 §4.2.1–§4.2.2), as a pure function of
/// the request head, so it can be tested without a channel.
///
/// The rules, in the order they are checked:
/// - `GET` over HTTP/1.1 or later (§4.1 item 2), else 400;
/// - a known path (`/echo`, `/chat`), else 404;
/// - `Upgrade` lists the token `websocket` and `Connection` lists the token `upgrade`, both compared
///   case-insensitively (§4.2.1 items 3–4), else 426 (the request is not an upgrade);
/// - `Sec-WebSocket-Version: 13` (§4.2.1 item 6), else 426;
/// - exactly one `Host` (§4.2.1 item 2) and exactly one `Sec-WebSocket-Key` that is the base64 of
///   16 bytes (§4.2.1 item 5), else 400;
/// - no body (`Content-Length` other than 0, or `Transfer-Encoding`), else 400.
///
/// Every refusal carries `Sec-WebSocket-Version: 13` (§4.4 asks for it on a version mismatch; sending it
/// always costs nothing and tells any client what we speak).
enum DemoHandshake {
    /// What a request head gets.
    enum Decision: Hashable, Sendable {
        /// Switch protocols on `route`, answering with this `Sec-WebSocket-Accept` value.
        case accept(DemoRoute, acceptValue: String)
        /// Refuse with `status` and a one-line plain-text `reason`.
        case reject(HTTPResponseStatus, reason: String)
    }

    /// Decides what `head` gets.
    static func evaluate(_ head: HTTPRequestHead) -> Decision {
        guard head.method == .GET else {
            return .reject(.badRequest, reason: "the opening handshake is a GET (RFC 6455 §4.1)")
        }
        guard head.version.major == 1, head.version.minor >= 1 else {
            return .reject(.badRequest, reason: "the opening handshake needs HTTP/1.1 (RFC 6455 §4.1)")
        }
        let (path, query) = Self.splitTarget(head.uri)
        let route: DemoRoute
        switch path {
        case "/echo": route = .echo
        case "/chat": route = .chat(name: DemoChatRoom.name(fromQuery: query))
        default: return .reject(.notFound, reason: "no route for \(path); try /echo or /chat")
        }
        let headers = head.headers
        guard Self.hasToken("websocket", in: headers, name: "Upgrade"),
            Self.hasToken("upgrade", in: headers, name: "Connection")
        else {
            return .reject(.upgradeRequired, reason: "this is a WebSocket endpoint: send Upgrade: websocket")
        }
        guard headers["Sec-WebSocket-Version"] == ["13"] else {
            return .reject(.upgradeRequired, reason: "unsupported Sec-WebSocket-Version; this server speaks 13")
        }
        guard headers["Host"].count == 1 else {
            return .reject(.badRequest, reason: "exactly one Host header is required (RFC 6455 §4.2.1)")
        }
        let keys = headers["Sec-WebSocket-Key"]
        guard keys.count == 1, HandshakeKey.isValidKey(keys[0]) else {
            return .reject(.badRequest, reason: "Sec-WebSocket-Key must be the base64 of 16 bytes (RFC 6455 §4.2.1)")
        }
        let lengths = headers["Content-Length"]
        guard lengths.allSatisfy({ $0 == "0" }), !headers.contains(name: "Transfer-Encoding") else {
            return .reject(.badRequest, reason: "the opening handshake has no body")
        }
        return .accept(route, acceptValue: HandshakeKey.acceptValue(forKey: keys[0]))
    }

    /// The headers of the 101 answer (RFC 6455 §4.2.2 item 5).
    static func switchingHeaders(acceptValue: String) -> HTTPHeaders {
        [
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Accept": acceptValue,
        ]
    }

    /// The headers of a refusal whose plain-text body is `bodyLength` bytes long. The connection is
    /// closed after it (no keep-alive after a refused upgrade, DESIGN §1.5).
    static func rejectionHeaders(bodyLength: Int) -> HTTPHeaders {
        [
            "Sec-WebSocket-Version": "13",
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Length": String(bodyLength),
            "Connection": "close",
        ]
    }

    /// Whether the comma-separated header `name` lists `token`, case-insensitively (RFC 7230 §3.2.6,
    /// §6.1): `Connection: keep-alive, Upgrade` lists `upgrade`.
    static func hasToken(_ token: String, in headers: HTTPHeaders, name: String) -> Bool {
        headers[name].contains { value in
            value.split(separator: ",").contains { element in
                element.trimmingSpaces().lowercased() == token
            }
        }
    }

    /// Splits a request target into its path and its query (without the `?`), dropping any fragment.
    static func splitTarget(_ uri: String) -> (path: Substring, query: Substring?) {
        let target = uri.prefix { $0 != "#" }
        guard let mark = target.firstIndex(of: "?") else { return (target, nil) }
        return (target[..<mark], target[target.index(after: mark)...])
    }
}

/// The endpoints of the demo upstream.
enum DemoRoute: Hashable, Sendable {
    /// `/echo`: every frame back as received.
    case echo
    /// `/chat`: a room; `name` is the decoded `?name=` (already cut to its limit), or `nil` for a guest.
    case chat(name: String?)
}

extension Substring {
    /// The substring without leading and trailing spaces and tabs (HTTP's optional whitespace).
    func trimmingSpaces() -> Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let start = self.firstIndex(where: { !isSpace($0) }) else { return "" }
        let end = self.lastIndex(where: { !isSpace($0) })!
        return self[start...end]
    }
}
