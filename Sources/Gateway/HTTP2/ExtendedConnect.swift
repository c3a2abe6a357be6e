import NIOHPACK
import NIOHTTP1

/// RFC 8441 §4–§5: the extended CONNECT that opens a WebSocket on an HTTP/2 stream, translated into the
/// HTTP/1.1 upgrade request the gateway already checks (``ClientUpgradeRequest/validate(_:limits:routes:)``),
/// so that one code path decides routing, origin, subprotocols, extensions, caps and rate limits for both
/// encodings ("one code path decides, two encodings answer").
///
/// Only what is specific to HTTP/2 is checked here: the pseudo-header fields (`:method CONNECT`,
/// `:protocol websocket`, `:scheme https`, `:path`, `:authority`), a `Host` that disagrees with
/// `:authority`, and a request stream that ends with its HEADERS (a WebSocket needs the stream open).
/// swift-nio-http2 has already refused malformed blocks (pseudo-header order and set, upper-case names,
/// connection-specific fields: RFC 9113 §8.2) with a stream error.
enum ExtendedConnect {
    /// The `Sec-WebSocket-Key` the translated request carries: RFC 8441 §5 replaces the key and accept
    /// by `:protocol`, so the client sends none; the gateway's own upstream request has a fresh one
    /// (DESIGN §1.6) and the HTTP/2 answer has no `Sec-WebSocket-Accept`, so this value goes nowhere.
    static let placeholderKey = "AAAAAAAAAAAAAAAAAAAAAA=="

    /// Fields the translation writes itself; a client's copies are dropped (`sec-websocket-key` is not
    /// used over HTTP/2, RFC 8441 §5; the others are connection-specific, RFC 9113 §8.2.2).
    private static let replaced: Set<String> = ["host", "upgrade", "connection", "sec-websocket-key"]

    /// The HTTP/1.1 request head equivalent to `headers`, or the refusal (answered as `:status`).
    static func requestHead(_ headers: HPACKHeaders, endStream: Bool) -> Result<HTTPRequestHead, HandshakeRejection> {
        guard let method = headers.first(name: ":method"), method == "CONNECT" else {
            return .failure(
                HandshakeRejection(
                    405,
                    "a WebSocket over HTTP/2 is opened with an extended CONNECT (RFC 8441)",
                    reason: "method",
                    headers: [("allow", "CONNECT")]
                )
            )
        }
        guard let protocolName = headers.first(name: ":protocol") else {
            // RFC 8441 §4: without `:protocol` this is a classic CONNECT (a TCP tunnel), not offered.
            return .failure(HandshakeRejection(400, "a CONNECT without :protocol (a tunnel) is not served here", reason: "h2-no-protocol"))
        }
        guard protocolName.lowercased() == "websocket" else {
            return .failure(HandshakeRejection(400, "only :protocol websocket is served", reason: "h2-protocol"))
        }
        guard headers.first(name: ":scheme") == "https" else {
            return .failure(HandshakeRejection(400, ":scheme must be https", reason: "h2-scheme"))
        }
        guard let path = headers.first(name: ":path"), !path.isEmpty else {
            return .failure(HandshakeRejection(400, ":path is required", reason: "path"))
        }
        guard let authority = headers.first(name: ":authority"), !authority.isEmpty else {
            return .failure(HandshakeRejection(400, ":authority is required", reason: "host"))
        }
        if headers[canonicalForm: "host"].contains(where: { $0 != authority }) {
            return .failure(HandshakeRejection(400, "Host differs from :authority", reason: "host"))
        }
        if endStream {
            return .failure(HandshakeRejection(400, "the CONNECT stream ended with its request", reason: "h2-end-stream"))
        }
        var translated = HTTPHeaders()
        translated.add(name: "Host", value: authority)
        var cookies: [String] = []
        for (name, value, _) in headers where !name.hasPrefix(":") && !Self.replaced.contains(name) {
            // RFC 9113 §8.2.3: split cookie fields are joined with "; " for HTTP/1.1.
            if name == "cookie" { cookies.append(value) } else { translated.add(name: name, value: value) }
        }
        if !cookies.isEmpty { translated.add(name: "cookie", value: cookies.joined(separator: "; ")) }
        translated.add(name: "Upgrade", value: "websocket")
        translated.add(name: "Connection", value: "Upgrade")
        translated.add(name: "Sec-WebSocket-Key", value: Self.placeholderKey)
        return .success(HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: translated))
    }

    /// The answer's HEADERS block: `:status` and the response's fields in lower case (RFC 9113 §8.2),
    /// without the HTTP/1.1-only ones (`Connection`, `Upgrade`).
    static func responseHeaders(status: Int, _ fields: [(String, String)]) -> HPACKHeaders {
        var headers = HPACKHeaders()
        headers.add(name: ":status", value: String(status))
        for (name, value) in fields {
            let lower = name.lowercased()
            if lower == "connection" || lower == "upgrade" || lower == "sec-websocket-accept" { continue }
            headers.add(name: lower, value: value)
        }
        return headers
    }
}
