import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// Forward-auth (issue #13 §3, `routes[].auth.forward`), as nginx `auth_request`, Traefik `forwardAuth`
/// and Caddy `forward_auth` do it: a `GET` to the service with the upgrade's identity; 2xx allows (its
/// `copy_headers` go to the upstream request), 401 and 403 are relayed to the client, anything else is
/// 502, the deadline 504, a full queue 503. The request runs on the client connection's event loop
/// through that loop's ``ForwardAuthPool``; a client that leaves closes its pending request.
struct ForwardAuthorizer: UpgradeAuthorizer {
    let configuration: GatewayConfiguration.ForwardAuthentication
    let route: String
    let metrics: GatewayMetrics
    private let connector: any UpstreamConnector
    private let pools = NIOLockedValueBox<[ObjectIdentifier: NIOLoopBound<ForwardAuthPool>]>([:])

    init(
        _ configuration: GatewayConfiguration.ForwardAuthentication,
        route: String,
        metrics: GatewayMetrics,
        connector: (any UpstreamConnector)? = nil
    ) {
        self.configuration = configuration
        self.route = route
        self.metrics = metrics
        var timeouts = GatewayConfiguration.Timeouts()
        timeouts.upstreamConnect = configuration.timeout
        self.connector = connector ?? BootstrapUpstreamConnector(limits: GatewayConfiguration.Limits(), timeouts: timeouts)
    }

    var deadline: TimeAmount { TimeAmount(self.configuration.timeout) }

    /// This event loop's pool (made on first use). Call on `eventLoop`.
    func pool(on eventLoop: any EventLoop) -> ForwardAuthPool {
        self.pools.withLockedValue { pools in
            if let pool = pools[ObjectIdentifier(eventLoop)] { return pool.value }
            let pool = ForwardAuthPool(configuration: self.configuration, eventLoop: eventLoop, connector: self.connector)
            pools[ObjectIdentifier(eventLoop)] = NIOLoopBound(pool, eventLoop: eventLoop)
            return pool
        }
    }

    func authorize(
        _ request: ClientUpgradeRequest,
        head: HTTPRequestHead,
        peer: IPAddress?,
        clientUsedTLS: Bool,
        on eventLoop: any EventLoop
    ) -> EventLoopFuture<AuthorizationOutcome> {
        self.authorize(request, head: head, peer: peer, clientUsedTLS: clientUsedTLS, on: eventLoop, abandoned: nil)
    }

    func authorize(
        _ request: ClientUpgradeRequest,
        head: HTTPRequestHead,
        peer: IPAddress?,
        clientUsedTLS: Bool,
        on eventLoop: any EventLoop,
        abandoned: EventLoopFuture<Void>
    ) -> EventLoopFuture<AuthorizationOutcome> {
        self.authorize(request, head: head, peer: peer, clientUsedTLS: clientUsedTLS, on: eventLoop, abandoned: .some(abandoned))
    }

    private func authorize(
        _ request: ClientUpgradeRequest,
        head: HTTPRequestHead,
        peer: IPAddress?,
        clientUsedTLS: Bool,
        on eventLoop: any EventLoop,
        abandoned: EventLoopFuture<Void>?
    ) -> EventLoopFuture<AuthorizationOutcome> {
        let outcome = eventLoop.makePromise(of: Result<ForwardAuthResponse, ForwardAuthFailure>.self)
        let attempt = ForwardAuthAttempt(
            request: ForwardAuthExchange.requestHead(self.configuration, request: request, head: head, peer: peer, clientUsedTLS: clientUsedTLS),
            pool: self.pool(on: eventLoop),
            promise: outcome
        )
        let loop = eventLoop.assumeIsolated()
        attempt.deadline = loop.scheduleTask(in: self.deadline) { attempt.cancel(.timeout) }
        abandoned?.assumeIsolated().whenComplete { _ in attempt.cancel(.abandoned) }
        attempt.pool.acquire(attempt)
        let configuration = self.configuration
        let metrics = self.metrics
        let route = self.route
        return outcome.futureResult.map { result in
            let decision = ForwardAuthExchange.decide(result, copyHeaders: configuration.copyHeaders)
            metrics.authDecided(route: route, method: "forward", outcome: decision.metric)
            return decision.outcome
        }
    }
}
