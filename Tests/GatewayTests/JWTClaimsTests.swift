import Testing

@testable import Gateway

/// The claim rules of `auth.jwt` (RFC 7519 §4.1), pure, with the clock passed in.
@Suite struct JWTClaimsTests {
    static let now = 1_800_000_000.0

    static func rules(_ configure: (inout GatewayConfiguration.JWTAuthentication) -> Void = { _ in }) -> JWTClaimRules {
        var configuration = GatewayConfiguration.JWTAuthentication(jwks: "keys.json")
        configure(&configuration)
        return JWTClaimRules(configuration)
    }

    static func claims(_ extra: [String: JSONValue] = [:], exp: Double = now + 60) -> JWTClaimSet {
        JWTClaimSet(["exp": .number(exp)].merging(extra) { $1 })
    }

    static func outcome(_ result: Result<Int64, JWTRefusal>) -> JWTRefusal.Outcome? {
        if case .failure(let refusal) = result { refusal.outcome } else { nil }
    }

    @Test func expIsRequiredAndHonouredWithTheClockSkew() throws {
        let rules = Self.rules()  // 30 s skew by default
        #expect(try rules.check(Self.claims(), now: Self.now).get() == Int64(Self.now + 60))
        #expect(Self.outcome(rules.check(JWTClaimSet(["sub": .string("a")]), now: Self.now)) == .malformed)
        #expect(Self.outcome(rules.check(JWTClaimSet(["exp": .string("soon")]), now: Self.now)) == .malformed)
        #expect(Self.outcome(rules.check(Self.claims(exp: Self.now - 29), now: Self.now)) == nil)
        #expect(Self.outcome(rules.check(Self.claims(exp: Self.now - 30), now: Self.now)) == .expired)
        #expect(Self.outcome(Self.rules { $0.clockSkew = .zero }.check(Self.claims(exp: Self.now), now: Self.now)) == .expired)
    }

    /// `exp` is any JSON number: a huge one neither traps nor overflows the relay's timer.
    @Test func anAbsurdExpIsClampedNotATrap() throws {
        let far = try Self.rules().check(Self.claims(exp: 1e300), now: Self.now).get()
        #expect(far == Int64(9.0e18))
        #expect(RelayPolicy.timeLeft(until: far, now: Self.now) == .seconds(365 * 86_400))
        #expect(RelayPolicy.timeLeft(until: Int64(Self.now) + 90, now: Self.now) == .seconds(90))
        #expect(RelayPolicy.timeLeft(until: nil, now: Self.now) == nil)
    }

    @Test func nbfInTheFutureIsNotYetValid() {
        let rules = Self.rules { $0.clockSkew = .seconds(5) }
        #expect(Self.outcome(rules.check(Self.claims(["nbf": .number(Self.now + 5)]), now: Self.now)) == nil)
        #expect(Self.outcome(rules.check(Self.claims(["nbf": .number(Self.now + 6)]), now: Self.now)) == .notYetValid)
        #expect(Self.outcome(rules.check(Self.claims(["nbf": .bool(true)]), now: Self.now)) == .malformed)
    }

    @Test func theIssuerMustBeListedWhenIssuersAreConfigured() {
        let rules = Self.rules { $0.issuers = ["https://idp.example"] }
        #expect(Self.outcome(rules.check(Self.claims(["iss": .string("https://idp.example")]), now: Self.now)) == nil)
        #expect(Self.outcome(rules.check(Self.claims(["iss": .string("https://evil.example")]), now: Self.now)) == .issuer)
        #expect(Self.outcome(rules.check(Self.claims(), now: Self.now)) == .issuer)
        #expect(Self.outcome(Self.rules().check(Self.claims(), now: Self.now)) == nil)
    }

    @Test func oneOfTheTokensAudiencesMustBeOurs() {
        let rules = Self.rules { $0.audiences = ["chat", "api"] }
        #expect(Self.outcome(rules.check(Self.claims(["aud": .string("chat")]), now: Self.now)) == nil)
        #expect(Self.outcome(rules.check(Self.claims(["aud": .array([.string("other"), .string("api")])]), now: Self.now)) == nil)
        #expect(Self.outcome(rules.check(Self.claims(["aud": .string("other")]), now: Self.now)) == .audience)
        #expect(Self.outcome(rules.check(Self.claims(["aud": .array([])]), now: Self.now)) == .audience)
        #expect(Self.outcome(rules.check(Self.claims(), now: Self.now)) == .audience)
    }

    @Test func requiredClaimsAreForbiddenNotUnauthorizedWhenMissing() {
        let rules = Self.rules {
            $0.requiredClaims = [.init(claim: "role", values: ["admin", "ops"]), .init(claim: "scope", values: ["chat:write"])]
        }
        let good = Self.claims(["role": .string("ops"), "scope": .string("chat:read chat:write")])
        #expect(Self.outcome(rules.check(good, now: Self.now)) == nil)
        let asArray = Self.claims(["role": .array([.string("user"), .string("admin")]), "scope": .string("chat:write")])
        #expect(Self.outcome(rules.check(asArray, now: Self.now)) == nil)
        let wrong = Self.claims(["role": .string("user"), "scope": .string("chat:write")])
        #expect(Self.outcome(rules.check(wrong, now: Self.now)) == .claims)
        #expect(JWTRefusal(.claims, "").status == 403)
        #expect(Self.outcome(rules.check(Self.claims(["scope": .string("chat:write")]), now: Self.now)) == .claims)
        let numeric = Self.rules { $0.requiredClaims = [.init(claim: "tier", values: ["2"])] }
        #expect(Self.outcome(numeric.check(Self.claims(["tier": .number(2)]), now: Self.now)) == nil)
    }

    @Test func headerTextOfClaims() {
        #expect(JSONValue.string("alice").headerText == "alice")
        #expect(JSONValue.number(1_700_000_000).headerText == "1700000000")
        #expect(JSONValue.number(1.5).headerText == "1.5")
        #expect(JSONValue.bool(true).headerText == "true")
        #expect(JSONValue.array([.string("a"), .string("b")]).headerText == "a, b")
        #expect(JSONValue.object([:]).headerText == nil)
        #expect(JSONValue.null.headerText == nil)
    }

    /// RFC 6750 §3: the challenge, with an error code only when a token was presented.
    @Test func theChallengeFollowsRFC6750() {
        #expect(JWTRefusal(.missing, "no bearer token").challenge(realm: "chat") == "Bearer realm=\"chat\"")
        #expect(
            JWTRefusal(.expired, "the token has \"expired\"").challenge(realm: "chat")
                == "Bearer realm=\"chat\", error=\"invalid_token\", error_description=\"the token has expired\""
        )
        #expect(JWTRefusal(.claims, "x").challenge(realm: "r").contains("error=\"insufficient_scope\""))
        let rejection = JWTRefusal(.signature, "bad").rejection(realm: "r")
        #expect(rejection.response.status == 401)
        #expect(rejection.reason == "auth-jwt-signature")
        #expect(rejection.response.headers.contains { $0.0 == "WWW-Authenticate" })
        #expect(JWTRefusal(.busy, "x").rejection(realm: "r").response.headers.contains { $0 == ("Retry-After", "1") })
    }
}
