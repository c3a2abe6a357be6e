import Foundation
import Frames
import NIOHTTP1

/// Finds the bearer token of an upgrade request in a route's `token_sources` (issue #13 §2), pure.
///
/// The sources are tried in the configured order and the first that carries a token wins. Whatever is
/// found, every configured carrier is stripped from the forwarded request (``Found/strip``): the
/// `Authorization: Bearer` header, the query parameter, the cookie entry (the other cookies are kept)
/// and any `base64url.bearer.authorization.k8s.io.` subprotocol entry, so a credential meant for the
/// gateway never reaches the upstream, whichever source won.
///
/// Browsers cannot set headers on a WebSocket, hence the query, cookie and subprotocol sources. The
/// subprotocol form is Kubernetes': `base64url.bearer.authorization.k8s.io.<base64url of the token>`;
/// a JWT as is (it has dots, which base64url has not) is accepted too.
enum BearerTokenSources {
    typealias Source = GatewayConfiguration.JWTAuthentication.TokenSource

    static let subprotocolPrefix = "base64url.bearer.authorization.k8s.io."

    /// What to strip from the forwarded request (the parts of an ``AuthorizationGrant``).
    struct Strip: Equatable {
        var removeHeaders: [String] = []
        /// The `Cookie` header rebuilt without the token's entry (the client's `Cookie` is removed).
        var cookie: String?
        var removeQueryParameters: [String] = []
        var removeSubprotocols: [String] = []
    }

    struct Found: Equatable {
        /// The token, or nil when no source carries one.
        var token: String?
        var source: Source?
        var strip: Strip
    }

    /// The token of `head` (`offered`: the subprotocols the route forwards, after its allow-list).
    static func find(in head: HTTPRequestHead, sources: [Source], offered: [String]) -> Result<Found, JWTRefusal> {
        var found = Found(token: nil, source: nil, strip: Strip())
        for source in sources {
            let token: String?
            switch source {
            case .header:
                switch self.header(head.headers) {
                case .failure(let refusal): return .failure(refusal)
                case .success(let value):
                    token = value
                    if value != nil { found.strip.removeHeaders.append("Authorization") }
                }
            case .query(let name):
                found.strip.removeQueryParameters.append(name)
                switch self.query(head.uri, name: name) {
                case .failure(let refusal): return .failure(refusal)
                case .success(let value): token = value
                }
            case .cookie(let name):
                switch self.cookie(head.headers, name: name) {
                case .failure(let refusal): return .failure(refusal)
                case .success(let value):
                    token = value?.token
                    if let rest = value?.rest {
                        found.strip.removeHeaders.append("Cookie")
                        found.strip.cookie = rest.isEmpty ? nil : rest
                    }
                }
            case .subprotocol:
                switch self.subprotocol(head.headers) {
                case .failure(let refusal): return .failure(refusal)
                case .success(let value):
                    token = value?.token
                    if let entry = value?.entry {
                        found.strip.removeSubprotocols.append(entry)
                        // A browser fails a connection whose 101 names no subprotocol it offered (RFC 6455
                        // §4.1 item 6 of the client's checks is the reverse: it fails one that names one it
                        // did not); the token entry is never forwarded, so a real one must be offered too.
                        if offered.allSatisfy({ $0 == entry }) {
                            return .failure(
                                JWTRefusal(
                                    .subprotocol,
                                    "a token sent as a subprotocol needs a real subprotocol offered beside it"
                                )
                            )
                        }
                    }
                }
            }
            if let token, found.token == nil {
                found.token = token
                found.source = source
            }
        }
        return .success(found)
    }

    /// `Authorization: Bearer <token>` (RFC 6750 §2.1; the scheme is case-insensitive, RFC 9110 §11.1).
    /// Another scheme is not a bearer token and is left alone.
    static func header(_ headers: HTTPHeaders) -> Result<String?, JWTRefusal> {
        let values = headers["Authorization"]
        guard let value = values.first else { return .success(nil) }
        let trimmed = HTTPSyntax.trimmingOWS(value)
        let scheme = trimmed.prefix { $0 != " " }
        guard scheme.lowercased() == "bearer" else { return .success(nil) }
        guard values.count == 1 else { return .failure(JWTRefusal(.invalidRequest, "more than one Authorization header")) }
        let token = trimmed.dropFirst(scheme.count).drop { $0 == " " }
        guard !token.isEmpty, !token.contains(" ") else {
            return .failure(JWTRefusal(.invalidRequest, "Authorization: Bearer needs exactly one token"))
        }
        return .success(String(token))
    }

    /// The parameter `name` of the target's query, percent-decoded; matched as written (so that exactly
    /// what was matched is what is removed from the forwarded target).
    static func query(_ target: String, name: String) -> Result<String?, JWTRefusal> {
        guard let questionMark = target.firstIndex(of: "?") else { return .success(nil) }
        var token: String?
        for pair in target[target.index(after: questionMark)...].split(separator: "&", omittingEmptySubsequences: true) {
            let (key, value) = pair.firstIndex(of: "=").map { (pair[..<$0], pair[pair.index(after: $0)...]) } ?? (pair, "")
            guard key == name else { continue }
            guard token == nil else { return .failure(JWTRefusal(.invalidRequest, "the token parameter appears more than once")) }
            guard let decoded = String(value).removingPercentEncoding, !decoded.isEmpty else {
                return .failure(JWTRefusal(.invalidRequest, "the token parameter is empty or badly escaped"))
            }
            token = decoded
        }
        return .success(token)
    }

    /// The cookie `name` (RFC 6265 §4.2.1, a quoted value unquoted) and the `Cookie` value without it.
    static func cookie(_ headers: HTTPHeaders, name: String) -> Result<(token: String, rest: String)?, JWTRefusal> {
        let entries = headers["Cookie"].flatMap { $0.split(separator: ";") }.map { HTTPSyntax.trimmingOWS($0) }.filter { !$0.isEmpty }
        var token: String?
        var rest: [String] = []
        for entry in entries {
            let key = entry.prefix { $0 != "=" }
            guard key == name, key.count < entry.count else {
                rest.append(entry)
                continue
            }
            guard token == nil else { return .failure(JWTRefusal(.invalidRequest, "the token cookie appears more than once")) }
            var value = entry.dropFirst(key.count + 1)
            if value.count >= 2, value.first == "\"", value.last == "\"" { value = value.dropFirst().dropLast() }
            guard !value.isEmpty else { return .failure(JWTRefusal(.invalidRequest, "the token cookie is empty")) }
            token = String(value)
        }
        return .success(token.map { ($0, rest.joined(separator: "; ")) })
    }

    /// The `base64url.bearer.authorization.k8s.io.` entry of the raw offer (before the route's
    /// allow-list, which would drop it) and the token it carries.
    static func subprotocol(_ headers: HTTPHeaders) -> Result<(token: String, entry: String)?, JWTRefusal> {
        let entries = HTTPSyntax.commaList(headers["Sec-WebSocket-Protocol"]).filter { $0.hasPrefix(Self.subprotocolPrefix) }
        guard let entry = entries.first else { return .success(nil) }
        guard entries.count == 1 else { return .failure(JWTRefusal(.invalidRequest, "more than one bearer subprotocol entry")) }
        let carried = entry.dropFirst(Self.subprotocolPrefix.count)
        if carried.contains(".") { return .success((String(carried), entry)) }
        guard let bytes = Base64URL.decode(carried), let token = String(bytes: bytes, encoding: .utf8), !token.isEmpty else {
            return .failure(JWTRefusal(.invalidRequest, "the bearer subprotocol entry is not base64url"))
        }
        return .success((token, entry))
    }
}

/// base64url without padding (RFC 4648 §5, RFC 7515 §2), strict: only the alphabet, no padding, no
/// impossible length.
enum Base64URL {
    static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var output: [UInt8] = []
        output.reserveCapacity(text.utf8.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in text.utf8 {
            let value: UInt32
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(byte - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(byte - UInt8(ascii: "a")) + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(byte - UInt8(ascii: "0")) + 52
            case UInt8(ascii: "-"): value = 62
            case UInt8(ascii: "_"): value = 63
            default: return nil
            }
            accumulator = accumulator << 6 | value
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        // 1 leftover character (6 bits) cannot encode a byte; leftover bits must be zero (canonical).
        guard bits < 6, accumulator & ((1 << UInt32(bits)) - 1) == 0 else { return nil }
        return output
    }

    static func isAlphabet(_ byte: UInt8) -> Bool {
        (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || (0x30...0x39).contains(byte) || byte == 0x2D || byte == 0x5F
    }
}
