/// The pieces of HTTP's field syntax (RFC 9110 §5.6) that the WebSocket opening handshake uses, in one
/// place for `Sec-WebSocket-Extensions` parsing here and for the gateway's handshake checks, its
/// configuration and the demo upstream.
public enum HTTPSyntax {
    /// Whether `string` is a `token` (RFC 9110 §5.6.2, `1*tchar`): what subprotocol names
    /// (RFC 6455 §4.1) and extension names and values (RFC 6455 §9.1) are made of.
    public static func isToken(_ string: some StringProtocol) -> Bool {
        !string.isEmpty && string.utf8.allSatisfy(ASCII.isTchar)
    }

    /// `string` without leading and trailing optional whitespace (RFC 9110 §5.6.3: `OWS = *( SP / HTAB )`).
    public static func trimmingOWS(_ string: some StringProtocol) -> String {
        let utf8 = Substring(string).utf8
        guard let first = utf8.firstIndex(where: { !ASCII.isOWS($0) }) else { return "" }
        let last = utf8.lastIndex(where: { !ASCII.isOWS($0) })!
        return String(decoding: utf8[first...last], as: UTF8.self)
    }

    /// The elements of a comma-separated list field (RFC 9110 §5.6.1 `#element`) over all its field
    /// lines, in order, each trimmed of OWS; empty elements are dropped, as recipients MUST accept and
    /// ignore them.
    public static func commaList(_ values: [String]) -> [String] {
        var elements: [String] = []
        for value in values {
            guard Self.isASCII(value) else {
                elements += value.split(separator: ",").map { Self.trimmingOWS($0) }.filter { !$0.isEmpty }
                continue
            }
            Self.forEachASCIIElement(of: value) { element in
                elements.append(String(element))
                return false
            }
        }
        return elements
    }

    /// The elements of a list of case-insensitive tokens (`Connection`, `Upgrade`: RFC 9110 §7.6.1,
    /// §7.8), lowercased.
    public static func lowercasedTokens(_ values: [String]) -> [String] {
        var tokens = Self.commaList(values)
        for index in tokens.indices where tokens[index].utf8.contains(where: { $0 >= 0x41 && $0 <= 0x5A || $0 >= 0x80 }) {
            tokens[index] = tokens[index].lowercased()
        }
        return tokens
    }

    /// Whether a list of case-insensitive tokens contains `token` (given in lowercase):
    /// `Connection: keep-alive, Upgrade` lists `upgrade`. An ASCII field line is searched in place
    /// (issue #15: no arrays or strings per connection); others as ``lowercasedTokens(_:)``.
    public static func lists(_ token: String, in values: [String]) -> Bool {
        for value in values {
            guard Self.isASCII(value) else {
                if Self.lowercasedTokens([value]).contains(token) { return true }
                continue
            }
            let found = Self.forEachASCIIElement(of: value) { element in
                element.utf8.elementsEqual(token.utf8) { ($0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0) == $1 }
            }
            if found { return true }
        }
        return false
    }

    private static func isASCII(_ value: String) -> Bool {
        value.utf8.allSatisfy { $0 < 0x80 }
    }

    /// Calls `body` with each non-empty, OWS-trimmed element of an ASCII list value (split at each
    /// comma byte: for ASCII text the same as splitting at the `Character`), until it returns true;
    /// returns whether one did.
    @discardableResult
    private static func forEachASCIIElement(of value: String, _ body: (Substring) -> Bool) -> Bool {
        let utf8 = value.utf8
        var start = utf8.startIndex
        while true {
            let end = utf8[start...].firstIndex(of: UInt8(ascii: ",")) ?? utf8.endIndex
            var first = start
            var last = end
            while first < last, ASCII.isOWS(utf8[first]) { first = utf8.index(after: first) }
            while last > first, ASCII.isOWS(utf8[utf8.index(before: last)]) { last = utf8.index(before: last) }
            if first < last, body(value[first..<last]) { return true }
            if end == utf8.endIndex { return false }
            start = utf8.index(after: end)
        }
    }
}

/// Byte classes of RFC 7230 §3.2.6 and RFC 5234 appendix B.1.
enum ASCII {
    static let horizontalTab: UInt8 = 0x09
    static let space: UInt8 = 0x20
    static let doubleQuote: UInt8 = 0x22
    static let comma: UInt8 = 0x2C
    static let semicolon: UInt8 = 0x3B
    static let equals: UInt8 = 0x3D
    static let backslash: UInt8 = 0x5C

    /// `tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
    /// / DIGIT / ALPHA` as a 128-bit set (bit `b` set when byte `b` is a tchar), so the test is two
    /// shifts and no branches on the byte's class.
    private static let tcharLow: UInt64 = {
        var bits: UInt64 = 0
        for byte in Array("!#$%&'*+-.^_`|~0123456789".utf8) where byte < 64 { bits |= 1 << UInt64(byte) }
        return bits
    }()
    private static let tcharHigh: UInt64 = {
        var bits: UInt64 = 0
        let set = Array("!#$%&'*+-.^_`|~ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
        for byte in set where byte >= 64 { bits |= 1 << UInt64(byte - 64) }
        return bits
    }()

    /// RFC 7230 §3.2.6 `tchar`.
    static func isTchar(_ byte: UInt8) -> Bool {
        if byte < 64 { return (Self.tcharLow >> UInt64(byte)) & 1 == 1 }
        if byte < 128 { return (Self.tcharHigh >> UInt64(byte - 64)) & 1 == 1 }
        return false
    }

    /// RFC 7230 §3.2.3 `OWS = *( SP / HTAB )`.
    static func isOWS(_ byte: UInt8) -> Bool { byte == Self.space || byte == Self.horizontalTab }

    /// RFC 7230 §3.2.6 `qdtext` and the escaped byte of `quoted-pair`, without `obs-text`: HTAB, SP and
    /// VCHAR. (`obs-text` is legal in a quoted-string, but a value containing it can never be a token,
    /// which RFC 6455 §9.1 requires, so it is rejected as early as possible.)
    static func isQuotable(_ byte: UInt8) -> Bool {
        byte == Self.horizontalTab || (0x20...0x7E).contains(byte)
    }

    /// At most the first 32 characters of `text`, with `…` when cut: error details quote peer input, but
    /// a 1 MiB token must not become a 1 MiB log line.
    static func excerpt(_ text: String) -> String {
        text.utf8.count <= 32 ? text : text.prefix(32) + "…"
    }

    /// A readable name for `byte` in error details: `'x'` for printable ASCII, otherwise what kind of
    /// byte it is and its hex value.
    static func describe(_ byte: UInt8) -> String {
        let hex = "0x" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
        switch byte {
        case 0x21...0x7E: return "'\(Character(Unicode.Scalar(byte)))'"
        case Self.space: return "space"
        case Self.horizontalTab: return "tab"
        case 0x80...0xFF: return "non-ASCII byte \(hex)"
        default: return "control character \(hex)"
        }
    }
}
