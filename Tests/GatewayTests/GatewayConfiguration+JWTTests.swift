import Testing

@testable import Gateway

/// `routes[].auth.jwt` in the configuration file (issue #13 §2).
@Suite struct GatewayConfigurationJWTTests {
    static func parse(_ jwt: String) throws(ConfigurationError) -> GatewayConfiguration {
        try GatewayConfiguration(
            yaml: """
                listeners: [{address: "127.0.0.1:8080"}]
                routes:
                  - upstreams: ["ws://127.0.0.1:9000"]
                    auth:
                      jwt:
                \(jwt.split(separator: "\n").map { "        " + $0 }.joined(separator: "\n"))
                """,
            baseDirectory: "/etc/wsgate"
        )
    }

    static func error(_ jwt: String) -> ConfigurationError? {
        do {
            _ = try Self.parse(jwt)
            return nil
        } catch {
            return error
        }
    }

    @Test func everyKeyIsRead() throws {
        let configuration = try Self.parse(
            """
            jwks: keys/jwks.json
            issuers: ["https://idp.test"]
            audiences: [chat, api]
            algorithms: [RS256, HS256]
            clock_skew: 10s
            token_sources: [subprotocol, "cookie:session", "query:access_token", header]
            claims_to_headers: {sub: X-User, email: X-Email}
            required_claims: {role: [admin, ops], tier: gold}
            close_on_expiry: true
            realm: chat
            """
        )
        let jwt = try #require(configuration.routes[0].auth?.jwt)
        #expect(jwt.jwks == "/etc/wsgate/keys/jwks.json")
        #expect(jwt.issuers == ["https://idp.test"])
        #expect(jwt.audiences == ["chat", "api"])
        #expect(jwt.algorithms == ["RS256", "HS256"])
        #expect(jwt.clockSkew == .seconds(10))
        #expect(jwt.tokenSources == [.subprotocol, .cookie("session"), .query("access_token"), .header])
        #expect(jwt.claimsToHeaders == [.init(claim: "sub", header: "X-User"), .init(claim: "email", header: "X-Email")])
        #expect(jwt.requiredClaims == [.init(claim: "role", values: ["admin", "ops"]), .init(claim: "tier", values: ["gold"])])
        #expect(jwt.closeOnExpiry)
        #expect(jwt.realm == "chat")
    }

    @Test func theDefaultsArePublicKeyAlgorithmsTheHeaderAndThirtySecondsOfSkew() throws {
        let jwt = try #require(try Self.parse("jwks: jwks.json").routes[0].auth?.jwt)
        #expect(jwt.algorithms == GatewayConfiguration.JWTAuthentication.asymmetricAlgorithms)
        #expect(!jwt.algorithms.contains { $0.hasPrefix("HS") })
        #expect(jwt.tokenSources == [.header])
        #expect(jwt.clockSkew == .seconds(30))
        #expect(!jwt.closeOnExpiry)
        #expect(jwt.issuers.isEmpty && jwt.audiences.isEmpty && jwt.claimsToHeaders.isEmpty && jwt.requiredClaims.isEmpty)
    }

    @Test func badValuesAreErrorsWithTheirKeyPath() {
        let path = "routes[0].auth.jwt"
        let cases: [(String, String, ConfigurationError.Code)] = [
            ("issuers: [a]", "\(path).jwks", .missingKey),
            ("jwks: k.json\nalgorithms: [RS256, none]", "\(path).algorithms[1]", .invalidValue),
            ("jwks: k.json\nalgorithms: [HS1]", "\(path).algorithms[0]", .invalidValue),
            ("jwks: k.json\nalgorithms: []", "\(path).algorithms", .invalidValue),
            ("jwks: k.json\nclock_skew: 1h", "\(path).clock_skew", .outOfRange),
            ("jwks: k.json\ntoken_sources: [header, bearer]", "\(path).token_sources[1]", .invalidValue),
            ("jwks: k.json\ntoken_sources: [header, header]", "\(path).token_sources", .conflict),
            ("jwks: k.json\ntoken_sources: [\"query:a b\"]", "\(path).token_sources[0]", .invalidValue),
            ("jwks: k.json\nclaims_to_headers: {sub: Host}", "\(path).claims_to_headers.sub", .invalidValue),
            ("jwks: k.json\nclaims_to_headers: {sub: X-Forwarded-For}", "\(path).claims_to_headers.sub", .invalidValue),
            ("jwks: k.json\nclaims_to_headers: {sub: \"X User\"}", "\(path).claims_to_headers.sub", .invalidValue),
            ("jwks: k.json\nclaims_to_headers: {sub: X-U, email: x-u}", "\(path).claims_to_headers.email", .conflict),
            ("jwks: k.json\nclaims_to_headers: [sub]", "\(path).claims_to_headers", .wrongType),
            ("jwks: k.json\nrequired_claims: {role: []}", "\(path).required_claims.role", .invalidValue),
            ("jwks: k.json\nrealm: 'a\"b'", "\(path).realm", .invalidValue),
            ("jwks: k.json\naudience: [x]", "\(path).audience", .unknownKey),
        ]
        for (yaml, keyPath, code) in cases {
            let error = Self.error(yaml)
            #expect(error?.keyPath == keyPath, "\(yaml): \(String(describing: error))")
            #expect(error?.code == code, "\(yaml): \(String(describing: error))")
        }
        #expect(Self.error("jwks: k.json\nalgorithms: [none]")?.message.contains("never accepted") == true)
    }
}
