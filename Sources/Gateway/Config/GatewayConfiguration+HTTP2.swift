import TLSShim

/// WebSockets over HTTP/2 (RFC 8441, issue #16): opt-in per TLS listener (`listeners[].tls.http2`),
/// and the limits HTTP/2 adds (`limits.http2`).
extension GatewayConfiguration {
    /// The limits of an HTTP/2 connection. Every stream is also a connection for the per-IP and
    /// per-listener caps (``ConnectionLimits``), and each stream's WebSocket keeps every WebSocket limit.
    public struct HTTP2Limits: Sendable, Hashable {
        /// `SETTINGS_MAX_CONCURRENT_STREAMS` (RFC 9113 §6.5.2): streams open at once on one connection;
        /// a client that opens more gets `RST_STREAM(REFUSED_STREAM)` from swift-nio-http2. Default: 100.
        public var maxConcurrentStreams = 100
        /// Streams over a connection's lifetime: the stream that reaches it is served, then the
        /// connection sends GOAWAY and refuses later ones. Default: 10,000.
        public var maxStreamsPerConnection = 10_000
        /// `SETTINGS_MAX_HEADER_LIST_SIZE` (RFC 9113 §6.5.2), the decoded size of a request's HEADERS block
        /// (names, values and 32 bytes per field): a larger request is answered `431` on its stream. The
        /// HPACK decoder's hard limit is ``hardHeaderListBytes``. Default: 16 KiB (as `request_head`).
        public var maxHeaderListBytes = 16 * 1024
        /// The bytes one connection may hold for its streams: DATA received and not yet read by the relays
        /// (the streams' flow-control windows) plus DATA queued toward the client. Each of
        /// ``maxConcurrentStreams`` streams gets an equal share, half as its receive window
        /// (``streamWindow``), half as its outbound high watermark (``streamOutboundHighWatermark(relay:)``);
        /// ``HTTP2ConnectionMemory`` enforces the total. Default: 16 MiB.
        public var maxConnectionBuffer = 16 * 1024 * 1024
        /// Rapid-reset guard (CVE-2023-44487): more `RST_STREAM` frames from a client than this in
        /// ``resetWindow`` close its connection with GOAWAY `ENHANCE_YOUR_CALM`. Default: 200.
        public var maxResets = 200
        /// The window of ``maxResets``. Default: 30 s.
        public var resetWindow: Duration = .seconds(30)

        public init() {}

        /// The smallest share a stream may get: a flow-control window of one maximum-size DATA frame
        /// (SETTINGS_MAX_FRAME_SIZE's initial 16,384, RFC 9113 §6.5.2) and as much queued toward the client.
        static let minimumStreamShare = 32 * 1024

        /// Each stream's equal share of ``maxConnectionBuffer``.
        var streamShare: Int { self.maxConnectionBuffer / self.maxConcurrentStreams }

        /// `SETTINGS_INITIAL_WINDOW_SIZE` and the stream windows' target: half a stream's share (at most
        /// 1 MiB), so `max_concurrent_streams × window` never exceeds half the connection's budget.
        var streamWindow: Int { min(self.streamShare / 2, 1 << 20) }

        /// The connection-level receive window: the sum of the stream windows (it bounds what is in
        /// flight per round trip; what is buffered is bounded by the stream windows).
        var connectionWindow: Int { min(self.streamWindow * self.maxConcurrentStreams, Int(Int32.max)) }

        /// A stream channel's outbound high watermark: the relay's, capped by the other half of the
        /// stream's share, so the relay stops reading the upstream before the connection's budget is spent.
        func streamOutboundHighWatermark(relay: Int) -> Int { min(relay, self.streamShare - self.streamWindow) }

        /// The HPACK decoder's hard limit, advertised as `SETTINGS_MAX_HEADER_LIST_SIZE` (advisory, RFC 9113
        /// §6.5.2): blocks between ``maxHeaderListBytes`` and this are decoded (bounded memory) and answered
        /// `431` on their stream; a larger one is a connection error (RFC 9113 §4.3: the HPACK state cannot
        /// be kept without decoding the whole block).
        var hardHeaderListBytes: Int { min(self.maxHeaderListBytes * 4, Int(Int32.max)) }

        /// `max_connection_buffer` must leave every concurrent stream ``minimumStreamShare``.
        func validate(at path: ConfigPath) throws(ConfigurationError) {
            guard self.maxConnectionBuffer >= Self.minimumStreamShare * self.maxConcurrentStreams else {
                throw path.key("max_connection_buffer").error(
                    .conflict,
                    "\(self.maxConnectionBuffer) bytes shared by max_concurrent_streams (\(self.maxConcurrentStreams)) leave "
                        + "\(self.streamShare) bytes per stream; each stream needs at least \(Self.minimumStreamShare) "
                        + "(a 16KiB flow-control window and as much queued toward the client): raise max_connection_buffer "
                        + "to at least \(Self.minimumStreamShare * self.maxConcurrentStreams) bytes or lower max_concurrent_streams"
                )
            }
            guard self.maxHeaderListBytes >= 1024 else {
                throw path.key("max_header_list").error(.outOfRange, "must be at least 1KiB (found \(self.maxHeaderListBytes) bytes)")
            }
        }
    }
}

extension GatewayConfiguration.Listener {
    /// Whether this listener offers `h2` in ALPN (`tls.http2: on`).
    public var http2: Bool { self.tls?.offersHTTP2 ?? false }
}

extension TLSServerConfiguration {
    /// `tls.http2: on` is the ALPN list `h2, http/1.1` (server preference); `off` (the default) offers
    /// `http/1.1` alone, so an HTTP/2 client falls back to HTTP/1.1 (RFC 7301 §3.2).
    public var offersHTTP2: Bool {
        get { self.applicationProtocols.contains("h2") }
        set { self.applicationProtocols = newValue ? ["h2", "http/1.1"] : ["http/1.1"] }
    }
}

extension GatewayConfiguration.HTTP2Limits {
    /// `listeners[].tls.http2`: `on` or `off`.
    static let listenerKey = YAMLSchema<TLSServerConfiguration>.Key.optional("http2") { value, field, _ throws(ConfigurationError) in
        value.offersHTTP2 = try field.word({ ["on": true, "off": false][$0] }, expected: "on or off")
    }

    static let yaml = YAMLSchema<Self>([
        .count("max_concurrent_streams", \.maxConcurrentStreams, in: 1...10_000),
        .count("max_streams_per_connection", \.maxStreamsPerConnection, in: 1...(1 << 30)),
        .size("max_header_list", \.maxHeaderListBytes),
        .size("max_connection_buffer", \.maxConnectionBuffer),
        .count("max_resets", \.maxResets, in: 1...1_000_000),
        .duration("reset_window", \.resetWindow),
    ])
}
