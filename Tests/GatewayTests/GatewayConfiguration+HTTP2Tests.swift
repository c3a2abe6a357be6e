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
}
