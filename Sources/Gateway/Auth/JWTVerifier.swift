import Foundation
import JWTKit
import NIOConcurrencyHelpers
import NIOCore

/// Verifies one route's bearer tokens (issue #13 §2): cheap checks on the event loop first, then the
/// signature through jwt-kit (an actor, so one async hop), then the claim rules back on the event loop.
///
/// A flood of bad tokens cannot queue unbounded work: the size, the shape, the header's `alg` and `kid`
/// are checked synchronously before any hop (a token that names no key of the JWKS never costs a
/// signature check), a token without `kid` is tried against at most ``JWTKeySet/maxCandidates`` keys,
/// and at most ``maxInFlight`` signature checks per route are under way at once: beyond, 503 with
/// `Retry-After` instead of a queue.
final class JWTVerifier: Sendable {
    /// Longest token accepted (real tokens are well under 2 KiB; the request head is at most 16 KiB).
    static let maxTokenBytes = 8 * 1024
    /// Longest decoded JOSE header.
    static let maxHeaderBytes = 1024
    static let maxInFlight = 64

    let keys: JWTKeySet
    let rules: JWTClaimRules
    let algorithms: Set<String>
    /// Wall-clock seconds since 1970 (tests inject a fixed clock).
    let wallClock: @Sendable () -> Double
    private let inFlight = NIOLockedValueBox(0)

    /// Signature checks under way (tests).
    var verificationsInFlight: Int { self.inFlight.withLockedValue { $0 } }

    init(keys: JWTKeySet, configuration: GatewayConfiguration.JWTAuthentication, wallClock: @escaping @Sendable () -> Double) {
        self.keys = keys
        self.rules = JWTClaimRules(configuration)
        self.algorithms = Set(configuration.algorithms)
        self.wallClock = wallClock
    }

    /// The JOSE header fields the gateway reads (RFC 7515 §4.1).
    private struct JOSEHeader: Decodable {
        var alg: String
        var kid: String?
        var crit: JSONValue?
    }

    /// The synchronous checks: the keys a token may be verified with, or why it is refused unverified.
    func precheck(_ token: String) -> Result<[JWTKeySet.Slot], JWTRefusal> {
        guard token.utf8.count <= Self.maxTokenBytes else {
            return .failure(JWTRefusal(.oversized, "the token is over \(Self.maxTokenBytes) bytes"))
        }
        let parts = token.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 3, parts.allSatisfy({ $0.allSatisfy(Base64URL.isAlphabet) }), !parts[0].isEmpty, !parts[1].isEmpty else {
            return .failure(JWTRefusal(.malformed, "not a JWS compact serialization (three base64url parts)"))
        }
        guard parts[0].count <= Self.maxHeaderBytes * 4 / 3 + 4, let headerBytes = Base64URL.decode(Substring(parts[0])),
            let header = try? JSONDecoder().decode(JOSEHeader.self, from: Data(headerBytes))
        else {
            return .failure(JWTRefusal(.malformed, "the JOSE header is not a JSON object with alg"))
        }
        guard header.alg.lowercased() != "none" else {
            return .failure(JWTRefusal(.algorithm, "unsigned tokens (alg none) are never accepted"))
        }
        guard self.algorithms.contains(header.alg) else {
            return .failure(JWTRefusal(.algorithm, "the token's algorithm is not allowed on this route"))
        }
        // RFC 7515 §4.1.11: a critical extension the recipient does not understand makes the JWS invalid.
        guard header.crit == nil else { return .failure(JWTRefusal(.malformed, "the token has critical header extensions")) }
        guard !parts[2].isEmpty else { return .failure(JWTRefusal(.malformed, "the token has no signature")) }
        let candidates = self.keys.candidates(kid: header.kid, algorithm: header.alg)
        guard !candidates.isEmpty else { return .failure(JWTRefusal(.unknownKey, "no key of the JWKS matches the token's kid and alg")) }
        return .success(candidates)
    }

    /// The verified claims and `exp`, delivered on `eventLoop`.
    func verify(_ token: String, on eventLoop: any EventLoop) -> EventLoopFuture<Result<(claims: JWTClaimSet, expiresAt: Int64), JWTRefusal>> {
        let candidates: [JWTKeySet.Slot]
        switch self.precheck(token) {
        case .failure(let refusal): return eventLoop.makeSucceededFuture(.failure(refusal))
        case .success(let slots): candidates = slots
        }
        let admitted = self.inFlight.withLockedValue { count in
            guard count < Self.maxInFlight else { return false }
            count += 1
            return true
        }
        guard admitted else {
            return eventLoop.makeSucceededFuture(.failure(JWTRefusal(.busy, "too many tokens being verified; retry")))
        }
        // The promise behind this future completes on `eventLoop` whatever thread the task ends on.
        let signature = eventLoop.makeFutureWithTask { () async -> Result<JWTClaimSet, JWTRefusal> in
            await Self.verifySignature(token, with: candidates)
        }
        return signature.always { _ in self.inFlight.withLockedValue { $0 -= 1 } }.map { result in
            result.flatMap { claims in
                self.rules.check(claims, now: self.wallClock()).map { (claims, $0) }
            }
        }
    }

    /// Each candidate key in turn (one, when the token has a `kid`); the first that verifies wins.
    private static func verifySignature(_ token: String, with candidates: [JWTKeySet.Slot]) async -> Result<JWTClaimSet, JWTRefusal> {
        var refusal = JWTRefusal(.signature, "the signature does not verify")
        for slot in candidates {
            let collection = await slot.collection.value
            do {
                return .success(try await collection.verify(token, as: JWTClaimSet.self))
            } catch let error as JWTError where error.errorType == .signatureVerificationFailed {
                continue
            } catch let error as JWTError where error.errorType == .malformedToken {
                refusal = JWTRefusal(.malformed, "the token's payload is not a JSON object")
            } catch {
                continue
            }
        }
        return .failure(refusal)
    }
}
