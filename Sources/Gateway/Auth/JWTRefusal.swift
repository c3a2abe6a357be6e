/// Why a JWT did not authorize an upgrade, as RFC 6750 §3 answers it: 400 `invalid_request` (the
/// request carries its token wrongly), 401 `invalid_token` (no good token), 403 `insufficient_scope`
/// (a good token without the required claims), and 503 when the gateway is too busy verifying.
///
/// `outcome` is the label of `wsgate_auth_decisions_total{method="jwt"}` and the end of the access
/// log's `refusal`: a fixed set, never anything a client sent. `description` becomes
/// `error_description` and the body: it never quotes the token or anything decoded from it.
struct JWTRefusal: Error, Hashable, Sendable {
    enum Outcome: String, Sendable, CaseIterable {
        /// No token in any configured source (RFC 6750 §3.1: then no `error` attribute).
        case missing
        /// Two tokens in one source, or a carrier that cannot be read.
        case invalidRequest = "invalid_request"
        /// A token offered as a subprotocol with no real subprotocol beside it.
        case subprotocol
        case oversized
        case malformed
        /// `alg` not allowed (`none` never is), or a `crit` header the gateway does not understand.
        case algorithm
        /// No key of the JWKS for the token's `kid` and `alg`.
        case unknownKey = "unknown_key"
        case signature
        case expired
        case notYetValid = "not_yet_valid"
        case issuer
        case audience
        /// A valid token without the required claims: 403.
        case claims
        /// Too many verifications under way: 503.
        case busy
    }

    var outcome: Outcome
    var description: String

    init(_ outcome: Outcome, _ description: String) {
        self.outcome = outcome
        self.description = description
    }

    var status: Int {
        switch self.outcome {
        case .invalidRequest, .subprotocol: 400
        case .claims: 403
        case .busy: 503
        case .missing, .oversized, .malformed, .algorithm, .unknownKey, .signature, .expired, .notYetValid, .issuer, .audience: 401
        }
    }

    /// The RFC 6750 §3.1 error code, if any.
    var errorCode: String? {
        switch self.outcome {
        case .missing, .busy: nil
        case .invalidRequest, .subprotocol: "invalid_request"
        case .claims: "insufficient_scope"
        case .oversized, .malformed, .algorithm, .unknownKey, .signature, .expired, .notYetValid, .issuer, .audience: "invalid_token"
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3): `Bearer realm="…", error="…", error_description="…"`.
    func challenge(realm: String) -> String {
        var value = "Bearer realm=\"\(realm)\""
        if let errorCode {
            value += ", error=\"\(errorCode)\", error_description=\"\(Self.quotable(self.description))\""
        }
        return value
    }

    /// The answer to the client: the challenge on 401 and 403 (RFC 6750 §3), `Retry-After` on 503.
    func rejection(realm: String) -> HandshakeRejection {
        var headers: [(String, String)] = []
        switch self.status {
        case 401, 403: headers.append(("WWW-Authenticate", self.challenge(realm: realm)))
        case 503: headers.append(("Retry-After", "1"))
        default: break
        }
        return HandshakeRejection(self.status, "JWT: \(self.description)", reason: "auth-jwt-\(self.outcome.rawValue)", headers: headers)
    }

    /// RFC 6750 §3: `error_description` uses %x20-21 / %x23-5B / %x5D-7E only.
    static func quotable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value <= 0x7E && $0 != "\"" && $0 != "\\" }))
    }
}
