/// The path of a client's request target, checked to be in the one spelling RFC 3986 §6.2.2 calls
/// normal, and its mapping onto an upstream member's path.
///
/// The gateway **rejects** a non-canonical path with 400 rather than normalising it (DESIGN-NOTES,
/// "Request paths"). Routing compares the path's bytes with route prefixes, and the upstream resolves
/// the path again on its own: any spelling that two parsers may read differently (`/public/../admin`,
/// `/%61dmin`, `//host/x`, `/a%2Fb`, `/a\b`) would let a client pick another route's origin,
/// subprotocol and rate policies, or leave an upstream's base path (`/api/../../x`). With one accepted
/// spelling per resource, what the gateway routes on is exactly what the upstream receives.
enum RequestPath {
    /// Why a path is refused; each is a 400 with this text.
    enum Violation: String, Error, Hashable {
        case notOriginForm = "the request target must be a path (origin-form, RFC 9112 §3.2.1)"
        case dotSegment = "the path has a dot segment (. or ..); send the resolved path (RFC 3986 §5.2.4)"
        case emptySegment = "the path has an empty segment (//)"
        case encodedSlash = "the path has an encoded / or \\ (%2F, %5C)"
        case backslash = "the path has a \\"
        case nul = "the path has a NUL (%00)"
        case badPercentEncoding = "the path has a malformed percent-encoding (% must be followed by two hex digits)"
        case nonCanonicalEncoding =
            "the path percent-encodes an unreserved character or uses lowercase hex; send it as RFC 3986 §6.2.2 normalises it"
        case invalidCharacter = "the path has a character RFC 3986 does not allow in a path"
    }

    /// The path part of `target` (before `?`) if it is canonical, or the rule it breaks.
    ///
    /// Accepted: `/` followed by segments of RFC 3986 `pchar` (§3.3), where a `%XX` is uppercase hex
    /// (§6.2.2.1), never an unreserved character (§6.2.2.2: `%61` is `a`), never `/`, `\` or NUL; no
    /// segment is `.` or `..`, also when encoded (`%2E`, which the previous rule refuses anyway); no
    /// segment is empty except the last (`/chat/` is fine, `//x` and `/a//b` are not).
    static func validate(target: String) -> Result<Substring, Violation> {
        let path = target.prefix { $0 != "?" }
        let bytes = Array(path.utf8)
        guard bytes.first == UInt8(ascii: "/") else { return .failure(.notOriginForm) }
        var index = 1
        var segmentStart = 1
        while index <= bytes.count {
            if index == bytes.count || bytes[index] == UInt8(ascii: "/") {
                let segment = bytes[segmentStart..<index]
                if segment.isEmpty && index < bytes.count { return .failure(.emptySegment) }
                if segment.elementsEqual(".".utf8) || segment.elementsEqual("..".utf8) { return .failure(.dotSegment) }
                index += 1
                segmentStart = index
                continue
            }
            let byte = bytes[index]
            if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.count, let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) else {
                    return .failure(.badPercentEncoding)
                }
                let decoded = high << 4 | low
                switch decoded {
                case UInt8(ascii: "/"), UInt8(ascii: "\\"): return .failure(.encodedSlash)
                case 0: return .failure(.nul)
                default: break
                }
                if isUnreserved(decoded) || isLowercaseHex(bytes[index + 1]) || isLowercaseHex(bytes[index + 2]) {
                    return .failure(.nonCanonicalEncoding)
                }
                index += 3
                continue
            }
            if byte == UInt8(ascii: "\\") { return .failure(.backslash) }
            if byte == 0 { return .failure(.nul) }
            guard isUnreserved(byte) || isSubDelimOrColonAt(byte) else { return .failure(.invalidCharacter) }
            index += 1
        }
        return .success(path)
    }

    /// The request target sent upstream for a client's `target` that matched `routePrefix`, toward a
    /// member whose URL has `memberPath` (nil: the member has no path and the target goes as is).
    ///
    /// The exact prefix maps to the member's path as written (`path: /`, member `ws://h/echo`: `/` goes
    /// up as `/echo`, not `/echo/`); only a remainder is joined to it with one `/`. The query string
    /// is kept byte for byte.
    static func upstreamTarget(_ target: String, routePrefix: String, memberPath: String?) -> String {
        guard let memberPath else { return target }
        let queryStart = target.firstIndex(of: "?") ?? target.endIndex
        let path = target[..<queryStart]
        let query = target[queryStart...]
        let prefix = routePrefix.isEmpty ? "/" : routePrefix
        let base = memberPath.isEmpty ? "/" : memberPath
        guard path.utf8.count > prefix.utf8.count, path.hasPrefix(prefix) else {
            return base + query  // exactly the prefix (or, defensively, not under it)
        }
        var remainder = path.dropFirst(prefix.count)
        if remainder.hasPrefix("/") { remainder = remainder.dropFirst() }
        let joined = (base.hasSuffix("/") ? base : base + "/") + remainder
        return joined + query
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        default: nil
        }
    }

    private static func isLowercaseHex(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
    }

    /// RFC 3986 §2.3: ALPHA / DIGIT / "-" / "." / "_" / "~".
    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"): true
        default: false
        }
    }

    /// The rest of `pchar` (RFC 3986 §3.3): sub-delims, ":" and "@".
    private static func isSubDelimOrColonAt(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="), UInt8(ascii: ":"),
            UInt8(ascii: "@"):
            true
        default: false
        }
    }
}
