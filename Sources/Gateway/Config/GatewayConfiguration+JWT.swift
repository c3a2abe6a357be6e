import Frames
import Yams

/// JWT at the handshake (issue #13 §2): `routes[].auth.jwt`. Documented in `config/example.yaml`, the
/// README's configuration reference and docs/DESIGN-NOTES.md ("JWT at the handshake").
extension GatewayConfiguration {
    /// `routes[].auth.jwt`: a bearer token (RFC 6750) must be a JWT (RFC 7519) signed by a key of the
    /// route's JWKS (RFC 7517) with an allowed algorithm, from an allowed issuer, for an allowed audience.
    public struct JWTAuthentication: Sendable, Hashable {
        /// Where a token may come from, tried in the configured order (the first that carries one wins).
        public enum TokenSource: Sendable, Hashable, CustomStringConvertible {
            /// `Authorization: Bearer <token>` (RFC 6750 §2.1). Browsers cannot set it on a WebSocket.
            case header
            /// `?<name>=<token>` in the request target (RFC 6750 §2.3).
            case query(String)
            /// The cookie `<name>` (RFC 6265).
            case cookie(String)
            /// A `Sec-WebSocket-Protocol` entry `base64url.bearer.authorization.k8s.io.<token>` (Kubernetes).
            case subprotocol

            public var description: String {
                switch self {
                case .header: "header"
                case .query(let name): "query:\(name)"
                case .cookie(let name): "cookie:\(name)"
                case .subprotocol: "subprotocol"
                }
            }

            /// `header`, `query:NAME`, `cookie:NAME` or `subprotocol`; nil for anything else.
            public init?(_ text: String) {
                if text == "header" {
                    self = .header
                } else if text == "subprotocol" {
                    self = .subprotocol
                } else if text.hasPrefix("query:"), case let name = String(text.dropFirst(6)), Self.isValidName(name) {
                    self = .query(name)
                } else if text.hasPrefix("cookie:"), case let name = String(text.dropFirst(7)), HTTPSyntax.isToken(name) {
                    self = .cookie(name)
                } else {
                    return nil
                }
            }

            /// A query parameter name is matched as written (never percent-decoded: what is matched is
            /// exactly what is removed from the forwarded target), so it may only use unreserved characters.
            static func isValidName(_ name: String) -> Bool {
                !name.isEmpty && name.utf8.allSatisfy { $0.isUnreservedURIByte }
            }
        }

        /// A claim copied to an upstream request header (`claims_to_headers`).
        public struct ClaimHeader: Sendable, Hashable {
            public var claim: String
            public var header: String
            public init(claim: String, header: String) {
                self.claim = claim
                self.header = header
            }
        }

        /// A claim that must have one of `values` (`required_claims`); otherwise 403.
        public struct RequiredClaim: Sendable, Hashable {
            public var claim: String
            public var values: [String]
            public init(claim: String, values: [String]) {
                self.claim = claim
                self.values = values
            }
        }

        /// The JWKS file (RFC 7517 §5), read at start and on every reload (SIGHUP).
        public var jwks: String
        /// Accepted `iss` values; empty: any issuer (the claim is then not required).
        public var issuers: [String] = []
        /// Accepted `aud` values (one of the token's must be listed); empty: any audience.
        public var audiences: [String] = []
        /// Accepted `alg` values. `none` is never accepted; `HS*` only verify with an `oct` key.
        public var algorithms: [String] = Self.asymmetricAlgorithms
        /// Tolerance on `exp`, `nbf` and `iat` for clocks that disagree (RFC 7519 §4.1.4: "some small leeway").
        public var clockSkew: Duration = .seconds(30)
        public var tokenSources: [TokenSource] = [.header]
        public var claimsToHeaders: [ClaimHeader] = []
        public var requiredClaims: [RequiredClaim] = []
        /// Close a live connection with 1008 "token expired" at the token's `exp`.
        public var closeOnExpiry = false
        /// The `realm` of `WWW-Authenticate` (RFC 6750 §3).
        public var realm = "wsgate"

        public init(jwks: String) {
            self.jwks = jwks
        }

        /// The algorithms of RFC 7518 §3.1 (and EdDSA, RFC 8037) the gateway verifies.
        public static let supportedAlgorithms = [
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512",
        ]
        /// The default: every public-key algorithm; a shared secret (`HS*`) must be asked for.
        public static let asymmetricAlgorithms = supportedAlgorithms.filter { !$0.hasPrefix("HS") }
        /// Longest clock skew accepted: more would make `exp` meaningless.
        static let maxClockSkew = Duration.seconds(300)
        /// Headers the handshake itself owns: a claim may not be written into them.
        static let reservedHeaders: Set<String> = UpstreamHandshake.hopByHop.union(["authorization", "cookie", "origin"])

        /// Checks that hold without reading the JWKS file.
        func validate(at path: ConfigPath) throws(ConfigurationError) {
            if self.jwks.isEmpty { throw path.key("jwks").error(.invalidValue, "expected a file path, found an empty string") }
            if self.algorithms.isEmpty { throw path.key("algorithms").error(.invalidValue, "at least one algorithm is needed") }
            for (index, algorithm) in self.algorithms.enumerated() where !Self.supportedAlgorithms.contains(algorithm) {
                let why =
                    algorithm.lowercased() == "none"
                    ? "\"none\" is never accepted: an unsigned token proves nothing (RFC 8725 §3.1)"
                    : "\(quote(algorithm)) is not a supported algorithm (\(Self.supportedAlgorithms.joined(separator: ", ")))"
                throw path.key("algorithms").index(index).error(.invalidValue, why)
            }
            if self.clockSkew < .zero || self.clockSkew > Self.maxClockSkew {
                throw path.key("clock_skew").error(.outOfRange, "at most 5m (the tolerance on exp and nbf)")
            }
            if self.tokenSources.isEmpty { throw path.key("token_sources").error(.invalidValue, "at least one source is needed") }
            if Set(self.tokenSources).count != self.tokenSources.count {
                throw path.key("token_sources").error(.conflict, "a source is listed twice")
            }
            var headers: Set<String> = []
            for claimHeader in self.claimsToHeaders {
                let at = path.key("claims_to_headers").key(claimHeader.claim)
                guard HTTPSyntax.isToken(claimHeader.header) else {
                    throw at.error(.invalidValue, "\(quote(claimHeader.header)) is not a header name")
                }
                let lower = claimHeader.header.lowercased()
                if Self.reservedHeaders.contains(lower) || ForwardingHeaders.clientSentNames.contains(lower) {
                    throw at.error(.invalidValue, "\(claimHeader.header) is set by the gateway itself")
                }
                if !headers.insert(lower).inserted { throw at.error(.conflict, "\(claimHeader.header) is the target of two claims") }
            }
            for required in self.requiredClaims where required.values.isEmpty {
                throw path.key("required_claims").key(required.claim).error(.invalidValue, "at least one value is needed")
            }
            if self.realm.utf8.contains(where: { $0 == 0x22 || $0 == 0x5C || $0 < 0x20 || $0 == 0x7F }) {
                throw path.key("realm").error(.invalidValue, "a realm is written in a quoted string: no quote, backslash or control character")
            }
        }
    }
}

extension UInt8 {
    /// RFC 3986 §2.3: `ALPHA / DIGIT / "-" / "." / "_" / "~"`.
    var isUnreservedURIByte: Bool {
        (0x41...0x5A).contains(self) || (0x61...0x7A).contains(self) || (0x30...0x39).contains(self) || self == 0x2D || self == 0x2E
            || self == 0x5F || self == 0x7E
    }
}

extension GatewayConfiguration.JWTAuthentication {
    static let yaml = YAMLSchema<Self>([
        .required("jwks") { value, field, reader throws(ConfigurationError) in value.jwks = try reader.filePath(field) },
        .strings("issuers", \.issuers),
        .strings("audiences", \.audiences),
        .strings("algorithms", \.algorithms),
        .duration("clock_skew", \.clockSkew),
        .optional("token_sources") { value, field, _ throws(ConfigurationError) in
            var sources: [TokenSource] = []
            for entry in try field.list() {
                sources.append(try entry.word(TokenSource.init, expected: "header, query:NAME, cookie:NAME or subprotocol"))
            }
            value.tokenSources = sources
        },
        .optional("claims_to_headers") { value, field, _ throws(ConfigurationError) in
            value.claimsToHeaders = try field.stringMapping().map { entry throws(ConfigurationError) in
                ClaimHeader(claim: entry.key, header: try entry.value.string())
            }
        },
        .optional("required_claims") { value, field, _ throws(ConfigurationError) in
            value.requiredClaims = try field.stringMapping().map { entry throws(ConfigurationError) in
                if case .sequence = entry.value.node {
                    return RequiredClaim(claim: entry.key, values: try entry.value.strings())
                }
                return RequiredClaim(claim: entry.key, values: [try entry.value.string()])
            }
        },
        .bool("close_on_expiry", \.closeOnExpiry),
        .optional("realm") { value, field, _ throws(ConfigurationError) in value.realm = try field.string() },
    ])

    /// The `jwt` key of a route's `auth`.
    static func key<Value>(_ keyPath: WritableKeyPath<Value, Self?> & Sendable) -> YAMLSchema<Value>.Key {
        .optional("jwt") { value, field, reader throws(ConfigurationError) in
            var jwt = Self(jwks: "")
            let mapping = try Self.yaml.read(field, into: &jwt, with: reader)
            try jwt.validate(at: mapping.path)
            value[keyPath: keyPath] = jwt
        }
    }
}

extension YAMLField {
    /// A mapping whose keys are data (claim names), in document order.
    func stringMapping() throws(ConfigurationError) -> [(key: String, value: YAMLField)] {
        guard case .mapping(let mapping) = self.node else {
            throw self.path.error(.wrongType, "expected a mapping, found \(self.kind)")
        }
        var entries: [(key: String, value: YAMLField)] = []
        for (keyNode, value) in mapping {
            guard case .scalar(let key) = keyNode, !key.string.isEmpty else {
                throw self.path.error(.wrongType, "keys must be plain strings")
            }
            entries.append((key.string, YAMLField(node: value, path: self.path.key(key.string))))
        }
        return entries
    }
}
