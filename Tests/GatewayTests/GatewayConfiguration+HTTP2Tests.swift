import Testing

@testable import Gateway

/// The HTTP/2 keys (issue #16): `listeners[].tls.http2` and `limits.http2`.
@Suite struct GatewayConfigurationHTTP2Tests {
    private static func document(tls: String = "", extra: String = "") -> String {
        """
        listeners: [{address: "127.0.0.1:8443", tls: {certificate: a.pem, key: a.key\(tls)}}]
        routes: [{upstreams: ["ws://127.0.0.1:9000"]}]
        \(extra)
        """
    }

    @Test func http2IsOffByDefaultAndOnOffersH2BeforeHTTP11() throws {
        let off = try GatewayConfiguration(yaml: Self.document())
        #expect(!off.listeners[0].http2)
        #expect(off.listeners[0].tls?.applicationProtocols == ["http/1.1"])
        let on = try GatewayConfiguration(yaml: Self.document(tls: ", http2: on"))
        #expect(on.listeners[0].http2)
        #expect(on.listeners[0].tls?.applicationProtocols == ["h2", "http/1.1"])
        let explicitOff = try GatewayConfiguration(yaml: Self.document(tls: ", http2: off"))
        #expect(explicitOff.listeners[0].tls?.applicationProtocols == ["http/1.1"])
    }

    @Test func anythingButOnOrOffIsRefusedWithItsPath() {
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration(yaml: Self.document(tls: ", http2: yes")) }
        #expect(throws: ConfigurationError.self) {
            try GatewayConfiguration(yaml: Self.document(extra: "limits: {http2: {max_concurrent_streams: 0}}"))
        }
    }

    @Test func everyHTTP2LimitIsReadAndDefaultsAreSafe() throws {
        let defaults = try GatewayConfiguration(yaml: Self.document()).limits.http2
        #expect(defaults.maxConcurrentStreams == 100 && defaults.maxStreamsPerConnection == 10_000)
        #expect(defaults.maxHeaderListBytes == 16 * 1024 && defaults.maxResets == 200 && defaults.resetWindow == .seconds(30))
        let yaml = Self.document(
            extra: """
                limits:
                  http2: {max_concurrent_streams: 8, max_streams_per_connection: 50, max_header_list: 4KiB, max_resets: 20, reset_window: 10s}
                """
        )
        let limits = try GatewayConfiguration(yaml: yaml).limits.http2
        #expect(limits.maxConcurrentStreams == 8 && limits.maxStreamsPerConnection == 50)
        #expect(limits.maxHeaderListBytes == 4096 && limits.maxResets == 20 && limits.resetWindow == .seconds(10))
    }

    /// `max_connection_buffer` (16 MiB by default) is shared by `max_concurrent_streams`: each stream's window
    /// and outbound watermark are half its share, so streams × window never exceeds the budget.
    @Test func theConnectionBufferIsSharedByTheConcurrentStreams() throws {
        let defaults = try GatewayConfiguration(yaml: Self.document()).limits.http2
        #expect(defaults.maxConnectionBuffer == 16 << 20)
        #expect(defaults.streamWindow == (16 << 20) / 100 / 2)
        #expect(defaults.streamOutboundHighWatermark(relay: 256 * 1024) == (16 << 20) / 100 - defaults.streamWindow)
        #expect(defaults.hardHeaderListBytes == 64 * 1024)
        for (streams, buffer) in [(1, "32KiB"), (8, "1MiB"), (100, "16MiB"), (10_000, "400MiB"), (3, "100000")] {
            let yaml = Self.document(extra: "limits: {http2: {max_concurrent_streams: \(streams), max_connection_buffer: \(buffer)}}")
            let limits = try GatewayConfiguration(yaml: yaml).limits.http2
            #expect(limits.streamWindow * streams <= limits.maxConnectionBuffer / 2, "\(streams) × \(buffer)")
            #expect(limits.streamWindow >= 16 * 1024 && limits.streamWindow <= 1 << 20)
            #expect(limits.streamWindow * streams + limits.streamOutboundHighWatermark(relay: .max) * streams <= limits.maxConnectionBuffer)
        }
        // A small relay watermark stays the stream's outbound watermark.
        #expect(defaults.streamOutboundHighWatermark(relay: 4096) == 4096)
    }

    /// A budget that leaves a stream less than a 16 KiB window and as much queued is refused, naming both
    /// keys and the smallest budget that would do.
    @Test func aConnectionBufferTooSmallForItsStreamsIsRefused() {
        let yaml = Self.document(extra: "limits: {http2: {max_concurrent_streams: 100, max_connection_buffer: 1MiB}}")
        #expect {
            try GatewayConfiguration(yaml: yaml)
        } throws: { error in
            let text = "\(error)"
            return text.contains("limits.http2.max_connection_buffer") && text.contains("max_concurrent_streams (100)")
                && text.contains("at least 3276800 bytes")
        }
        #expect(throws: ConfigurationError.self) {
            try GatewayConfiguration(yaml: Self.document(extra: "limits: {http2: {max_header_list: 100}}"))
        }
    }
}
