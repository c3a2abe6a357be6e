import CoreMetrics

/// Every metric the gateway exports, declared once: name, type, typed labels and help, each in one
/// line below. The documentation catalog (``catalog``, checked against the README by
/// `OperationsDocumentationTests`) is derived from these declarations, and every recording goes through
/// them, so a name or a label set cannot drift between the code and the documentation.
///
/// Names are Prometheus-style (`wsgate_…_total`); label values are typed and bounded (route labels,
/// sides, reasons — never client addresses or free text). Each series' swift-metrics object is made
/// once and kept (``MetricSeries``); pass the `MetricsFactory` explicitly (`MetricsTestKit.TestMetrics`
/// in tests).
///
/// Counting is for decisions and connection-level events, not per frame: per-message and per-byte
/// figures are accumulated in the connection's record and added once when it ends.
///
/// Adding a metric: a stored family here (its name and help in `init`), its label set in
/// `GatewayMetrics+Labels.swift` (or one that exists, such as ``RouteSideLabels``), one recording
/// method in `GatewayMetrics+Recording.swift`, and its README row (the tests then check all three
/// agree).
///
/// A class of `let`s, not a struct: every connection copies it into its recorder, handlers and relay
/// session, and as a struct each copy retained and released every family (issue #15: about 1 % of a
/// connection's CPU in the connect profile, BENCHMARKS.md).
final class GatewayMetrics: Sendable {
    let connectionsAccepted: CounterFamily<ListenerLabels>
    let connections: CounterFamily<ListenerRouteLabels>
    let connectionsOpen: GaugeFamily<ListenerRouteLabels>
    let upgradesRefused: CounterFamily<UpgradeRefusalLabels>
    let messages: CounterFamily<TrafficLabels>
    let bytes: CounterFamily<TrafficLabels>
    let closeCodes: CounterFamily<CloseCodeLabels>
    let tlsHandshakeFailures: CounterFamily<TLSFailureLabels>
    let protocolViolations: CounterFamily<ProtocolViolationLabels>
    let upstreamConnectSeconds: HistogramFamily<UpstreamMemberLabels>
    let upstreamConnectFailures: CounterFamily<ConnectFailureLabels>
    let reloads: CounterFamily<ResultLabels<ReloadResult>>
    let draining: GaugeFamily<NoLabels>
    let drainedConnections: CounterFamily<ResultLabels<DrainEnd>>
    // Policies (issue #5).
    let originDecisions: CounterFamily<OriginDecisionLabels>
    let rateLimitDecisions: CounterFamily<RateLimitLabels>
    let connectionLimitRefusals: CounterFamily<ConnectionLimitLabels>
    let keepAliveTimeouts: CounterFamily<RouteSideLabels>
    let frameDeadlineCloses: CounterFamily<RouteSideLabels>
    let maxLifetimeCloses: CounterFamily<RouteLabels>
    // Edge (issue #11).
    let proxyProtocolRefusals: CounterFamily<ProxyProtocolRefusalLabels>
    let acceptErrors: CounterFamily<AcceptErrorLabels>
    // permessage-deflate (issue #5 A).
    let extensionDecisions: CounterFamily<ExtensionDecisionLabels>
    let extensionsDropped: CounterFamily<RouteSideLabels>
    // Compression (issue #10 items 5 and 7).
    let compressionUncompressedMessages: CounterFamily<RouteSideLabels>
    let compressionMemoryDeclines: CounterFamily<RouteSideLabels>
    // Client certificates (issue #13).
    let clientCertificates: CounterFamily<ClientCertificateLabels>
    // WebSockets over HTTP/2 (issue #16).
    let connectionsByProtocol: CounterFamily<ListenerProtocolLabels>
    // Authorization stage (issue #13): one per authorizer decision, by method and outcome.
    let authDecisions: CounterFamily<AuthDecisionLabels>

    /// The histogram's name, for its buckets on the Prometheus factory.
    static let upstreamConnectSecondsName = "wsgate_upstream_connect_seconds"

    init(factory f: any MetricsFactory = MetricsSystem.factory) {
        self.connectionsAccepted = .init("wsgate_connections_accepted_total", help: "TCP connections accepted", factory: f)
        self.connections = .init("wsgate_connections_total", help: "WebSocket connections established (101 sent)", factory: f)
        self.connectionsOpen = .init("wsgate_connections_open", help: "WebSocket connections being relayed now", factory: f)
        self.upgradesRefused = .init("wsgate_upgrades_refused_total", help: "upgrade requests answered with an HTTP error", factory: f)
        self.messages = .init("wsgate_messages_total", help: "messages relayed, added as they flow (within a second)", factory: f)
        self.bytes = .init("wsgate_bytes_total", help: "payload bytes relayed, added as they flow (within a second)", factory: f)
        self.closeCodes = .init(
            "wsgate_close_codes_total",
            help: "close codes per leg, sent by the peer or by the gateway (1006: TCP lost, 1015: TLS handshake failed)",
            factory: f
        )
        self.tlsHandshakeFailures = .init("wsgate_tls_handshake_failures_total", help: "failed TLS handshakes by leg and class", factory: f)
        self.protocolViolations = .init("wsgate_protocol_violations_total", help: "RFC 6455 violations by the side that broke the rule", factory: f)
        self.upstreamConnectSeconds = .init(Self.upstreamConnectSecondsName, help: "time to connect to an upstream member (TCP)", factory: f)
        self.upstreamConnectFailures = .init("wsgate_upstream_connect_failures_total", help: "failed connects to an upstream member", factory: f)
        self.reloads = .init("wsgate_reloads_total", help: "SIGHUP reloads, applied or refused", factory: f)
        self.draining = .init("wsgate_draining", help: "1 while the gateway drains", factory: f)
        self.drainedConnections = .init(
            "wsgate_drained_connections_total",
            help: "connections ended by a drain: closed (handshake done) or forced (deadline)",
            factory: f
        )
        self.originDecisions = .init("wsgate_origin_decisions_total", help: "origin checks and the rule that decided", factory: f)
        self.rateLimitDecisions = .init("wsgate_rate_limit_decisions_total", help: "rate limits reached", factory: f)
        self.connectionLimitRefusals = .init("wsgate_connection_limit_refusals_total", help: "connections refused by a cap", factory: f)
        self.keepAliveTimeouts = .init("wsgate_keepalive_timeouts_total", help: "legs closed for an unanswered keep-alive ping", factory: f)
        self.frameDeadlineCloses = .init(
            "wsgate_frame_deadline_closes_total",
            help: "legs closed with 1008 for a frame or message not whole within timeouts.frame",
            factory: f
        )
        self.maxLifetimeCloses = .init("wsgate_max_lifetime_closes_total", help: "connections closed at their maximum lifetime", factory: f)
        self.proxyProtocolRefusals = .init(
            "wsgate_proxy_protocol_refusals_total",
            help: "connections closed for a missing, late or malformed PROXY protocol header, or from a peer outside trusted_proxies",
            factory: f
        )
        self.acceptErrors = .init(
            "wsgate_accept_errors_total",
            help: "accept failures for want of a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM), each pausing the listener for 1 s",
            factory: f
        )
        self.extensionDecisions = .init(
            "wsgate_extension_decisions_total",
            help: "permessage-deflate decision per leg at each 101",
            factory: f
        )
        self.extensionsDropped = .init(
            "wsgate_extensions_dropped_total",
            help: "offered extensions the gateway does not implement (never forwarded)",
            factory: f
        )
        self.compressionUncompressedMessages = .init(
            "wsgate_compression_uncompressed_messages_total",
            help: "messages sent uncompressed toward a compressing leg because compressing did not make them smaller",
            factory: f
        )
        self.compressionMemoryDeclines = .init(
            "wsgate_compression_memory_declines_total",
            help: "permessage-deflate not negotiated because limits.compression_memory was spent",
            factory: f
        )
        self.clientCertificates = .init(
            "wsgate_client_certificates_total",
            help: "client certificate outcomes of TLS handshakes that asked for one",
            factory: f
        )
        self.connectionsByProtocol = .init(
            "wsgate_connections_by_protocol_total",
            help: "WebSocket connections established, by what carried the handshake (http1: a 101; h2: an RFC 8441 stream, 200)",
            factory: f
        )
        self.authDecisions = .init(
            "wsgate_auth_decisions_total",
            help: "authorization decisions at the handshake, by route, method (jwt, forward) and outcome",
            factory: f
        )
    }
}
