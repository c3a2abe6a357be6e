import NIOCore
import NIOHTTP1

/// The checks a request head goes through before the upstream is contacted, in order: drain (503),
/// the per-IP handshake rate (429, of the client address `client_address` resolves), RFC 6455 §4.2.1
/// and the route (``ClientUpgradeRequest/validate(_:limits:routes:)``), the SNI/Host match (421, when
/// the listener requires it), the Host's client-certificate settings against the SNI's (421, always on
/// a TLS listener), the route's `client_cert: require` (403, issue #13), then the route's
/// origin policy (403).
extension ClientConnectionHandler {
    func check(_ head: HTTPRequestHead, channel: (any Channel)? = nil) -> Result<ClientUpgradeRequest, HandshakeRejection> {
        if self.environment.connections.isDraining {
            return .failure(HandshakeRejection(503, "the gateway is shutting down", reason: "draining"))
        }
        if let rejection = self.resolveClientAddress(head, channel: channel) { return .failure(rejection) }
        if let rejection = self.handshakeRateRejection() { return .failure(rejection) }
        switch ClientUpgradeRequest.validate(head, limits: self.environment.limits, routes: self.environment.routes) {
        case .failure(let rejection):
            return .failure(rejection)
        case .success(let request):
            self.recorder.routed(request)
            if let rejection = self.sniHostRejection(request) { return .failure(rejection) }
            if let rejection = self.clientAuthenticationHostRejection(request) { return .failure(rejection) }
            if let rejection = self.clientCertificateRejection(request) { return .failure(rejection) }
            if let rejection = self.originRejection(request) { return .failure(rejection) }
            return .success(request)
        }
    }

    /// Issue #13: a route with `client_cert: require` refuses a connection without a verified client
    /// certificate (a listener with `client_auth.mode: optional`, or none at all).
    private func clientCertificateRejection(_ request: ClientUpgradeRequest) -> HandshakeRejection? {
        guard request.route.route.clientCertificate == .require, self.clientCertificate == nil else { return nil }
        return HandshakeRejection(403, "this route requires a client certificate", reason: "client-certificate-required")
    }

    // MARK: Policies (issue #5 B–C): origin and per-IP handshake rate

    /// DESIGN §1.5: the route's origin policy, judged against this listener's scheme. Counted once per
    /// decision, allowed or refused.
    private func originRejection(_ request: ClientUpgradeRequest) -> HandshakeRejection? {
        let decision = self.environment.originPolicies[request.route.index].check(request.origin, listenerUsesTLS: self.clientUsedTLS)
        let route = request.route.route.label
        switch decision {
        case .allowed(let reason):
            self.environment.metrics.originDecided(route: route, .allow, reason: reason)
            return nil
        case .refused(let reason, let message):
            self.environment.metrics.originDecided(route: route, .refuse, reason: reason)
            return HandshakeRejection(403, message, reason: "origin-\(reason)")
        }
    }

    /// DESIGN §5: upgrade requests per second per client IP; over it, 429 with `Retry-After`.
    private func handshakeRateRejection() -> HandshakeRejection? {
        let record = self.recorder.record
        guard let retryAfter = self.environment.admission.admitHandshake(ip: record.clientAddress) else { return nil }
        self.environment.metrics.connectionLimitRefused(listener: record.listener, .ipHandshakeRate)
        return HandshakeRejection(
            429,
            "too many upgrade requests from this address",
            reason: "ip-handshake-rate",
            headers: [("Retry-After", String(max(1, retryAfter)))]
        )
    }
}
