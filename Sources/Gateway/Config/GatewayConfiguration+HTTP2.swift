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
        /// `SETTINGS_MAX_HEADER_LIST_SIZE` (RFC 9113 §6.5.2), the decoded size of a HEADERS block; a larger
        /// block ends the connection (`excessivelyLargeHeaderBlock`). Default: 16 KiB (as `request_head`).
        public var maxHeaderListBytes = 16 * 1024
        /// Rapid-reset guard (CVE-2023-44487): more `RST_STREAM` frames from a client than this in
        /// ``resetWindow`` close its connection with GOAWAY `ENHANCE_YOUR_CALM`. Default: 200.
        public var maxResets = 200
        /// The window of ``maxResets``. Default: 30 s.
        public var resetWindow: Duration = .seconds(30)

        public init() {}
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
        .count("max_resets", \.maxResets, in: 1...1_000_000),
        .duration("reset_window", \.resetWindow),
    ])
}
