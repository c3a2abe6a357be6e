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
            throw path.key("trusted_proxies").index(index).error("\(quote(entry)) is not an IP address or CIDR block (10.0.0.0/8, 2001:db8::/32)")
        }
        for (index, listener) in self.listeners.enumerated() {
            let listenerPath = path.key("listeners").index(index)
            if listener.proxyProtocol != .off && self.trustedProxies.isEmpty {
                // PROXY headers are believed only from trusted proxies: with none, every connection would be closed.
                throw listenerPath.key("proxy_protocol").error("needs trusted_proxies: the PROXY header is accepted only from them")
            }
            if listener.requireSNIHostMatch && listener.tls == nil {
                throw listenerPath.key("require_sni_host_match").error("needs tls: a plaintext listener has no SNI name")
            }
        }
        guard self.timeouts.proxyHeader > .zero else {
            throw path.key("timeouts").key("proxy_header").error("must be greater than 0")
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

extension YAMLConfigurationReader {
    /// `trusted_proxies` and `client_address` at the top level.
    func edge(_ top: YAMLMapping, into configuration: inout GatewayConfiguration) throws(ConfigurationError) {
        if let field = top.optional("trusted_proxies") {
            for entry in try field.list() {
                let text = try entry.string()
                guard IPAddressRange(text) != nil else {
                    throw entry.path.error("\(quote(text)) is not an IP address or CIDR block (10.0.0.0/8, 2001:db8::/32)")
                }
                configuration.trustedProxies.append(text)
            }
        }
        if let field = top.optional("client_address") {
            let text = try field.string()
            guard let source = ClientAddressSource(rawValue: text) else {
                throw field.path.error("\(quote(text)) is not a client address source (use peer or chain)")
            }
            configuration.clientAddress = source
        }
    }

    /// `proxy_protocol` and `require_sni_host_match` of one listener.
    func listenerEdge(_ map: YAMLMapping, into listener: inout GatewayConfiguration.Listener) throws(ConfigurationError) {
        if let field = map.optional("proxy_protocol") {
            let text = try field.string()
            guard let mode = ProxyProtocolMode(rawValue: text) else {
                throw field.path.error("\(quote(text)) is not a PROXY protocol mode (use off, v1, v2 or any)")
            }
            listener.proxyProtocol = mode
        }
        if let field = map.optional("require_sni_host_match") { listener.requireSNIHostMatch = try field.bool() }
    }
}
