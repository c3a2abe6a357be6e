import Foundation
import NIOCore
import NIOHTTP1

/// `routes[].auth.jwt` (issue #13 §2) in the authorization stage: finds the bearer token
/// (``BearerTokenSources``), verifies it (``JWTVerifier``) and either refuses the upgrade (401 with a
/// `WWW-Authenticate` challenge, 403 without the required claims, 400 for a request that carries its
/// token wrongly: RFC 6750 §3) or lets it go on with a grant that strips every token carrier from the
/// forwarded request, adds the configured claims as headers (the client's copies removed) and, with
/// `close_on_expiry`, hands `exp` to the relay. Every decision is counted in
/// `wsgate_auth_decisions_total{route,method="jwt",outcome}`.
///
/// Built when a configuration is installed (start, SIGHUP): the JWKS file is read then, so a reload with
/// a bad JWKS is refused and the running keys stay.
struct JWTAuthorizer: UpgradeAuthorizer {
    let configuration: GatewayConfiguration.JWTAuthentication
    let verifier: JWTVerifier
    let route: String
    let metrics: GatewayMetrics

    /// Reads the JWKS (blocking: called where the environment is built, off the event loops).
    init(
        _ configuration: GatewayConfiguration.JWTAuthentication,
        route: String,
        metrics: GatewayMetrics,
        wallClock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }
    ) throws {
        let keys = try JWTKeySet.load(path: configuration.jwks, algorithms: configuration.algorithms)
        self.init(configuration, keys: keys, route: route, metrics: metrics, wallClock: wallClock)
    }

    init(
        _ configuration: GatewayConfiguration.JWTAuthentication,
        keys: JWTKeySet,
        route: String,
        metrics: GatewayMetrics,
        wallClock: @escaping @Sendable () -> Double
    ) {
        self.configuration = configuration
        self.verifier = JWTVerifier(keys: keys, configuration: configuration, wallClock: wallClock)
        self.route = route
        self.metrics = metrics
    }

    /// A local check: a signature verification, queued behind at most ``JWTVerifier/maxInFlight`` others.
    var deadline: TimeAmount { .seconds(5) }

    func authorize(
        _ context: AuthorizationContext,
        on eventLoop: any EventLoop,
        abandoned: EventLoopFuture<Void>?
    ) -> EventLoopFuture<AuthorizationOutcome> {
        let found: BearerTokenSources.Found
        switch BearerTokenSources.find(in: context.head, sources: self.configuration.tokenSources, offered: context.request.subprotocols) {
        case .failure(let refusal): return eventLoop.makeSucceededFuture(self.deny(refusal))
        case .success(let result): found = result
        }
        guard let token = found.token else {
            return eventLoop.makeSucceededFuture(self.deny(JWTRefusal(.missing, "no bearer token")))
        }
        return self.verifier.verify(token, on: eventLoop).map { result in
            switch result {
            case .failure(let refusal):
                return self.deny(refusal)
            case .success(let verified):
                self.metrics.authDecided(route: self.route, method: "jwt", outcome: "allow")
                return .allow(Self.grant(self.configuration, strip: found.strip, claims: verified.claims, expiresAt: verified.expiresAt))
            }
        }
    }

    static func wholeSeconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds + (attoseconds > 0 ? 1 : 0)
    }

    private func deny(_ refusal: JWTRefusal) -> AuthorizationOutcome {
        self.metrics.authDecided(route: self.route, method: "jwt", outcome: refusal.outcome.rawValue)
        return .deny(refusal.rejection(realm: self.configuration.realm))
    }

    /// What an accepted token changes in the upstream request (pure): the carriers stripped, the
    /// claims added as headers (each configured header name is removed from what the client sent, even
    /// when the token lacks the claim: only the gateway vouches for it), and, with `close_on_expiry`,
    /// `exp` plus the clock skew for the relay: the instant the handshake stops accepting the token, so
    /// that a client reconnecting with it after the close is refused (401) instead of being accepted and
    /// closed again at once.
    static func grant(
        _ configuration: GatewayConfiguration.JWTAuthentication,
        strip: BearerTokenSources.Strip,
        claims: JWTClaimSet,
        expiresAt: Int64
    ) -> AuthorizationGrant {
        var grant = AuthorizationGrant(
            removeHeaders: strip.removeHeaders + configuration.claimsToHeaders.map(\.header),
            removeQueryParameters: strip.removeQueryParameters,
            removeSubprotocols: strip.removeSubprotocols,
            expiresAt: configuration.closeOnExpiry ? expiresAt + Self.wholeSeconds(configuration.clockSkew) : nil
        )
        if let cookie = strip.cookie { grant.addHeaders.append((name: "Cookie", value: cookie)) }
        for claimHeader in configuration.claimsToHeaders {
            // A value with CR, LF or NUL is never written (the upstream request would be split).
            guard let value = claims[claimHeader.claim]?.headerText, !value.utf8.contains(where: { $0 < 0x20 && $0 != 0x09 || $0 == 0x7F })
            else { continue }
            grant.addHeaders.append((name: claimHeader.header, value: value))
        }
        return grant
    }
}

extension GatewayConfiguration {
    /// Reads every route's `auth.jwt.jwks` as the start and a reload do, so that `wsgate check` refuses
    /// a configuration whose keys would refuse the start (blocking file I/O).
    public func checkJWKSFiles() throws {
        for route in self.routes {
            guard let jwt = route.auth?.jwt else { continue }
            do {
                _ = try JWTKeySet.load(path: jwt.jwks, algorithms: jwt.algorithms)
            } catch {
                throw GatewayError("route \(route.label): auth.jwt: \(error)")
            }
        }
    }
}
