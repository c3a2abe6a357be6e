import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import Gateway

/// `auth.jwt` verification against tokens signed by PyJWT (an independent implementation): every
/// algorithm the gateway verifies, and the attacks it must refuse (RFC 8725 §2).
@Suite(.serialized, .timeLimit(.minutes(2))) struct JWTVerifierTests {
    static func configuration(
        _ configure: (inout GatewayConfiguration.JWTAuthentication) -> Void = { _ in }
    ) -> GatewayConfiguration.JWTAuthentication {
        var configuration = GatewayConfiguration.JWTAuthentication(jwks: "")
        configuration.issuers = [PyJWTTokens.issuer]
        configuration.audiences = [PyJWTTokens.audience]
        configuration.algorithms = ["RS256", "PS256", "ES256", "EdDSA", "HS256"]
        configure(&configuration)
        return configuration
    }

    /// Keys and tokens, or nil when Python is unavailable (the test then failed or was cancelled).
    static func fixture() async throws -> (tokens: PyJWTTokens, directory: URL)? {
        guard try await PythonPeer.require("jwt") else { return nil }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-jwt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return (try await PyJWTTokens.make(in: directory), directory)
    }

    static func verifier(
        _ tokens: PyJWTTokens,
        _ configure: (inout GatewayConfiguration.JWTAuthentication) -> Void = { _ in }
    ) throws -> JWTVerifier {
        let configuration = Self.configuration(configure)
        let keys = try JWTKeySet.load(path: tokens.jwksPath, algorithms: configuration.algorithms)
        return JWTVerifier(keys: keys, configuration: configuration, wallClock: { Date().timeIntervalSince1970 })
    }

    static func outcome(_ verifier: JWTVerifier, _ token: String, on loop: any EventLoop) async throws -> JWTRefusal.Outcome? {
        switch try await verifier.verify(token, on: loop).get() {
        case .success: nil
        case .failure(let refusal): refusal.outcome
        }
    }

    @Test func tokensOfEveryAllowedAlgorithmVerify() async throws {
        guard let (tokens, directory) = try await Self.fixture() else { return }
        defer { try? FileManager.default.removeItem(at: directory) }
        let group = MultiThreadedEventLoopGroup.singleton
        let loop = group.next()
        let verifier = try Self.verifier(tokens)
        for name in ["rs256", "rs256_nokid", "ps256", "es256", "eddsa", "hs256"] {
            #expect(try await Self.outcome(verifier, tokens[name], on: loop) == nil, "\(name)")
        }
        // The claims are jwt-kit's decoding of PyJWT's payload; exp comes back for the relay.
        let verified = try await verifier.verify(tokens["rs256"], on: loop).get().get()
        #expect(verified.claims["sub"] == .string("alice"))
        #expect(verified.expiresAt > Int64(Date().timeIntervalSince1970))
    }

    @Test func theResultIsDeliveredOnTheConnectionsEventLoop() async throws {
        guard let (tokens, directory) = try await Self.fixture() else { return }
        defer { try? FileManager.default.removeItem(at: directory) }
        let group = MultiThreadedEventLoopGroup.singleton
        let verifier = try Self.verifier(tokens)
        for loop in group.makeIterator() {
            let onLoop = try await verifier.verify(tokens["es256"], on: loop).map { _ in loop.inEventLoop }.get()
            #expect(onLoop)
        }
    }

    @Test func forgedAndInvalidTokensAreRefusedForTheRightReason() async throws {
        guard let (tokens, directory) = try await Self.fixture() else { return }
        defer { try? FileManager.default.removeItem(at: directory) }
        let group = MultiThreadedEventLoopGroup.singleton
        let loop = group.next()
        let verifier = try Self.verifier(tokens)
        let expected: [(String, JWTRefusal.Outcome)] = [
            ("none", .algorithm), ("none_kid", .algorithm),
            ("wrong_key", .signature), ("tampered", .signature),
            // HS256 "signed" with the RSA public key (RFC 8725 §2.1): HS256 only ever meets oct keys.
            ("confusion", .unknownKey), ("confusion_nokid", .signature),
            ("wrong_alg_for_key", .unknownKey), ("unknown_kid", .unknownKey), ("rotated", .unknownKey),
            ("expired", .expired), ("not_yet_valid", .notYetValid), ("no_exp", .malformed),
            ("wrong_issuer", .issuer), ("wrong_audience", .audience),
            ("crit", .malformed), ("oversized", .oversized),
            ("", .malformed), ("abc", .malformed), ("a.b", .malformed), ("a.b.c.d", .malformed), ("e30.e30.", .malformed),
            ("!!!.e30.c2ln", .malformed), ("eyJhbGciOiJSUzI1NiJ9.e30", .malformed),
        ]
        for (name, outcome) in expected {
            let token = tokens.tokens[name] ?? name
            #expect(try await Self.outcome(verifier, token, on: loop) == outcome, "\(name)")
        }
        #expect(verifier.verificationsInFlight == 0)
    }

    @Test func hs256IsRefusedUnlessAllowedAndTheDefaultAllowsOnlyPublicKeyAlgorithms() async throws {
        guard let (tokens, directory) = try await Self.fixture() else { return }
        defer { try? FileManager.default.removeItem(at: directory) }
        let group = MultiThreadedEventLoopGroup.singleton
        let verifier = try Self.verifier(tokens) { $0.algorithms = GatewayConfiguration.JWTAuthentication.asymmetricAlgorithms }
        #expect(try await Self.outcome(verifier, tokens["hs256"], on: group.next()) == .algorithm)
        #expect(try await Self.outcome(verifier, tokens["confusion"], on: group.next()) == .algorithm)
        #expect(try await Self.outcome(verifier, tokens["es256"], on: group.next()) == nil)
    }

    /// A flood cannot queue unbounded work: at most `maxInFlight` signature checks wait at once, the
    /// rest get 503 at once; tokens that fail the cheap checks never take a slot.
    @Test func aFloodIsBoundedBeforeAnyAsyncHop() async throws {
        guard let (tokens, directory) = try await Self.fixture() else { return }
        defer { try? FileManager.default.removeItem(at: directory) }
        let group = MultiThreadedEventLoopGroup.singleton
        let loop = group.next()
        let verifier = try Self.verifier(tokens)
        // Submitted from the event loop itself, so no verification can complete (and free its slot) meanwhile.
        let futures = try await loop.submit {
            let bad = (0..<10_000).map { _ in verifier.verify(tokens["unknown_kid"], on: loop) }
            let inFlightAfterBad = verifier.verificationsInFlight
            let good = (0..<200).map { _ in verifier.verify(tokens["rs256"], on: loop) }
            return (bad, inFlightAfterBad, good, verifier.verificationsInFlight)
        }.get()
        #expect(futures.1 == 0)
        #expect(futures.3 == JWTVerifier.maxInFlight)
        var busy = 0
        var verified = 0
        for future in futures.2 {
            switch try await future.get() {
            case .success: verified += 1
            case .failure(let refusal) where refusal.outcome == .busy: busy += 1
            case .failure(let refusal): Issue.record("unexpected \(refusal)")
            }
        }
        #expect(verified == JWTVerifier.maxInFlight)
        #expect(busy == 200 - JWTVerifier.maxInFlight)
        for future in futures.0 {
            guard case .failure(let refusal) = try await future.get() else {
                Issue.record("a bad token verified")
                return
            }
            #expect(refusal.outcome == .unknownKey)
        }
        #expect(verifier.verificationsInFlight == 0)
    }

    @Test func aBadJWKSIsRefusedWithItsReason() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-jwks-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let cases: [(String, String)] = [
            ("not json", "not a JWK set"),
            (#"{"keys": {}}"#, "not a JWK set"),
            (#"{"keys": []}"#, "no key can verify"),
            (#"{"keys": [{"kty": "RSA", "kid": "a", "e": "AQAB"}]}"#, "keys[0]: \"n\" is missing"),
            (#"{"keys": [{"kty": "oct", "kid": "a", "k": "c2hvcnQ"}]}"#, "shorter than its hash"),
            (#"{"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}"#, "keys[0]"),
            (#"{"keys": [{"kty": "oct", "alg": "RS256", "k": "\#(String(repeating: "A", count: 43))"}]}"#, "does not fit"),
            (#"{"keys": [{"kty": "OKP", "crv": "Ed448", "x": "AA"}]}"#, "no key can verify"),
        ]
        for (index, (json, reason)) in cases.enumerated() {
            let path = directory.appendingPathComponent("\(index).json").path
            _ = FileManager.default.createFile(atPath: path, contents: Data(json.utf8))
            #expect(throws: GatewayError.self, "\(json)") { try JWTKeySet.load(path: path, algorithms: ["RS256", "ES256", "EdDSA", "HS256"]) }
            do {
                _ = try JWTKeySet.load(path: path, algorithms: ["RS256", "ES256", "EdDSA", "HS256"])
            } catch {
                #expect("\(error)".contains(reason), "\(json): \(error)")
            }
        }
        #expect(throws: GatewayError.self) { try JWTKeySet.load(path: directory.appendingPathComponent("missing").path, algorithms: ["RS256"]) }
        // `wsgate check` reads them as the start does, and names the route.
        var configuration = GatewayConfiguration(listeners: [.init(host: "127.0.0.1", port: 0)], routes: [.init(pathPrefix: "/chat", upstreams: [])])
        configuration.routes[0].auth = .init(jwt: .init(jwks: directory.appendingPathComponent("0.json").path))
        let error = #expect(throws: GatewayError.self) { try configuration.checkJWKSFiles() }
        #expect(error?.description.hasPrefix("route /chat: auth.jwt: JWKS") == true)
    }

    @Test func theGrantStripsEveryCarrierAndAddsOnlyTheGatewaysClaimHeaders() {
        var configuration = Self.configuration()
        configuration.claimsToHeaders = [
            .init(claim: "sub", header: "X-User"), .init(claim: "groups", header: "X-Groups"), .init(claim: "missing", header: "X-Missing"),
        ]
        configuration.closeOnExpiry = true
        configuration.clockSkew = .seconds(30)
        let strip = BearerTokenSources.Strip(
            removeHeaders: ["Cookie", "Authorization"],
            cookie: "theme=dark",
            removeQueryParameters: ["access_token"],
            removeSubprotocols: ["base64url.bearer.authorization.k8s.io.x"]
        )
        let claims = JWTClaimSet(["sub": .string("alice"), "groups": .array([.string("ops"), .string("dev")])])
        let grant = JWTAuthorizer.grant(configuration, strip: strip, claims: claims, expiresAt: 1_800_000_000)
        #expect(grant.removeHeaders == ["Cookie", "Authorization", "X-User", "X-Groups", "X-Missing"])
        #expect(grant.addHeaders.map { [$0.name, $0.value] } == [["Cookie", "theme=dark"], ["X-User", "alice"], ["X-Groups", "ops, dev"]])
        #expect(grant.removeQueryParameters == ["access_token"])
        #expect(grant.removeSubprotocols == ["base64url.bearer.authorization.k8s.io.x"])
        #expect(grant.expiresAt == 1_800_000_030, "exp plus the clock skew: when the handshake stops accepting it")
        configuration.closeOnExpiry = false
        #expect(JWTAuthorizer.grant(configuration, strip: strip, claims: claims, expiresAt: 1).expiresAt == nil)
        // A claim that would split the upstream request is never written.
        let hostile = JWTClaimSet(["sub": .string("a\r\nX-Admin: 1")])
        #expect(!JWTAuthorizer.grant(configuration, strip: .init(), claims: hostile, expiresAt: 1).addHeaders.contains { $0.name == "X-User" })
    }
}
