#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `Host` header value checked strictly (RFC 9110 §7.2, RFC 3986 §3.2.2–3.2.3): `host [ ":" port ]`
/// where host is a bracketed IPv6 literal that `inet_pton` accepts, or a name of ASCII letters, digits,
/// `-`, `.`, `_` and `~` (RFC 3986's unreserved set), and port is 1–5 digits up to 65535.
///
/// Decision (issue #11 §2): stricter than RFC 3986's `reg-name`, which also allows sub-delims
/// (`,` `;` `=` `'` …) and percent-encoding. No DNS name needs them; the Host is copied into
/// `X-Forwarded-Host` and `Forwarded: host=` where `,` `;` `=` `"` start a new list member or
/// parameter, and routing compares names literally, so `%61pi.example` would reach another route.
/// `IPvFuture` and zone identifiers (`[fe80::1%eth0]`) are refused too.
struct HostHeader: Hashable, Sendable {
    /// The value as sent (valid, so safe to copy into forwarding headers).
    let value: String
    /// The host alone, lowercased; an IPv6 literal keeps its brackets (`[::1]`), as routes write it.
    let host: String
    let port: Int?

    init?(_ value: String) {
        let utf8 = Array(value.utf8)
        guard !utf8.isEmpty, utf8.count <= 255 + 7 else { return nil }
        let hostEnd: Int
        if utf8[0] == UInt8(ascii: "[") {
            guard let close = utf8.firstIndex(of: UInt8(ascii: "]")), close > 1 else { return nil }
            let literal = String(decoding: utf8[1..<close], as: UTF8.self)
            // Only hex digits, `:` and `.` (an embedded IPv4): refuses zones and anything inet_pton might tolerate.
            guard literal.utf8.allSatisfy({ Self.isHexDigit($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") }) else { return nil }
            var address = in6_addr()
            guard inet_pton(AF_INET6, literal, &address) == 1 else { return nil }
            hostEnd = close + 1
        } else {
            hostEnd = utf8.firstIndex(of: UInt8(ascii: ":")) ?? utf8.count
            guard hostEnd > 0, utf8[..<hostEnd].allSatisfy(Self.isNameByte) else { return nil }
        }
        var port: Int?
        if hostEnd < utf8.count {
            let digits = utf8[(hostEnd + 1)...]
            guard utf8[hostEnd] == UInt8(ascii: ":"), (1...5).contains(digits.count),
                digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                let number = Int(String(decoding: digits, as: UTF8.self)), number <= 65535
            else { return nil }
            port = number
        }
        self.value = value
        self.host = String(decoding: utf8[..<hostEnd], as: UTF8.self).lowercased()
        self.port = port
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "f"))
    }

    /// RFC 3986 `unreserved`: ALPHA / DIGIT / "-" / "." / "_" / "~".
    private static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }
}
