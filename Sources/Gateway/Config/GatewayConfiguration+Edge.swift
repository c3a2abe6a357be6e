/// Edge settings (issue #11 §1–2): who is believed about the client's address, PROXY protocol on
/// listeners, and the SNI/Host match. Documented in `config/example.yaml` and the README.
///
/// ```yaml
/// trusted_proxies: [10.0.0.0/8, "fd00::/8"]
/// client_address: chain
/// listeners: [{ address: 0.0.0.0:8443, proxy_protocol: v2, require_sni_host_match: true }]
/// timeouts: { proxy_header: 5s }
/// ```
extension GatewayConfiguration {
    /// Peers whose forwarding headers and PROXY protocol headers are believed: CIDR blocks or single
    /// addresses (`10.0.0.0/8`, `::1`). Default: empty (the gateway is the edge).
    public var trustedProxies: [String] {
        get { self.edge.trustedProxies }
        set { self.edge.trustedProxies = newValue }
    }

    /// Where the client address for logs, per-IP limits and `Forwarded: for=` comes from. Default: `peer`.
    public var clientAddress: ClientAddressSource {
        get { self.edge.clientAddress }
        set { self.edge.clientAddress = newValue }
    }

    /// The stored edge settings (one field on the configuration, so that the other sections stay as they are).
    public struct Edge: Sendable, Hashable {
        public var trustedProxies: [String] = []
        public var clientAddress: ClientAddressSource = .peer

        public init() {}
    }

    /// The compiled trusted-proxy list (entries checked by ``validateEdge(at:)``).
    var compiledTrustedProxies: TrustedProxies {
        TrustedProxies(self.trustedProxies.compactMap { IPAddressRange($0) })
    }

    func validateEdge(at path: ConfigPath) throws(ConfigurationError) {
        for (index, entry) in self.trustedProxies.enumerated() where IPAddressRange(entry) == nil {
            throw path.key("trusted_proxies").index(index).error(
                .invalidValue,
                "\(quote(entry)) is not an IP address or CIDR block (10.0.0.0/8, 2001:db8::/32)"
            )
        }
        for (index, listener) in self.listeners.enumerated() {
            let listenerPath = path.key("listeners").index(index)
            if listener.proxyProtocol != .off && self.trustedProxies.isEmpty {
                // PROXY headers are believed only from trusted proxies: with none, every connection would be closed.
                throw listenerPath.key("proxy_protocol").error(.conflict, "needs trusted_proxies: the PROXY header is accepted only from them")
            }
            if listener.requireSNIHostMatch && listener.tls == nil {
                throw listenerPath.key("require_sni_host_match").error(.conflict, "needs tls: a plaintext listener has no SNI name")
            }
        }
        guard self.timeouts.proxyHeader > .zero else {
            throw path.key("timeouts").key("proxy_header").error(.outOfRange, "must be greater than 0")
        }
    }
}

extension GatewayConfiguration.Listener {
    /// The PROXY protocol header required on this listener. Default: `off`.
    public var proxyProtocol: ProxyProtocolMode {
        get { self.edge.proxyProtocol }
        set { self.edge.proxyProtocol = newValue }
    }

    /// Requires the Host of a TLS connection's upgrade request to be its SNI name (else 421 Misdirected
    /// Request, RFC 9110 §15.5.20), for operators who must rule out domain fronting. Default: false.
    public var requireSNIHostMatch: Bool {
        get { self.edge.requireSNIHostMatch }
        set { self.edge.requireSNIHostMatch = newValue }
    }

    public struct Edge: Sendable, Hashable {
        public var proxyProtocol: ProxyProtocolMode = .off
        public var requireSNIHostMatch = false
        public init() {}
    }
}

// MARK: - YAML keys (listed in the schemas of `GatewayConfiguration+YAML.swift`)

extension GatewayConfiguration.Edge {
    /// `trusted_proxies`: a list of addresses and CIDR blocks.
    static let trustedProxiesKey = YAMLSchema<GatewayConfiguration>.Key.optional("trusted_proxies") {
        value,
        field,
        reader throws(ConfigurationError) in
        value.trustedProxies = try reader.list(field) { (entry) throws(ConfigurationError) in
            let text = try entry.string()
            guard IPAddressRange(text) != nil else {
                throw entry.path.error(.invalidValue, "\(quote(text)) is not an IP address or CIDR block (10.0.0.0/8, 2001:db8::/32)")
            }
            return text
        }
    }

    /// `client_address`: `peer` or `chain`.
    static let clientAddressKey = YAMLSchema<GatewayConfiguration>.Key.optional("client_address") { value, field, _ throws(ConfigurationError) in
        value.clientAddress = try field.word({ ClientAddressSource(rawValue: $0) }, expected: "a client address source (use peer or chain)")
    }
}

extension GatewayConfiguration.Listener.Edge {
    /// `listeners[].proxy_protocol`: `off`, `v1`, `v2` or `any`.
    static let proxyProtocolKey = YAMLSchema<GatewayConfiguration.Listener>.Key.optional("proxy_protocol") {
        value,
        field,
        _ throws(ConfigurationError) in
        value.proxyProtocol = try field.word({ ProxyProtocolMode(rawValue: $0) }, expected: "a PROXY protocol mode (use off, v1, v2 or any)")
    }
}
