import JWTKit

/// A JSON value of a token's payload, as sent (RFC 7519 §4: claims are any JSON).
enum JSONValue: Sendable, Hashable, Codable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case array([JSONValue])
    case object([String: JSONValue])
    case null

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        case .null: try container.encodeNil()
        }
    }

    /// A scalar as text (whole numbers without a fraction: `1700000000`, not `1.7e9`); nil for
    /// arrays, objects and null.
    var scalarText: String? {
        switch self {
        case .string(let value): value
        case .bool(let value): value ? "true" : "false"
        case .number(let value):
            if value.rounded() == value, abs(value) < 9_007_199_254_740_992 { String(Int64(value)) } else { String(value) }
        case .array, .object, .null: nil
        }
    }

    /// The value as an upstream header: a scalar as text, an array of scalars comma-separated (as a
    /// list-valued field, RFC 9110 §5.3); nil for objects and nested arrays.
    var headerText: String? {
        if case .array(let elements) = self {
            let texts = elements.compactMap(\.scalarText)
            return texts.count == elements.count ? texts.joined(separator: ", ") : nil
        }
        return self.scalarText
    }
}

/// A verified token's claims: decoded by jwt-kit only after the signature verified; checked by
/// ``JWTClaimRules`` (jwt-kit's own `verify(using:)` does nothing here, so that every rule, and the
/// clock, is the gateway's and unit-tested).
struct JWTClaimSet: JWTPayload, Equatable {
    var claims: [String: JSONValue]

    init(_ claims: [String: JSONValue]) { self.claims = claims }

    init(from decoder: any Decoder) throws {
        self.claims = try decoder.singleValueContainer().decode([String: JSONValue].self)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.claims)
    }

    func verify(using algorithm: some JWTAlgorithm) async throws {}

    subscript(_ name: String) -> JSONValue? { self.claims[name] }
}

/// The claim rules of a route (RFC 7519 §4.1, RFC 8725 §3.8–3.9), pure: `now` is passed in.
struct JWTClaimRules: Sendable {
    var issuers: [String]
    var audiences: [String]
    var clockSkew: Double
    var requiredClaims: [GatewayConfiguration.JWTAuthentication.RequiredClaim]

    init(_ configuration: GatewayConfiguration.JWTAuthentication) {
        self.issuers = configuration.issuers
        self.audiences = configuration.audiences
        let (seconds, attoseconds) = configuration.clockSkew.components
        self.clockSkew = Double(seconds) + Double(attoseconds) / 1e18
        self.requiredClaims = configuration.requiredClaims
    }

    /// The token's `exp` (whole seconds, rounded down) if every rule holds; otherwise why not.
    /// `exp` is required: a token without it would be valid for ever (and could never be closed on
    /// expiry). `nbf`, when present, must have passed; both with `clockSkew` of tolerance.
    func check(_ claims: JWTClaimSet, now: Double) -> Result<Int64, JWTRefusal> {
        guard case .number(let exp)? = claims["exp"], exp.isFinite else {
            return .failure(JWTRefusal(.malformed, "the token has no numeric exp claim"))
        }
        guard now < exp + self.clockSkew else { return .failure(JWTRefusal(.expired, "the token has expired")) }
        switch claims["nbf"] {
        case nil: break
        case .number(let nbf)? where nbf.isFinite:
            guard now + self.clockSkew >= nbf else { return .failure(JWTRefusal(.notYetValid, "the token is not valid yet (nbf)")) }
        case .some:
            return .failure(JWTRefusal(.malformed, "the nbf claim is not a number"))
        }
        if !self.issuers.isEmpty {
            guard case .string(let issuer)? = claims["iss"], self.issuers.contains(issuer) else {
                return .failure(JWTRefusal(.issuer, "the token's issuer is not accepted"))
            }
        }
        if !self.audiences.isEmpty {
            // RFC 7519 §4.1.3: a string or an array of strings; one of them must be ours.
            let audiences: [String] =
                switch claims["aud"] {
                case .string(let audience)?: [audience]
                case .array(let values)?: values.compactMap { if case .string(let value) = $0 { value } else { nil } }
                default: []
                }
            guard audiences.contains(where: self.audiences.contains) else {
                return .failure(JWTRefusal(.audience, "the token is not for this audience"))
            }
        }
        for required in self.requiredClaims where !Self.satisfies(claims[required.claim], name: required.claim, values: required.values) {
            return .failure(JWTRefusal(.claims, "the token lacks the required claim \(required.claim)"))
        }
        // Clamped: `exp` is any JSON number, and Int64(_:) traps outside its range.
        return .success(Int64(min(max(exp, -9.0e18), 9.0e18).rounded(.down)))
    }

    /// A scalar claim equal to one of `values`, an array with an element equal to one, or (for
    /// `scope`, RFC 8693 §4.2) a space-separated list with one.
    static func satisfies(_ value: JSONValue?, name: String, values: [String]) -> Bool {
        switch value {
        case nil, .null?, .object?: return false
        case .array(let elements)?: return elements.contains { $0.scalarText.map(values.contains) ?? false }
        case .string(let text)? where name == "scope":
            return text.split(separator: " ").contains { values.contains(String($0)) }
        case let scalar?: return scalar.scalarText.map(values.contains) ?? false
        }
    }
}
