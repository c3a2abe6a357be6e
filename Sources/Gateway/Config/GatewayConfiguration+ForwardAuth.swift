import Frames

/// Forward-auth (issue #13 §3): `routes[].auth.forward`. Before the upstream is contacted, the gateway
/// asks an HTTP service with a `GET` carrying the upgrade's identity (`X-Forwarded-*`, the configured
/// request headers); 2xx allows, 401/403 is relayed to the client, anything else refuses with 502/504.
/// The client is ``ForwardAuthClient``; the decision ``ForwardAuthorizer``.
extension GatewayConfiguration {
    public struct ForwardAuthentication: Sendable, Hashable {
        /// The service's URL as written (`http://host:port/path`).
        public var url: String
        /// Parsed from ``url``: host (IPv6 without brackets), port, and the path requested (`/` if none).
        public var host: String = ""
        public var port: Int = 80
        public var path: String = "/"
        /// Connect plus the whole answer must be within it, or the client gets 504. Default: 5 s.
        public var timeout: Duration = .seconds(5)
        /// Headers of the upgrade request copied to the auth request (when the client sent them), besides
        /// the `X-Forwarded-Method/-Proto/-Host/-Uri/-For` the gateway always writes. Default: `Cookie`,
        /// `Authorization`.
        public var requestHeaders: [String] = ["Cookie", "Authorization"]
        /// Headers of a 2xx answer copied to the upstream request (client-sent copies removed; a header
        /// the answer lacks is removed from the upstream request too). Default: none.
        public var copyHeaders: [String] = []
        /// Open connections to the service per event loop (in use and idle); more requests wait.
        /// Default: 32.
        public var maxConnections: Int = 32
        /// Requests waiting for a connection per event loop; past it the client gets 503 at once.
        /// Default: 256.
        public var maxWaiting: Int = 256
        /// An idle pooled connection is closed after this long. Default: 30 s.
        public var idleTimeout: Duration = .seconds(30)

        public init(url: String) {
            self.url = url
        }

        /// An answer (head and body) larger than this is a failed answer (502) and its connection is closed:
        /// a broken or hostile auth service cannot make the gateway read without end.
        static let maxResponseBytes = 64 * 1024
        /// A refusal's body relayed to the client is cut at this many bytes.
        static let maxRelayedBodyBytes = 4 * 1024
    }
}

extension GatewayConfiguration.ForwardAuthentication {
    static let yaml = YAMLSchema<Self>([
        .required("url") { value, field, _ throws(ConfigurationError) in
            value.url = try field.string()
            try value.parseURL(at: field.path)
        },
        .duration("timeout", \.timeout),
        .strings("headers", \.requestHeaders),
        .strings("copy_headers", \.copyHeaders),
        .count("max_connections", \.maxConnections, in: 1...10_000),
        .count("max_waiting", \.maxWaiting, in: 0...1_000_000),
        .duration("idle_timeout", \.idleTimeout),
    ])

    /// Reads ``url`` into ``host``, ``port`` and ``path``: `http://` only (a sidecar or a service on the
    /// cluster network; TLS toward the auth service is not supported yet).
    mutating func parseURL(at path: ConfigPath) throws(ConfigurationError) {
        let lower = self.url.lowercased()
        if lower.hasPrefix("https://") {
            throw path.error(
                .invalidValue,
                "\(quote(self.url)): https:// is not supported for forward-auth yet; use http:// (a local sidecar or a service on a private network)"
            )
        }
        guard lower.hasPrefix("http://") else {
            throw path.error(.invalidValue, "\(quote(self.url)) is not an http:// URL")
        }
        let parsed = try HostSyntax.upstream("ws://" + self.url.dropFirst("http://".count), at: path)
        self.host = parsed.host
        self.port = parsed.port
        self.path = parsed.path ?? "/"
    }

    /// Checks that hold for code-built configurations too.
    func validate(at path: ConfigPath) throws(ConfigurationError) {
        guard self.timeout > .zero else { throw path.key("timeout").error(.outOfRange, "must be more than 0") }
        guard self.idleTimeout > .zero else { throw path.key("idle_timeout").error(.outOfRange, "must be more than 0") }
        for (index, name) in (self.requestHeaders + self.copyHeaders).enumerated() where !HTTPSyntax.isToken(name) {
            let key =
                index < self.requestHeaders.count
                ? path.key("headers").index(index) : path.key("copy_headers").index(index - self.requestHeaders.count)
            throw key.error(.invalidValue, "\(quote(name)) is not a header name")
        }
    }
}
