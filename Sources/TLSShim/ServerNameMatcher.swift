/// Chooses a virtual host for an SNI name: exact names first, then one-label wildcards
/// (`*.example.com` matches `a.example.com`, not `example.com` nor `a.b.example.com`, as RFC 6125
/// §6.4.3 allows for certificates). Case-insensitive (RFC 4343), a trailing dot ignored. Pure, so it is
/// tested without OpenSSL.
struct ServerNameMatcher: Hashable, Sendable {
    private var exact: [String: Int] = [:]
    private var wildcardSuffixes: [String: Int] = [:]

    /// - Parameter names: the configured names of each virtual host, by index. The first host that
    ///   lists a name wins.
    init(hosts names: [[String]]) throws {
        for (index, hostNames) in names.enumerated() {
            for raw in hostNames {
                let name = Self.normalise(raw)
                if name.hasPrefix("*.") {
                    let suffix = String(name.dropFirst(2))
                    guard !suffix.isEmpty, !suffix.contains("*") else {
                        throw TLSError(code: .invalidConfiguration, reason: "invalid wildcard server name \"\(raw)\"")
                    }
                    if self.wildcardSuffixes[suffix] == nil { self.wildcardSuffixes[suffix] = index }
                } else {
                    guard !name.isEmpty, !name.contains("*") else {
                        throw TLSError(code: .invalidConfiguration, reason: "invalid server name \"\(raw)\"")
                    }
                    if self.exact[name] == nil { self.exact[name] = index }
                }
            }
        }
    }

    /// The index of the virtual host for `serverName`, or nil for the default.
    func match(_ serverName: String) -> Int? {
        let name = Self.normalise(serverName)
        if let index = self.exact[name] { return index }
        guard let dot = name.firstIndex(of: "."), dot != name.startIndex else { return nil }
        return self.wildcardSuffixes[String(name[name.index(after: dot)...])]
    }

    private static func normalise(_ name: String) -> String {
        var lowered = name.lowercased()
        if lowered.hasSuffix(".") { lowered.removeLast() }
        return lowered
    }
}
