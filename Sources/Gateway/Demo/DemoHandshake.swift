import Frames
import NIOHTTP1

/// The demo upstream's side of the opening handshake (RFC 6455 §4.2.1–§4.2.2), as a pure function of
/// the request head, so it can be tested without a channel.
///
/// The rules, in the order they are checked:
/// - `GET` over HTTP/1.1 (§4.1 item 2), else 400;
/// - `/` without `Upgrade: websocket` is the chat page (``DemoChatPage``): 200 with the HTML;
/// - a known path (`/echo`, `/chat`), else 404;
/// - `Upgrade` lists the token `websocket` and `Connection` lists the token `upgrade`, both compared
///   case-insensitively (§4.2.1 items 3–4), else 426 (the request is not an upgrade);
/// - `Sec-WebSocket-Version: 13` (§4.2.1 item 6), else 426;
/// - exactly one `Host` (§4.2.1 item 2) and exactly one `Sec-WebSocket-Key` that is the base64 of
///   16 bytes (§4.2.1 item 5), else 400;
/// - no body (`Content-Length` other than 0, or `Transfer-Encoding`), else 400.
///
/// Each rule is ``OpeningHandshake``'s, shared with the gateway's listener; the order and the statuses
/// are the demo's.
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
        /// Answer 200 with the chat page (``DemoChatPage``) and close.
        case page
    }

    /// Decides what `head` gets.
    static func evaluate(_ head: HTTPRequestHead) -> Decision {
        guard OpeningHandshake.isGet(head) else {
            return .reject(.badRequest, reason: "the opening handshake is a GET (RFC 6455 §4.1)")
        }
        guard OpeningHandshake.isHTTP11(head) else {
            return .reject(.badRequest, reason: "the opening handshake needs HTTP/1.1 (RFC 6455 §4.1)")
        }
        let (path, query) = Self.splitTarget(head.uri)
        let route: DemoRoute
        switch path {
        case "/echo": route = .echo
        case "/chat": route = .chat(name: DemoChatRoom.name(fromQuery: query))
        // A browser loading the page; a WebSocket handshake to `/` is still refused (404).
        case "/" where !OpeningHandshake.asksForWebSocket(head.headers): return .page
        default: return .reject(.notFound, reason: "no route for \(path); try /echo or /chat")
        }
        let headers = head.headers
        guard OpeningHandshake.asksForWebSocket(headers), OpeningHandshake.asksForConnectionUpgrade(headers) else {
            return .reject(.upgradeRequired, reason: "this is a WebSocket endpoint: send Upgrade: websocket")
        }
        switch OpeningHandshake.version(headers) {
        case .thirteen:
            break
        case .unsupported:
            return .reject(.upgradeRequired, reason: "unsupported Sec-WebSocket-Version; this server speaks 13")
        case .missing, .malformed:
            return .reject(.badRequest, reason: "Sec-WebSocket-Version must be present once, as 13 (RFC 6455 §4.1)")
        }
        guard OpeningHandshake.host(headers) != nil else {
            return .reject(.badRequest, reason: "exactly one Host header is required (RFC 6455 §4.2.1)")
        }
        guard let key = OpeningHandshake.key(headers) else {
            return .reject(.badRequest, reason: "Sec-WebSocket-Key must be the base64 of 16 bytes (RFC 6455 §4.2.1)")
        }
        guard !OpeningHandshake.announcesBody(headers) else {
            return .reject(.badRequest, reason: "the opening handshake has no body")
        }
        return .accept(route, acceptValue: HandshakeKey.acceptValue(forKey: key))
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

    /// The headers of the chat page's answer, whose body is `bodyLength` bytes long (closed after it,
    /// like a refusal: the demo upstream serves one request per connection).
    static func pageHeaders(bodyLength: Int) -> HTTPHeaders {
        [
            "Content-Type": "text/html; charset=utf-8",
            "Content-Length": String(bodyLength),
            "Content-Security-Policy": DemoChatPage.contentSecurityPolicy,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
            "Connection": "close",
        ]
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
