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

        /// No method at all: an `auth` that would let every client in (`auth: {}`, `auth:` with no
        /// value, `auth: {jwt: null}`). Refused at start, by `wsgate check` and on reload
        /// (``emptyMessage(route:)``), as a route that looks protected but is not.
        var isEmpty: Bool { self.jwt == nil && self.forward == nil }

        /// The error for an empty `auth` of the route labelled `route`: what to write instead.
        static func emptyMessage(route: String) -> String {
            "route \(quote(route)) has auth with no method, which would let every client in: "
                + "write jwt: {jwks: FILE} and/or forward: {url: http://HOST/PATH} under auth, "
                + "or remove auth to leave the route open"
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

    /// The `auth` key of a route. A method written with no value (`jwt:`, `forward: null`) is an error
    /// rather than absent: whoever wrote it meant the route to be protected.
    static let routeKey = YAMLSchema<GatewayConfiguration.Route>.Key.optional("auth") { value, field, reader throws(ConfigurationError) in
        var authentication = Self()
        let mapping = try Self.yaml.read(field, into: &authentication, with: reader)
        if mapping.hasNoValue("jwt") {
            throw mapping.path.key("jwt").error(.missingKey, "has no value: write jwks: FILE under it (and the other jwt keys), or remove jwt")
        }
        if mapping.hasNoValue("forward") {
            throw mapping.path.key("forward").error(.missingKey, "has no value: write url: http://HOST/PATH under it, or remove forward")
        }
        value.auth = authentication
    }
}
