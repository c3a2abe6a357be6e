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
    /// A frame or fragmented message must arrive whole within this long, or its sender gets 1008;
    /// `nil` for no deadline (`timeouts.frame`, issue #10).
    var frameTimeout: TimeAmount?
    /// Both legs get 1008 "token expired" after this long (`auth.jwt.close_on_expiry`, issue #13;
    /// `RelaySession+Expiry.swift`); `nil` for none.
    var tokenExpiry: TimeAmount?
    /// Where decisions are counted, and the route's label for them.
    var metrics: GatewayMetrics?
    var route: String = ""

    init() {}

    /// The policy of a connection on `route` under `timeouts`.
    init(
        route: GatewayConfiguration.Route,
        timeouts: GatewayConfiguration.Timeouts,
        metrics: GatewayMetrics,
        credentialExpiresAt: Int64? = nil
    ) {
        self.rateLimits = route.rateLimits
        self.pingInterval = timeouts.pingInterval.map(TimeAmount.init)
        self.pongDeadline = TimeAmount(timeouts.pongDeadline)
        self.maxLifetime = timeouts.maxLifetime.map(TimeAmount.init)
        self.frameTimeout = timeouts.frame.map(TimeAmount.init)
        self.metrics = metrics
        self.route = route.label
        self.tokenExpiry = Self.timeLeft(until: credentialExpiresAt)
    }
}

/// The per-connection state of ``RelayPolicy`` inside ``RelaySession``; per-direction state (rate limiter,
/// throttled frame, keep-alive) is in ``RelayDirection``.
struct RelayPolicyState {
    /// A frame from a throttled leg that was held back, with what was read after it.
    struct Throttled {
        enum Pending {
            case header(FrameHeader)
            case control(ControlFrame)
        }

        var pending: Pending
        var stash: ByteBuffer
    }

    let policy: RelayPolicy
    /// The lifetime and expiry timers were armed (once per connection, with the first leg; the
    /// transport keeps them: ``RelayTimer``).
    var lifetimeArmed = false
    var expiryArmed = false

    init(_ policy: RelayPolicy) {
        self.policy = policy
    }

    // Policy decisions, counted with the route's label (one line per call site).

    func countRateLimit(_ side: Side, _ limit: RateLimiter.Limit, _ action: RateLimitAction) {
        self.policy.metrics?.rateLimited(route: self.policy.route, side: side, limit: limit, action: action)
    }

    func countKeepAliveTimeout(_ side: Side) {
        self.policy.metrics?.keepAliveTimedOut(route: self.policy.route, side: side)
    }

    func countFrameDeadlineClose(_ side: Side) {
        self.policy.metrics?.frameDeadlineClosed(route: self.policy.route, side: side)
    }

    func countMaxLifetimeClose() {
        self.policy.metrics?.maxLifetimeClosed(route: self.policy.route)
    }

    func countTokenExpiryClose() {
        self.policy.metrics?.authDecided(route: self.policy.route, method: "jwt", outcome: "closed_on_expiry")
    }
}

extension GatewayConfiguration.Route {
    /// The route's label in metrics: its first host pattern (if any) followed by its path prefix
    /// (`chat.example.com/chat`, `/`). Bounded by the configuration, never by what clients send.
    var label: String { (self.hosts.first ?? "") + self.pathPrefix }
}
