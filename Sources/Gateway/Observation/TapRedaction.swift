import Frames
import NIOHTTP1

/// What the tap's `open` event never shows (issue #14 §2): credentials in headers and in the query
/// string. Header names compare case-insensitively (HTTP field names are, RFC 9110 §5.1, so `AUTHORIZATION`
/// and `authorization` are the same secret); query parameter names compare after percent-decoding and
/// case-folding (`Access%5FToken=` is still the token). A redacted value becomes `[redacted]`; the name
/// stays, so an operator sees that the credential was sent.
struct TapRedaction: Sendable, Equatable {
    static let marker = "[redacted]"

    /// Always redacted: credentials (RFC 9110 §11.6.2, §11.7.2), cookies (RFC 6265) and the handshake's
    /// key and accept values (a replayable pair).
    static let builtInHeaders: Set<String> = [
        "authorization", "proxy-authorization", "cookie", "set-cookie", "sec-websocket-key", "sec-websocket-accept",
    ]
    /// Always redacted query parameters: the usual places tokens are put in a WebSocket URL (browsers
    /// cannot set headers on a WebSocket).
    static let builtInQueryParameters: Set<String> = ["access_token", "token", "jwt", "id_token", "key", "api_key"]

    private(set) var headers: Set<String>
    private(set) var queryParameters: Set<String>

    /// `admin.tap.redact_headers` and `admin.tap.redact_query_parameters` add to the built-in names.
    init(extraHeaders: [String] = [], extraQueryParameters: [String] = []) {
        self.headers = Self.builtInHeaders.union(extraHeaders.map { $0.lowercased() })
        self.queryParameters = Self.builtInQueryParameters.union(extraQueryParameters.map { $0.lowercased() })
    }

    init(_ tap: GatewayConfiguration.Admin.Tap) {
        self.init(extraHeaders: tap.redactHeaders, extraQueryParameters: tap.redactQueryParameters)
    }

    func redactedHeaders(_ headers: HTTPHeaders) -> [(String, String)] {
        headers.map { name, value in
            let lower = name.lowercased()
            if lower == "sec-websocket-protocol" { return (name, Self.redactedSubprotocols(value)) }
            return (name, self.headers.contains(lower) ? Self.marker : value)
        }
    }

    /// With the query parameters a route's `auth.jwt.token_sources` reads (issue #13), whatever their name.
    func including(_ jwt: GatewayConfiguration.JWTAuthentication?) -> TapRedaction {
        guard let jwt else { return self }
        var redaction = self
        for case .query(let name) in jwt.tokenSources { redaction.queryParameters.insert(name.lowercased()) }
        return redaction
    }

    /// With these query parameters too (``LiveConnectionInfo/tokenQueryParameters``).
    func including(queryParameters names: [String]) -> TapRedaction {
        guard !names.isEmpty else { return self }
        var redaction = self
        for name in names { redaction.queryParameters.insert(name.lowercased()) }
        return redaction
    }

    /// A bearer token offered as a subprotocol (`base64url.bearer.authorization.k8s.io.<token>`, the
    /// Kubernetes convention `auth.jwt` reads) keeps its prefix and loses its token; other entries stay.
    static func redactedSubprotocols(_ value: String) -> String {
        guard value.contains(BearerTokenSources.subprotocolPrefix) else { return value }
        return value.split(separator: ",").map { entry in
            let trimmed = HTTPSyntax.trimmingOWS(entry)
            return trimmed.hasPrefix(BearerTokenSources.subprotocolPrefix) ? BearerTokenSources.subprotocolPrefix + Self.marker : trimmed
        }.joined(separator: ", ")
    }

    /// The request target with every secret parameter's value replaced; the rest is kept byte for byte.
    func redactedTarget(_ target: String) -> String {
        guard let question = target.firstIndex(of: "?") else { return target }
        var query = target[target.index(after: question)...]
        var fragment = ""
        if let hash = query.firstIndex(of: "#") {
            fragment = String(query[hash...])
            query = query[..<hash]
        }
        let parameters = query.split(separator: "&", omittingEmptySubsequences: false).map { parameter -> String in
            let name = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0]
            let decoded = Self.percentDecoded(name).lowercased()
            return self.queryParameters.contains(decoded) ? "\(name)=\(Self.marker)" : String(parameter)
        }
        return target[...question] + parameters.joined(separator: "&") + fragment
    }

    /// `%XX` decoded and `+` as a space (form encoding); invalid escapes stay as they are.
    static func percentDecoded(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "%"), utf8.count >= 2, let high = hex(utf8[utf8.startIndex]), let low = hex(utf8[utf8.startIndex + 1]) {
                bytes.append(high << 4 | low)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
