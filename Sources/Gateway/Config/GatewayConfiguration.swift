import Frames
import TLSShim

/// The whole configuration of a gateway: what `wsgate run -c FILE` reads (see `GatewayConfiguration+YAML`)
/// and what the embedded default builds. A value type; it is compiled once (routes, TLS contexts) at start
/// and on reload.
public struct GatewayConfiguration: Sendable, Hashable {
    public var listeners: [Listener]
    public var routes: [Route]
    public var limits: Limits
    public var timeouts: Timeouts
    public var accessLog: AccessLogDestination
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`); see `GatewayConfiguration+Operations`.
    public var admin = Admin()
    /// Per-IP admission limits (policies, issue #5; `GatewayConfiguration+Policy.swift`).
    public var connectionLimits = ConnectionLimits()
    /// Trusted proxies and the client-address source (issue #11; `GatewayConfiguration+Edge.swift`).
    public var edge = Edge()
    /// Event loops (`workers`; `GatewayConfiguration+Workers.swift`). `nil`: one per core.
    public var workers: Int?

    public init(
        listeners: [Listener],
        routes: [Route],
        limits: Limits = Limits(),
        timeouts: Timeouts = Timeouts(),
        accessLog: AccessLogDestination = .standardOutput
    ) {
        self.listeners = listeners
        self.routes = routes
        self.limits = limits
        self.timeouts = timeouts
        self.accessLog = accessLog
    }

    /// One address the gateway accepts connections on.
    public struct Listener: Sendable, Hashable {
        /// A name for logs and metrics. Default: the address (`host:port`, `[v6]:port`).
        public var name: String
        /// The host (an IPv4/IPv6 literal without brackets, or a name) and port to bind.
        public var host: String
        public var port: Int
        /// TLS termination; `nil` for a plaintext (`ws`) listener. TLSShim's own configuration: the YAML
        /// file sets the default identity (`certificate`, `key`), `sni` virtual hosts and `min_version`;
        /// code may set the rest (the embedded default's in-memory identity).
        public var tls: TLSServerConfiguration?
        /// Open connections on this listener; beyond it a new connection is closed at accept (policies,
        /// issue #5). Default: `nil`, no limit.
        public var maxConnections: Int?
        /// PROXY protocol and the SNI/Host match (issue #11; `GatewayConfiguration+Edge.swift`).
        public var edge = Edge()

        public init(name: String? = nil, host: String, port: Int, tls: TLSServerConfiguration? = nil) {
            self.name = name ?? (host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
            self.host = host
            self.port = port
            self.tls = tls
        }
    }

    /// Requests whose host and path match go to one upstream group.
    public struct Route: Sendable, Hashable {
        /// Host patterns: exact names or `*.suffix`; empty matches every host.
        public var hosts: [String]
        /// The path prefix (segment-wise: `/chat` matches `/chat` and `/chat/x`, not `/chatter`). Default: `/`.
        public var pathPrefix: String
        /// The upstream members, round robin over the healthy ones.
        public var upstreams: [Upstream]
        /// The subprotocols that may be offered upstream; empty forwards the client's offer unchanged.
        public var subprotocols: [String]
        /// Origin and rate-limit policies (issue #5; `GatewayConfiguration+Policy.swift`).
        public var origins = OriginPolicy()
        public var rateLimits = RateLimits()
        /// Extension policy per leg (permessage-deflate). Default: strip on both legs.
        public var extensions: Extensions
        /// TLS toward every `wss://` member of the route: one client context per route, shared by its
        /// members; each member is verified against (and sends SNI for) its own host unless
        /// ``UpstreamTLS/serverName`` is set. `nil`: the defaults (``UpstreamTLS/init()``); setting it on
        /// a route without `wss://` members is an error.
        public var upstreamTLS: UpstreamTLS?
        /// The connection's verified client certificate: sent upstream in `X-Forwarded-Client-Cert`,
        /// required (403 without), or not forwarded (issue #13; `GatewayConfiguration+ClientCertificates`).
        /// A client's own `X-Forwarded-Client-Cert` is removed whatever this says. Default: `forward`.
        public var clientCertificate: ClientCertificatePolicy = .forward
        /// Authentication at the handshake (issue #13; `GatewayConfiguration+Auth.swift`): `nil` lets every
        /// upgrade through to the upstream (the default).
        public var auth: RouteAuthentication?

        public init(
            hosts: [String] = [],
            pathPrefix: String = "/",
            upstreams: [Upstream],
            subprotocols: [String] = [],
            extensions: Extensions = Extensions()
        ) {
            self.hosts = hosts
            self.pathPrefix = pathPrefix
            self.upstreams = upstreams
            self.subprotocols = subprotocols
            self.extensions = extensions
        }
    }

    /// One upstream member: a `ws://` or `wss://` URL.
    public struct Upstream: Sendable, Hashable {
        public enum Scheme: String, Sendable, Hashable {
            case ws
            case wss
        }

        public var scheme: Scheme
        /// A name or an IP literal (IPv6 without brackets).
        public var host: String
        public var port: Int
        /// The path prefix that replaces the route's prefix upstream; `nil` sends the client's path as is.
        public var path: String?

        public init(scheme: Scheme, host: String, port: Int, path: String? = nil) {
            self.scheme = scheme
            self.host = host
            self.port = port
            self.path = path
        }
    }

    /// TLS toward the `wss://` members of a route (``Route/upstreamTLS``).
    public struct UpstreamTLS: Sendable, Hashable {
        /// TLSShim's client configuration. The YAML file sets `verify` (full verification or none),
        /// `ca` (trust roots instead of the system bundle) and `client_certificate` with `client_key`
        /// (the identity for mTLS). Default: full verification against the system bundle.
        public var configuration: TLSClientConfiguration
        /// The name sent in SNI and verified, for every member; `nil` uses each member's own host.
        public var serverName: String?

        public init(configuration: TLSClientConfiguration = TLSClientConfiguration(), serverName: String? = nil) {
            self.configuration = configuration
            self.serverName = serverName
        }
    }

    /// Size and count limits. Sizes in bytes.
    public struct Limits: Sendable, Hashable {
        /// The longest request head (request line and headers). Default: 16 KiB (431 past it).
        public var requestHeadBytes: Int = 16 * 1024
        /// The most request header fields. Default: 100 (431 past it).
        public var requestHeaders: Int = 100
        /// The largest frame payload. Default: 1 MiB (1009).
        public var maxFrameSize: Int = 1 << 20
        /// The largest message. Default: 1 MiB (1009).
        public var maxMessageSize: Int = 1 << 20
        /// The most frames per message. Default: 1,024 (1008).
        public var maxFragments: Int = 1024
        /// Per-direction write buffer high watermark: reading from the source stops above it. Default: 256 KiB.
        public var bufferHighWatermark: Int = 256 * 1024
        /// Reading resumes below it. Default: 64 KiB.
        public var bufferLowWatermark: Int = 64 * 1024
        /// Process-wide budget for zlib memory of permessage-deflate (issue #10 item 7); once spent, new
        /// connections open without compression. `nil`: a quarter of the machine's physical memory.
        public var compressionMemory: Int?
        /// HTTP/2 listeners (RFC 8441, issue #16; `GatewayConfiguration+HTTP2.swift`).
        public var http2 = HTTP2Limits()

        public init() {}
    }

    /// Deadlines, in nanoseconds-backed `Duration`s.
    public struct Timeouts: Sendable, Hashable {
        /// The whole request head must arrive within it (408). Default: 10 s.
        public var requestHead: Duration = .seconds(10)
        /// TLS handshake with a client. Default: 10 s.
        public var tlsHandshake: Duration = .seconds(10)
        /// TCP connect to an upstream (502/504). Default: 5 s.
        public var upstreamConnect: Duration = .seconds(5)
        /// TLS and WebSocket handshake with an upstream (504). Default: 10 s.
        public var upstreamHandshake: Duration = .seconds(10)
        /// How long to wait for the other side's Close after relaying one. Default: 10 s.
        public var close: Duration = .seconds(10)
        /// A connection with no frame in either direction for this long is closed (1001). Default: 120 s.
        public var idle: Duration = .seconds(120)
        /// On SIGTERM/SIGINT, how long live connections get to finish their close handshakes before they
        /// are closed. Default: 25 s (inside Kubernetes' default 30 s grace period).
        public var drain: Duration = .seconds(25)
        /// A leg that sent nothing for this long gets a keep-alive ping from the gateway; `nil` turns
        /// keep-alive off. Default: 30 s (DESIGN §7).
        public var pingInterval: Duration? = .seconds(30)
        /// A leg that does not answer a keep-alive ping within this long is dead: its connection is closed
        /// and the other side gets 1001. Default: 20 s (DESIGN §7).
        public var pongDeadline: Duration = .seconds(20)
        /// A connection open this long gets 1001 on both legs; `nil` for no limit. Default: `nil`.
        public var maxLifetime: Duration?
        /// A frame, and a fragmented message, must arrive whole within this long however steadily its
        /// bytes trickle; otherwise its sender gets Close 1008 and the other leg 1001. `nil` turns it off.
        /// Default: 30 s (issue #10).
        public var frame: Duration? = .seconds(30)
        /// A listener with `proxy_protocol` closes a connection whose PROXY header has not arrived within
        /// it (issue #11). Default: 5 s.
        public var proxyHeader: Duration = .seconds(5)

        public init() {}
    }

    /// Where access-log lines go.
    public enum AccessLogDestination: Sendable, Hashable {
        case standardOutput
        case standardError
        case file(String)
        case off
    }
}
