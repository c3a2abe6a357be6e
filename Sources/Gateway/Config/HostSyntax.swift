import Foundation

/// Host names, IP literals, host patterns, and the two address forms of the configuration file:
/// listen addresses (`host:port`, `[v6]:port`) and upstream URLs (`ws://host[:port][/path]`).
enum HostSyntax {
    /// An IPv4 dotted quad or a DNS name (RFC 1123 labels of letters, digits, `-`; `_` is tolerated for
    /// container service names). IPv4 literals satisfy the same grammar.
    static func isHostName(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 253 else { return false }
        return text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.unicodeScalars.allSatisfy(isLabelScalar)
        }
    }

    private static func isLabelScalar(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
            || scalar == "-" || scalar == "_"
    }

    /// An IPv6 address (without brackets), as `inet_pton` reads it.
    static func isIPv6Literal(_ text: String) -> Bool {
        var address = in6_addr()
        return inet_pton(AF_INET6, text, &address) == 1
    }

    /// A route host or SNI name: an exact name (or bracketed IPv6 literal) or `*.suffix`.
    static func isHostPattern(_ text: String) -> Bool {
        if text.hasPrefix("*.") { return isHostName(String(text.dropFirst(2))) }
        if text.hasPrefix("["), text.hasSuffix("]") { return isIPv6Literal(String(text.dropFirst().dropLast())) }
        return isHostName(text)
    }

    /// `host:port` or `[ipv6]:port`; the host comes back without brackets.
    static func listenAddress(_ text: String, at path: ConfigPath) throws(ConfigurationError) -> (host: String, port: Int) {
        let example = "(use host:port, e.g. 0.0.0.0:8443 or [::]:8443)"
        let host: String
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw path.error(.invalidValue, "\(quote(text)) has no closing \"]\" \(example)")
            }
            host = String(text[text.index(after: text.startIndex)..<close])
            guard isIPv6Literal(host) else { throw path.error(.invalidValue, "\(quote(host)) is not an IPv6 address") }
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw path.error(.invalidValue, "\(quote(text)) has no port \(example)") }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                throw path.error(.invalidValue, "\(quote(text)) has no port \(example)")
            }
            host = String(text[..<colon])
            portText = text[text.index(after: colon)...]
            guard !host.contains(":") else {
                throw path.error(.invalidValue, "\(quote(text)): put an IPv6 address in brackets, e.g. [::1]:8443")
            }
            guard !host.isEmpty else { throw path.error(.invalidValue, "\(quote(text)) has no host \(example)") }
            guard isHostName(host) else {
                throw path.error(.invalidValue, "\(quote(host)) is not an IP address or host name")
            }
        }
        return (host, try port(portText, in: text, at: path))
    }

    /// A decimal port in 1–65535.
    static func port(_ text: Substring, in whole: String, at path: ConfigPath) throws(ConfigurationError) -> Int {
        guard !text.isEmpty, text.allSatisfy(\.isASCIIDigit) else {
            throw path.error(.invalidValue, "\(quote(whole)) has no valid port")
        }
        guard let port = Int(text), (1...65535).contains(port) else {
            throw path.error(.outOfRange, "port \(text) is out of range 1–65535")
        }
        return port
    }

    /// `ws://host[:port][/path]` or `wss://…`; IPv6 literals in brackets. Default ports 80 and 443.
    static func upstream(_ text: String, at path: ConfigPath) throws(ConfigurationError) -> GatewayConfiguration.Upstream {
        let quoted = quote(text)
        guard let separator = text.range(of: "://"),
            let scheme = GatewayConfiguration.Upstream.Scheme(rawValue: text[..<separator.lowerBound].lowercased())
        else {
            throw path.error(.invalidValue, "\(quoted) is not a ws:// or wss:// URL")
        }
        let afterScheme = text[separator.upperBound...]
        let authority = afterScheme.prefix { $0 != "/" }
        let pathPart = afterScheme.dropFirst(authority.count)
        if let bad = afterScheme.first(where: { $0 == "?" || $0 == "#" || $0.isWhitespace }) {
            let what = bad == "?" ? "a query" : bad == "#" ? "a fragment" : "white space"
            throw path.error(.invalidValue, "\(quoted) has \(what): an upstream URL is scheme, host, port and path only")
        }
        guard !authority.contains("@") else {
            throw path.error(.invalidValue, "\(quoted) has user information: credentials do not belong in the URL")
        }
        let host: String
        var portText: Substring? = nil
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw path.error(.invalidValue, "\(quoted) has no closing \"]\"")
            }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            guard isIPv6Literal(host) else {
                throw path.error(.invalidValue, "\(quoted): \(quote(host)) is not an IPv6 address")
            }
            let rest = authority[authority.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else {
                    throw path.error(.invalidValue, "\(quoted) has text after the IPv6 address")
                }
                portText = rest.dropFirst()
            }
        } else {
            if let colon = authority.firstIndex(of: ":") {
                host = String(authority[..<colon])
                portText = authority[authority.index(after: colon)...]
            } else {
                host = String(authority)
            }
            guard !host.isEmpty else { throw path.error(.invalidValue, "\(quoted) has no host") }
            guard isHostName(host) else {
                throw path.error(.invalidValue, "\(quoted): \(quote(host)) is not an IP address or host name")
            }
        }
        let port = try portText.map { (text) throws(ConfigurationError) in try Self.port(text, in: quoted, at: path) }
        return GatewayConfiguration.Upstream(
            scheme: scheme,
            host: host,
            port: port ?? (scheme == .ws ? 80 : 443),
            path: pathPart.isEmpty ? nil : String(pathPart)
        )
    }
}
