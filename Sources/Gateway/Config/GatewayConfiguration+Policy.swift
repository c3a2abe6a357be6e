/// Policy settings of issue #5 parts B–D (origins, rate limits, connection limits, keep-alive). The
/// stored properties that hold them are declared in `GatewayConfiguration.swift`; the YAML schema is
/// read in `GatewayConfiguration+PolicyYAML.swift` and documented in `config/example.yaml`.
extension GatewayConfiguration {
    /// Which `Origin`s may open a WebSocket on a route (DESIGN §1.5; RFC 6455 §10.2, RFC 6454).
    ///
    /// Checked in this order, the first rule that applies decides:
    /// 1. no `Origin` header → ``missing`` (a non-browser client; browsers always send one);
    /// 2. `Origin: null` → ``null`` (sandboxed frames, `file:` pages, some redirects);
    /// 3. an `Origin` that is not a serialized origin (RFC 6454 §6.2) → refused;
    /// 4. mixed content: on a TLS listener an `http:` origin, on a plaintext listener an `https:` origin →
    ///    refused unless ``mixedContent`` is `.allow`;
    /// 5. ``allow`` empty → allowed; otherwise allowed only when an entry matches.
    ///
    /// Refusals are `403 Forbidden` with the reason in the body. The policy is per route (different
    /// applications behind one gateway have different pages); mixed content is judged against the
    /// listener the connection came in on.
    public struct OriginPolicy: Sendable, Hashable {
        /// Exact origins (`https://app.example`, `http://localhost:3000`) and wildcard subdomains
        /// (`https://*.example.com`: any name below `example.com`, not `example.com` itself). Schemes and
        /// hosts compare case-insensitively and default ports are folded (`https://a.example:443` is
        /// `https://a.example`). Default: empty (every well-formed origin that passes rules 1–4).
        public var allow: [String] = []
        /// What `Origin: null` gets. Default: `.refuse`.
        public var null: Decision = .refuse
        /// What a request without `Origin` gets. Default: `.allow` (command-line and server clients do
        /// not send one; a browser always does, so this does not weaken the browser check).
        public var missing: Decision = .allow
        /// Whether a TLS listener accepts `http:` origins and a plaintext listener `https:` origins.
        /// Default: `.refuse`. Set `.allow` on a plaintext listener that sits behind a TLS-terminating
        /// load balancer, where browsers legitimately send `https:` origins.
        public var mixedContent: Decision = .refuse

        public enum Decision: String, Sendable, Hashable {
            case allow
            case refuse
        }

        public init() {}
    }

    /// Token-bucket limits for one direction of a connection (DESIGN §5), checked at frame boundaries:
    /// a data message takes one message token with its first frame, every data frame takes its
    /// declared payload length in byte tokens with its header, and every control frame one control
    /// token. Close frames are never limited (a peer's Close is always honoured). `nil` limits are off.
    public struct DirectionRateLimits: Sendable, Hashable {
        /// Messages per second. Default: off.
        public var messages: Rate?
        /// Payload bytes per second (as on the wire). Default: off.
        public var bytes: Rate?
        /// Pings and pongs per second. Default: 100/s with a burst of 100
        /// (DESIGN §7, RELIABILITY R-04).
        public var controlFrames: Rate? = Rate(perSecond: 100, burst: 100)
        /// What happens when a limit is reached. Default: `.close` (1008).
        public var action: RateLimitAction = .close

        public init() {}
    }

    /// `perSecond` tokens are added each second, up to `burst`.
    public struct Rate: Sendable, Hashable {
        public var perSecond: Int
        public var burst: Int

        public init(perSecond: Int, burst: Int) {
            self.perSecond = perSecond
            self.burst = burst
        }
    }

    public enum RateLimitAction: String, Sendable, Hashable {
        /// Stop reading the sender until tokens return: lossless backpressure, nothing is dropped.
        case throttle
        /// Close with 1008 (policy violation) toward the sender and 1001 toward the other side, at a frame
        /// boundary (the frame over the limit is not forwarded).
        case close
    }

    /// Rate limits of a route per direction: `client` limits what the client sends, `upstream` what the
    /// upstream sends.
    public struct RateLimits: Sendable, Hashable {
        public var client = DirectionRateLimits()
        public var upstream = DirectionRateLimits()

        public init() {}
    }

    /// Admission limits checked before a connection does any work (DESIGN §1.1). Keyed by the socket's
    /// peer address, never by `X-Forwarded-For` (RELIABILITY H-13, O-06).
    public struct ConnectionLimits: Sendable, Hashable {
        /// Open connections from one IP address, over all listeners. Beyond it the new connection is
        /// closed at accept, before anything is read. Default: off.
        public var perIPConnections: Int?
        /// Upgrade requests per second from one IP address (token bucket). Beyond it: `429 Too Many
        /// Requests` with `Retry-After`, before any upstream contact. Default: off.
        public var perIPHandshakes: Rate?
        /// IPv6 clients are counted by this many leading bits of their address (one host usually owns
        /// a whole /64); IPv4 clients by their address. 1–128. Default: 64.
        public var ipv6Prefix: Int = 64

        public init() {}
    }
}
