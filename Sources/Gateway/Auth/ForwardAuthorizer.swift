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
    private let pools = NIOLockedValueBox(Pools())

    /// One pool per event loop, made on first use; retired together.
    private struct Pools {
        var byLoop: [ObjectIdentifier: (eventLoop: any EventLoop, pool: NIOLoopBound<ForwardAuthPool>)] = [:]
        var retired = false
    }

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

    /// This event loop's pool (made on first use; retired at once when the authorizer already is, so a
    /// connection admitted before a reload still gets its answer but keeps nothing open). Call on
    /// `eventLoop`.
    func pool(on eventLoop: any EventLoop) -> ForwardAuthPool {
        let (pool, retired) = self.pools.withLockedValue { pools in
            if let entry = pools.byLoop[ObjectIdentifier(eventLoop)] { return (entry.pool.value, false) }
            let pool = ForwardAuthPool(configuration: self.configuration, eventLoop: eventLoop, connector: self.connector)
            pools.byLoop[ObjectIdentifier(eventLoop)] = (eventLoop, NIOLoopBound(pool, eventLoop: eventLoop))
            return (pool, pools.retired)
        }
        if retired { pool.retire() }
        return pool
    }

    /// Retires every event loop's pool on its loop (``ForwardAuthPool/retire()``): idle connections close
    /// now, busy ones once answered. Called on reload (the old authorizers) and at shutdown.
    func retire() {
        let pools = self.pools.withLockedValue { pools in
            pools.retired = true
            return Array(pools.byLoop.values)
        }
        for (eventLoop, pool) in pools {
            eventLoop.execute { pool.value.retire() }
        }
    }

    func authorize(
        _ context: AuthorizationContext,
        on eventLoop: any EventLoop,
        abandoned: EventLoopFuture<Void>?
    ) -> EventLoopFuture<AuthorizationOutcome> {
        let outcome = eventLoop.makePromise(of: Result<ForwardAuthResponse, ForwardAuthFailure>.self)
        let attempt = ForwardAuthAttempt(
            request: ForwardAuthExchange.requestHead(self.configuration, context),
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
