/// Which client-certificate settings each TLS name of a server context has, so that an HTTP `Host`
/// can be checked against the name the handshake chose (the gateway's 421 rule, README "Client
/// certificates").
///
/// Routing follows `Host`, the certificate check follows SNI. A client that shakes hands under a name
/// that asks for no certificate (or trusts other CAs) and then names, in `Host`, a name of the same
/// listener that requires one must not reach that name's routes unchecked. nginx answers such a
/// request 421 Misdirected Request when the two virtual servers' client verification differs
/// (`ngx_http_set_virtual_server`); so does the gateway.
///
/// Each entry (index 0 the default, then one per virtual host, in configuration order) has a
/// *settings key*: the hex SHA-256 of the mode, the depth and the sorted SHA-256s of the trusted CA
/// certificates, or of "none". Unlike the session ID context it leaves out the host itself, so two
/// names with the same settings have equal keys. Equal keys ⇔ the same check. Pure (the matcher and
/// strings), so it is built and tested without OpenSSL.
public struct TLSClientAuthenticationTable: Hashable, Sendable {
    private let matcher: ServerNameMatcher
    private let keys: [String]

    /// - Parameters:
    ///   - hosts: each virtual host's server names, in configuration order (as
    ///     ``TLSServerConfiguration/virtualHosts``).
    ///   - keys: the settings key of the default, then of each virtual host (`hosts.count + 1` keys).
    public init(hosts: [[String]], keys: [String]) throws {
        guard keys.count == hosts.count + 1 else {
            throw TLSError(code: .invalidConfiguration, reason: "\(keys.count) client authentication keys for \(hosts.count) hosts")
        }
        self.matcher = try ServerNameMatcher(hosts: hosts)
        self.keys = keys
    }

    /// The entry a name selects, as the SNI callback selects it (exact names, then one-label
    /// wildcards; case and a trailing dot ignored): nil for the default.
    public func entry(forServerName name: String?) -> Int? {
        name.flatMap { self.matcher.match($0) }
    }

    /// The settings key of an entry (nil: the default).
    public func key(forEntry entry: Int?) -> String {
        self.keys[entry.map { $0 + 1 } ?? 0]
    }
}
