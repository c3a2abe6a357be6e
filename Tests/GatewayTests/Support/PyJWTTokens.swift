import Foundation
import Testing

/// Keys and tokens made by an independent JOSE implementation (Python PyJWT 2 over `cryptography`, from
/// `scripts/test-peers/requirements.txt`): a JWKS file with an RSA, an EC P-256, an Ed25519 and an
/// `oct` key, and tokens signed with them, good and bad, for the JWT tests. Nothing here is signed by
/// jwt-kit, the library the gateway verifies with.
struct PyJWTTokens: Sendable {
    /// The JWKS file (public keys and the `oct` secret).
    var jwksPath: String
    /// A second JWKS with only a fresh RSA key (`rsa2`), for reloads.
    var rotatedJWKSPath: String
    var tokens: [String: String]

    subscript(_ name: String) -> String {
        guard let token = self.tokens[name] else { preconditionFailure("no token \(name)") }
        return token
    }

    static let issuer = "https://idp.test"
    static let audience = "wsgate-tests"

    static let script = #"""
        import base64, hashlib, hmac, json, os, sys, time
        import jwt
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

        out, now = sys.argv[1], int(sys.argv[2])
        def b64(data): return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
        def public_jwk(key, kid, alg):
            jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
            jwk.update(kid=kid, use="sig")
            return jwk
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ec_key = ec.generate_private_key(ec.SECP256R1())
        ed_key = ed25519.Ed25519PrivateKey.generate()
        secret = os.urandom(32)
        keys = [public_jwk(rsa_key, "rsa1", "RS256"), public_jwk(ec_key, "ec1", "ES256"),
                public_jwk(ed_key, "ed1", "EdDSA"), {"kty": "oct", "kid": "hs1", "k": b64(secret), "alg": "HS256"},
                {"kty": "RSA", "kid": "enc1", "use": "enc", "n": "AQAB", "e": "AQAB"}]
        json.dump({"keys": keys}, open(os.path.join(out, "jwks.json"), "w"))
        rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        json.dump({"keys": [public_jwk(rotated, "rsa2", "RS256")]}, open(os.path.join(out, "jwks-rotated.json"), "w"))

        base = {"iss": "https://idp.test", "aud": "wsgate-tests", "sub": "alice", "role": "admin",
                "exp": now + 3600, "iat": now}
        def claims(**changes):
            c = dict(base); c.update(changes)
            return {k: v for k, v in c.items() if v is not None}
        def sign(key, alg, kid, **changes):
            return jwt.encode(claims(**changes), key, algorithm=alg, headers={"kid": kid} if kid else None)
        def raw(header, payload, signature=b""):
            return b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode()) + "." + b64(signature)
        rsa_public_pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        def hs_with(secret_bytes, header):
            signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims()).encode())
            return signing_input + "." + b64(hmac.new(secret_bytes, signing_input.encode(), hashlib.sha256).digest())
        tokens = {
            "rs256": sign(rsa_key, "RS256", "rsa1"),
            "rs256_nokid": sign(rsa_key, "RS256", None),
            "ps256": sign(rsa_key, "PS256", "rsa1"),
            "es256": sign(ec_key, "ES256", "ec1"),
            "eddsa": sign(ed_key, "EdDSA", "ed1"),
            "hs256": sign(secret, "HS256", "hs1"),
            "rotated": sign(rotated, "RS256", "rsa2"),
            "none": raw({"alg": "none", "typ": "JWT"}, claims()),
            "none_kid": raw({"alg": "none", "kid": "rsa1"}, claims()),
            "wrong_key": sign(other_rsa, "RS256", "rsa1"),
            "confusion": hs_with(rsa_public_pem, {"alg": "HS256", "kid": "rsa1", "typ": "JWT"}),
            "confusion_nokid": hs_with(rsa_public_pem, {"alg": "HS256", "typ": "JWT"}),
            "wrong_alg_for_key": sign(ec_key, "ES256", "rsa1"),
            "unknown_kid": sign(rsa_key, "RS256", "nobody"),
            "expired": sign(rsa_key, "RS256", "rsa1", exp=now - 3600, iat=now - 7200),
            "not_yet_valid": sign(rsa_key, "RS256", "rsa1", nbf=now + 3600),
            "no_exp": sign(rsa_key, "RS256", "rsa1", exp=None),
            "wrong_issuer": sign(rsa_key, "RS256", "rsa1", iss="https://evil.test"),
            "wrong_audience": sign(rsa_key, "RS256", "rsa1", aud="another-service"),
            "no_role": sign(rsa_key, "RS256", "rsa1", role=None),
            "user_role": sign(rsa_key, "RS256", "rsa1", role="user"),
            "crit": jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa1", "crit": ["exp"], "exp": 1}),
            "tampered": (lambda t: t.split(".")[0] + "." + b64(json.dumps(claims(role="root")).encode()) + "." + t.split(".")[2])(sign(rsa_key, "RS256", "rsa1")),
            "oversized": sign(rsa_key, "RS256", "rsa1", padding="x" * 9000),
            # 6 s after it is signed, not after `now`: making the keys above takes a loaded machine
            # seconds, which must not eat the time the test has to connect before it expires.
            "expires_soon": sign(rsa_key, "RS256", "rsa1", exp=int(time.time()) + 6),
            "claims_header": sign(rsa_key, "RS256", "rsa1", email="alice@example.test", groups=["ops", "dev"]),
        }
        print(json.dumps(tokens))
        """#

    /// Makes keys in `directory` and tokens issued at `now` (wall-clock seconds).
    static func make(in directory: URL, now: Int = Int(Date().timeIntervalSince1970)) async throws -> PyJWTTokens {
        let result = try await runPython(["-c", Self.script, directory.path, String(now)], timeout: .seconds(60))
        guard result.status == 0, let line = result.output.split(separator: "\n").last,
            let tokens = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String]
        else {
            throw PeerError("PyJWT failed: \(result.output)")
        }
        return PyJWTTokens(
            jwksPath: directory.appendingPathComponent("jwks.json").path,
            rotatedJWKSPath: directory.appendingPathComponent("jwks-rotated.json").path,
            tokens: tokens
        )
    }
}
