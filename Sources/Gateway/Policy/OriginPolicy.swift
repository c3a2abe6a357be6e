/// A serialized origin (RFC 6454 §6.2), normalised: `scheme://host[:port]` with the scheme and host in
/// lower case and the port folded when it is the scheme's default (80 for `http`/`ws`, 443 for
/// `https`/`wss`).
///
/// Parsing is strict, because the value is compared for security: no user information, path, query,
/// fragment, white space or percent-escape; the host is a DNS name (ASCII letters, digits, `-`, `.`; a
/// browser sends IDNs as punycode), an IPv4 address or a bracketed IPv6 literal; a trailing dot is kept
/// (`app.example.` is not `app.example`, RELIABILITY O-02).
struct Origin: Hashable, Sendable, CustomStringConvertible {
    var scheme: String
    var host: String
    /// `nil` when it is the scheme's default port.
    var port: Int?

    var description: String {
        self.port.map { "\(self.scheme)://\(self.host):\($0)" } ?? "\(self.scheme)://\(self.host)"
    }

    static func defaultPort(for scheme: String) -> Int? {
        switch scheme {
        case "http", "ws": 80
        case "https", "wss": 443
        default: nil
        }
    }

    /// Parses an `Origin` header value; `nil` when it is not a serialized origin (`null` included).
    init?(_ text: String) {
        guard let separator = text.range(of: "://") else { return nil }
        let scheme = text[..<separator.lowerBound]
        guard let first = scheme.unicodeScalars.first, first.isASCIILetter,
            scheme.unicodeScalars.allSatisfy({ $0.isASCIILetter || $0.isASCIIDigit || "+-.".unicodeScalars.contains($0) })
        else { return nil }
        self.scheme = scheme.lowercased()
        let authority = text[separator.upperBound...]
        guard let (host, port) = Self.hostAndPort(authority, wildcardAllowed: false) else { return nil }
        self.host = host
        self.port = port == Self.defaultPort(for: self.scheme) ? nil : port
    }

    /// `host[:port]` with nothing else: lower-cased host and the port (`nil` if absent).
    fileprivate static func hostAndPort(_ authority: Substring, wildcardAllowed: Bool) -> (String, Int?)? {
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[...close]
            let inner = authority[authority.index(after: authority.startIndex)..<close]
            guard !inner.isEmpty, inner.unicodeScalars.allSatisfy({ $0.isASCIIHexDigit || $0 == ":" || $0 == "." }),
                HostSyntax.isIPv6Literal(String(inner))
            else { return nil }
            let rest = authority[authority.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { return nil }
                portText = rest.dropFirst()
            }
        } else {
            if let colon = authority.firstIndex(of: ":") {
                host = authority[..<colon]
                portText = authority[authority.index(after: colon)...]
            } else {
                host = authority
            }
            var name = host
            if wildcardAllowed, name.hasPrefix("*.") { name = name.dropFirst(2) }
            // Labels of ASCII letters, digits and `-`; one trailing dot allowed (a distinct origin).
            let labels = (name.hasSuffix(".") ? name.dropLast() : name).split(separator: ".", omittingEmptySubsequences: false)
            guard !name.isEmpty, name.utf8.count <= 254,
                labels.allSatisfy({ label in
                    !label.isEmpty && label.utf8.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                        && label.unicodeScalars.allSatisfy { $0.isASCIILetter || $0.isASCIIDigit || $0 == "-" }
                })
            else { return nil }
        }
        var port: Int?
        if let portText {
            guard !portText.isEmpty, portText.utf8.count <= 5, portText.unicodeScalars.allSatisfy(\.isASCIIDigit),
                let value = Int(portText), (1...65535).contains(value)
            else { return nil }
            port = value
        }
        return (host.lowercased(), port)
    }
}

/// An ``GatewayConfiguration/OriginPolicy`` compiled once at start (STYLE P8): the allow-list parsed
/// into exact origins and wildcard patterns.
struct CompiledOriginPolicy: Sendable {
    /// The outcome of checking one request, with a stable reason label for metrics and logs.
    enum Decision: Equatable, Sendable {
        case allowed(reason: Reason)
        case refused(reason: Reason, message: String)
    }

    /// The rule that decided: the `reason` label of `wsgate_origin_decisions_total` and, after
    /// `origin-`, the refusal reason of the 403 (its raw value in both, and in string interpolation).
    enum Reason: String, Sendable, CustomStringConvertible {
        /// No allow-list: any origin (mixed content still refused).
        case any
        /// On the allow-list, exactly.
        case listed
        /// Matched by a `scheme://*.suffix` pattern.
        case wildcard
        /// No `Origin` header, and `missing: allow`.
        case missingAllowed = "missing-allowed"
        /// `Origin: null`, and `null: allow`.
        case nullAllowed = "null-allowed"
        /// No `Origin` header, and `missing: refuse`.
        case missing
        /// `Origin: null`, and `null: refuse`.
        case null
        /// Not a serialized origin (RFC 6454 §6.2).
        case malformed
        /// An `http:` origin on a TLS listener, or an `https:` origin on a plaintext one.
        case mixedContent = "mixed-content"
        /// Not on the allow-list.
        case notAllowed = "not-allowed"

        var description: String { self.rawValue }
    }

    private struct Pattern: Hashable, Sendable {
        var scheme: String
        /// `.example.com` for `*.example.com`.
        var suffix: String
        var port: Int?
    }

    let settings: GatewayConfiguration.OriginPolicy
    private let exact: Set<Origin>
    private let patterns: [Pattern]

    /// Compiles `settings`; the error names the index of a malformed `allow` entry.
    init(_ settings: GatewayConfiguration.OriginPolicy) throws(OriginPatternError) {
        self.settings = settings
        var exact: Set<Origin> = []
        var patterns: [Pattern] = []
        for (index, entry) in settings.allow.enumerated() {
            if let pattern = Self.pattern(entry) {
                patterns.append(pattern)
            } else if let origin = Origin(entry) {
                exact.insert(origin)
            } else {
                throw OriginPatternError(index: index, entry: entry)
            }
        }
        self.exact = exact
        self.patterns = patterns
    }

    /// `scheme://*.suffix[:port]`.
    private static func pattern(_ text: String) -> Pattern? {
        guard let separator = text.range(of: "://*.") else { return nil }
        let scheme = text[..<separator.lowerBound].lowercased()
        guard !scheme.isEmpty, scheme.unicodeScalars.allSatisfy({ $0.isASCIILetter || $0.isASCIIDigit || "+-.".unicodeScalars.contains($0) })
        else { return nil }
        let authority = text[text.index(separator.lowerBound, offsetBy: 3)...]
        guard let (host, port) = Origin.hostAndPort(authority, wildcardAllowed: true), host.hasPrefix("*.") else { return nil }
        return Pattern(scheme: scheme, suffix: String(host.dropFirst()), port: port == Origin.defaultPort(for: scheme) ? nil : port)
    }

    /// Decides for the request's `Origin` header value (`nil` when absent), on a listener with or
    /// without TLS. Rules and their order: ``GatewayConfiguration/OriginPolicy``.
    func check(_ header: String?, listenerUsesTLS: Bool) -> Decision {
        guard let header else {
            return self.settings.missing == .allow
                ? .allowed(reason: .missingAllowed)
                : .refused(reason: .missing, message: "an Origin header is required")
        }
        if header == "null" {
            return self.settings.null == .allow
                ? .allowed(reason: .nullAllowed)
                : .refused(reason: .null, message: "Origin null is not allowed")
        }
        guard let origin = Origin(header) else {
            return .refused(reason: .malformed, message: "the Origin header is not a serialized origin (RFC 6454)")
        }
        if self.settings.mixedContent == .refuse {
            if listenerUsesTLS && origin.scheme == "http" {
                return .refused(reason: .mixedContent, message: "mixed content: an http: origin may not open a wss: connection")
            }
            if !listenerUsesTLS && origin.scheme == "https" {
                return .refused(reason: .mixedContent, message: "mixed content: an https: origin may not open a plaintext ws: connection")
            }
        }
        if self.settings.allow.isEmpty { return .allowed(reason: .any) }
        if self.exact.contains(origin) { return .allowed(reason: .listed) }
        for pattern in self.patterns
        where pattern.scheme == origin.scheme && pattern.port == origin.port && origin.host.hasSuffix(pattern.suffix)
            && origin.host.utf8.count > pattern.suffix.utf8.count && !origin.host.hasPrefix("[")
        {
            return .allowed(reason: .wildcard)
        }
        return .refused(reason: .notAllowed, message: "origin \(origin) is not allowed")
    }
}

/// An `allow` entry that is neither a serialized origin nor a `scheme://*.suffix` pattern.
struct OriginPatternError: Error, Hashable {
    var index: Int
    var entry: String
}

extension Unicode.Scalar {
    fileprivate var isASCIILetter: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
    fileprivate var isASCIIHexDigit: Bool { self.isASCIIDigit || ("a"..."f").contains(self) || ("A"..."F").contains(self) }
}
