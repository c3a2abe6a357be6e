import MetricsTestKit
import TLSShim
import TestPeers
import Testing

@testable import Gateway

/// The limits HTTP/2 adds, against Python `h2` (issue #16): concurrent streams, the header list answered
/// per stream, the connection's memory budget, and what is counted once per connection.
extension HTTP2InteropTests {
    /// `limits.http2.max_concurrent_streams` alone: a client that opens more streams at once than the
    /// setting it was sent allows gets GOAWAY `PROTOCOL_ERROR` (1) for the connection. RFC 9113 §5.1.2 asks for a
    /// stream error (`PROTOCOL_ERROR` or `REFUSED_STREAM`); swift-nio-http2 makes it a connection error and
    /// enforces exactly the value it advertises (docs/DESIGN-NOTES.md, HTTP/2 connection limits).
    @Test func streamsOverTheConcurrentLimitEndTheConnectionWithGoaway() async throws {
        guard try await PythonPeer.require("h2"), try await PythonPeer.require("wsproto") else { return }
        try await Self.withH2Gateway(configure: { $0.limits.http2.maxConcurrentStreams = 3 }) { port, ca in
            let output = try await Self.run("over-limit", port, ca, "5")
            // Measured: swift-nio-http2 treats the excess stream as a connection error (GOAWAY PROTOCOL_ERROR),
            // not RST_STREAM REFUSED_STREAM; asserted as it is until the gateway refuses per stream itself.
            #expect(output.contains("GOAWAY 1"), "\(output)")
        }
    }

    /// RFC 9113 §6.5.2 (the header-list setting is advisory) and RFC 6585 §5: a request over
    /// `max_header_list` but within the HPACK decoder's hard limit (4×) is answered 431 on its stream and
    /// the connection serves the next stream; past the hard limit the block cannot be decoded and the
    /// connection ends (GOAWAY, RFC 9113 §4.3).
    @Test func oversizedHeadersAre431OnTheirStreamAndPastTheHardLimitEndTheConnection() async throws {
        guard try await PythonPeer.require("h2") else { return }
        try await Self.withH2Gateway(configure: { $0.limits.http2.maxHeaderListBytes = 4096 }) { port, ca in
            let output = try await Self.run("big-then-ok", port, ca, "8000")
            #expect(output.contains("STATUS 431") && output.contains("NEXT 200"), "\(output)")
            #expect(!output.contains("GOAWAY"), "\(output)")
            let huge = try await Self.run("big-headers", port, ca, "20000")
            #expect(huge.contains("GOAWAY") || huge.contains("CLOSED"), "\(huge)")
            #expect(!huge.contains("STATUS"), "\(huge)")
        }
    }

    /// `limits.http2.max_connection_buffer`: a client that keeps sending on every stream while it takes
    /// none of the echoes stalls (its windows stop opening), and past the budget's quarter margin the
    /// stream holding the most is reset with ENHANCE_YOUR_CALM; the connection gets no GOAWAY.
    @Test func aClientThatSendsWithoutReadingIsHeldThenItsFullestStreamReset() async throws {
        guard try await PythonPeer.require("h2"), try await PythonPeer.require("wsproto") else { return }
        try await Self.withH2Gateway(configure: {
            $0.limits.http2.maxConcurrentStreams = 4
            $0.limits.http2.maxConnectionBuffer = 256 * 1024
        }) { port, ca in
            let output = try await Self.run("flood", port, ca, "4")
            // Measured with this small budget (64 KiB per stream): the relays' writes past the stream
            // watermarks reach a quarter past the budget, so the fullest stream is reset ENHANCE_YOUR_CALM (11);
            // the connection is not sent GOAWAY.
            #expect(output.contains("STALLED") && output.contains(" 11"), "\(output)")
            #expect(!output.contains("GOAWAY"), "\(output)")
        }
    }

    /// The client certificate belongs to the TLS connection: `wsgate_client_certificates_total` counts it
    /// once however many streams the connection carries.
    @Test func theClientCertificateIsCountedOncePerConnection() async throws {
        guard try await PythonPeer.require("h2"), try await PythonPeer.require("wsproto") else { return }
        let metrics = TestMetrics()
        try await GatewayTLSTests.withFile(GatewayTLSTests.ca.certificatePEM) { clientCA in
            try await Self.withH2Gateway(
                metrics: metrics,
                configure: {
                    $0.listeners[0].tls?.clientAuthentication = TLSClientAuthentication(trustRoots: .file(clientCA), mode: .optional)
                }
            ) { port, ca in
                let output = try await Self.run("echo", port, ca, "3")
                #expect(output.contains("OK 3"), "\(output)")
                try await Task.sleep(for: .milliseconds(300))
                #expect(metrics.total("wsgate_client_certificates_total", [("outcome", "not_presented")]) == 1)
                #expect(metrics.total("wsgate_connections_by_protocol_total", [("protocol", "h2")]) == 3)
            }
        }
    }
}
