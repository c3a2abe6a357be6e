import Foundation
import JWTKit

/// The keys of a route's JWKS file (RFC 7517 §5), each bound to the algorithms it may verify.
///
/// Algorithm confusion (RFC 8725 §2.1, §3.1) is ruled out here, not left to the token: every key
/// becomes one ``Slot`` per algorithm that fits its type (`RSA`: RS*/PS*; `EC`: the ES* of its curve;
/// `OKP` Ed25519: EdDSA; `oct`: HS*), narrowed to the key's own `alg` if it has one and to the route's
/// `algorithms`. Each slot holds a jwt-kit ``JWTKeyCollection`` with that one key under that one
/// algorithm, so an `HS256` token is only ever checked with `oct` keys: an RSA public key can never be
/// used as an HMAC secret, whatever the token's header says.
///
/// Keys of an unknown `kty`, and keys with `use` other than `sig` or `key_ops` without `verify`, are
/// skipped (RFC 7517 §5: "SHOULD ignore"). A JWKS in which no key can verify any allowed algorithm is
/// refused, as is a key that is malformed or whose `alg` does not fit its type: the file is read at
/// start and on each reload, and a refused file keeps the running keys (the reload is refused).
struct JWTKeySet: Sendable {
    struct Slot: Sendable {
        var kid: String?
        var algorithm: String
        /// Built once (jwt-kit's collection is an actor; adding to it needs a hop, done at load).
        var collection: Task<JWTKeyCollection, Never>
    }

    var slots: [Slot]

    /// Largest JWKS file read, and most keys in it.
    static let maxFileBytes = 1 << 20
    static let maxKeys = 100
    /// Most keys tried for one token without a `kid` (each is one signature check).
    static let maxCandidates = 4

    /// The keys `kid` names for `algorithm` (all keys for it without a `kid`, at most ``maxCandidates``).
    func candidates(kid: String?, algorithm: String) -> [Slot] {
        let matching = self.slots.filter { $0.algorithm == algorithm && (kid == nil || $0.kid == kid) }
        return Array(matching.prefix(Self.maxCandidates))
    }

    /// Reads and compiles the JWKS at `path` (blocking: call it off the event loops).
    static func load(path: String, algorithms: [String]) throws -> JWTKeySet {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw GatewayError("JWKS \(path): cannot read the file")
        }
        do {
            return try JWTKeySet(json: data, algorithms: algorithms)
        } catch let error as GatewayError {
            throw GatewayError("JWKS \(path): \(error.description)")
        }
    }

    init(json data: Data, algorithms: [String]) throws {
        guard data.count <= Self.maxFileBytes else { throw GatewayError("over \(Self.maxFileBytes) bytes") }
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let keys = root["keys"] as? [Any] else {
            throw GatewayError("not a JWK set: a JSON object with a \"keys\" array is expected (RFC 7517 §5)")
        }
        guard keys.count <= Self.maxKeys else { throw GatewayError("more than \(Self.maxKeys) keys") }
        var slots: [Slot] = []
        for (index, element) in keys.enumerated() {
            guard let key = element as? [String: Any] else { throw GatewayError("keys[\(index)] is not an object") }
            do {
                slots += try Self.slots(for: key, allowed: algorithms)
            } catch let error as GatewayError {
                throw GatewayError("keys[\(index)]: \(error.description)")
            } catch {
                throw GatewayError("keys[\(index)]: not a valid key (\(error))")
            }
        }
        guard !slots.isEmpty else {
            throw GatewayError("no key can verify any of the allowed algorithms (\(algorithms.joined(separator: ", ")))")
        }
        self.slots = slots
    }

    /// A key's slots: the algorithms its type allows, narrowed by its `alg` and by `allowed`.
    private static func slots(for key: [String: Any], allowed: [String]) throws -> [Slot] {
        if let use = key["use"] as? String, use != "sig" { return [] }
        if let operations = key["key_ops"] as? [String], !operations.contains("verify") { return [] }
        let kid = key["kid"] as? String
        func string(_ name: String) throws -> String {
            guard let value = key[name] as? String, !value.isEmpty else { throw GatewayError("\"\(name)\" is missing") }
            return value
        }
        func bound(_ fitting: [String], _ add: @escaping @Sendable (JWTKeyCollection, String) async -> Void) throws -> [Slot] {
            var algorithms = fitting
            if let alg = key["alg"] as? String {
                guard fitting.contains(alg) else { throw GatewayError("alg \(alg) does not fit kty \(key["kty"] as? String ?? "")") }
                algorithms = [alg]
            }
            return algorithms.filter(allowed.contains).map { algorithm in
                Slot(
                    kid: kid,
                    algorithm: algorithm,
                    collection: Task {
                        let collection = JWTKeyCollection()
                        await add(collection, algorithm)
                        return collection
                    }
                )
            }
        }
        switch key["kty"] as? String {
        case "RSA":
            let rsa = try Insecure.RSA.PublicKey(modulus: try string("n"), exponent: try string("e"))
            return try bound(["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]) { collection, algorithm in
                let digest = Self.digest(algorithm)
                if algorithm.hasPrefix("PS") {
                    await collection.add(pss: rsa, digestAlgorithm: digest)
                } else {
                    await collection.add(rsa: rsa, digestAlgorithm: digest)
                }
            }
        case "EC":
            let parameters = (x: try string("x"), y: try string("y"))
            switch try string("crv") {
            case "P-256":
                let ec = try ES256PublicKey(parameters: parameters)
                return try bound(["ES256"]) { collection, _ in await collection.add(ecdsa: ec) }
            case "P-384":
                let ec = try ES384PublicKey(parameters: parameters)
                return try bound(["ES384"]) { collection, _ in await collection.add(ecdsa: ec) }
            case "P-521":
                let ec = try ES512PublicKey(parameters: parameters)
                return try bound(["ES512"]) { collection, _ in await collection.add(ecdsa: ec) }
            case let curve:
                throw GatewayError("EC curve \(curve) is not supported (P-256, P-384, P-521)")
            }
        case "OKP":
            guard try string("crv") == "Ed25519" else { return [] }
            let ed = try EdDSA.PublicKey(x: try string("x"), curve: .ed25519)
            return try bound(["EdDSA"]) { collection, _ in await collection.add(eddsa: ed) }
        case "oct":
            // RFC 7518 §3.2: an HMAC key at least as long as the hash output.
            guard let secret = Base64URL.decode(try string("k")) else { throw GatewayError("\"k\" is not base64url") }
            let fitting = ["HS256", "HS384", "HS512"].filter { secret.count * 8 >= Int($0.dropFirst(2))! }
            if fitting.isEmpty || (key["alg"] as? String).map({ $0.hasPrefix("HS") && !fitting.contains($0) }) == true {
                throw GatewayError("the oct key is shorter than its hash (RFC 7518 §3.2: at least 32 bytes for HS256)")
            }
            let hmac = HMACKey(from: secret)
            return try bound(fitting) { collection, algorithm in
                await collection.add(hmac: hmac, digestAlgorithm: Self.digest(algorithm))
            }
        default:
            return []
        }
    }

    private static func digest(_ algorithm: String) -> DigestAlgorithm {
        switch algorithm.suffix(3) {
        case "384": .sha384
        case "512": .sha512
        default: .sha256
        }
    }
}
