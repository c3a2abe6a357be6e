/// Authentication at the handshake (issue #13 §2–3): a route's `auth` mapping, one key per method.
/// The methods run in a fixed order, `jwt` then `forward`, stopping at the first refusal
/// (``UpgradeAuthorizer``, docs/DESIGN-NOTES.md "Authorization stage"). Documented in
/// `config/example.yaml` and the README.
extension GatewayConfiguration {
    /// `routes[].auth`: how a route authenticates an upgrade before the upstream is contacted.
    public struct RouteAuthentication: Sendable, Hashable {
        /// JWT bearer tokens (`auth.jwt`): checked first (``JWTAuthentication``).
        public var jwt: JWTAuthentication?
        /// Forward-auth (`auth.forward`): an HTTP service decides (``ForwardAuthentication``).
        public var forward: ForwardAuthentication?

        public init(jwt: JWTAuthentication? = nil, forward: ForwardAuthentication? = nil) {
            self.jwt = jwt
            self.forward = forward
        }
    }
}

extension GatewayConfiguration.RouteAuthentication {
    static let yaml = YAMLSchema<Self>([
        GatewayConfiguration.JWTAuthentication.key(\.jwt),
        .optional("forward") { value, field, reader throws(ConfigurationError) in
            var forward = GatewayConfiguration.ForwardAuthentication(url: "")
            let mapping = try GatewayConfiguration.ForwardAuthentication.yaml.read(field, into: &forward, with: reader)
            try forward.validate(at: mapping.path)
            value.forward = forward
        },
    ])

    /// The `auth` key of a route.
    static let routeKey = YAMLSchema<GatewayConfiguration.Route>.Key.optional("auth") { value, field, reader throws(ConfigurationError) in
        var authentication = Self()
        try Self.yaml.read(field, into: &authentication, with: reader)
        value.auth = authentication
    }
}
