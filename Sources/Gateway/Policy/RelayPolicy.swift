import Frames
import NIOCore

/// What a relayed connection enforces beyond the frame limits (issue #5 C–D), built per connection from
/// the route and the timeouts. The default enforces nothing (no rate limit, no keep-alive, no lifetime).
struct RelayPolicy {
    /// Per-direction rate limits; `nil` for none.
    var rateLimits: GatewayConfiguration.RateLimits?
    /// Keep-alive ping after this much silence from a leg; `nil` for none.
    var pingInterval: TimeAmount?
    var pongDeadline: TimeAmount = .seconds(20)
    /// Both legs get 1001 after this long; `nil` for no limit.
    var maxLifetime: TimeAmount?
    /// Where decisions are counted, and the route's label for them.
    var metrics: GatewayMetrics?
    var route: String = ""

    init() {}

    /// The policy of a connection on `route` under `timeouts`.
    init(route: GatewayConfiguration.Route, timeouts: GatewayConfiguration.Timeouts, metrics: GatewayMetrics) {
        self.rateLimits = route.rateLimits
        self.pingInterval = timeouts.pingInterval.map(TimeAmount.init)
        self.pongDeadline = TimeAmount(timeouts.pongDeadline)
        self.maxLifetime = timeouts.maxLifetime.map(TimeAmount.init)
        self.metrics = metrics
        self.route = route.label
    }
}

/// The per-connection state of ``RelayPolicy`` inside ``RelaySession``.
struct RelayPolicyState {
    /// A frame from a throttled leg that was held back, with what was read after it.
    struct Throttled {
        enum Pending {
            case header(FrameHeader)
            case control(ControlFrame)
        }

        var pending: Pending
        var stash: ByteBuffer
        var timer: Scheduled<Void>?
    }

    let policy: RelayPolicy
    var limiters: PerSide<RateLimiter?>
    var throttled = PerSide<Throttled?>(nil)
    var keepAlive = PerSide<KeepAlive?>(nil)
    var keepAliveTimers = PerSide<Scheduled<Void>?>(nil)
    var lifetimeTimer: Scheduled<Void>?

    init(_ policy: RelayPolicy, now: NIODeadline) {
        self.policy = policy
        self.limiters = PerSide(
            client: policy.rateLimits.map { RateLimiter($0.client, now: now) }.flatMap { $0.isActive ? $0 : nil },
            upstream: policy.rateLimits.map { RateLimiter($0.upstream, now: now) }.flatMap { $0.isActive ? $0 : nil }
        )
    }

    // Policy decisions, counted with the route's label (one line per call site).

    func countRateLimit(_ side: Side, _ limit: RateLimiter.Limit, _ action: RateLimitAction) {
        self.policy.metrics?.rateLimited(route: self.policy.route, side: side, limit: limit, action: action)
    }

    func countKeepAliveTimeout(_ side: Side) {
        self.policy.metrics?.keepAliveTimedOut(route: self.policy.route, side: side)
    }

    func countMaxLifetimeClose() {
        self.policy.metrics?.maxLifetimeClosed(route: self.policy.route)
    }
}

extension GatewayConfiguration.Route {
    /// The route's label in metrics: its first host pattern (if any) followed by its path prefix
    /// (`chat.example.com/chat`, `/`). Bounded by the configuration, never by what clients send.
    var label: String { (self.hosts.first ?? "") + self.pathPrefix }
}
