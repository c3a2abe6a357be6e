import Foundation
import MetricsTestKit
import TLSShim
import Testing

@testable import Gateway

/// TLS abort storms (issue #17 §2, RELIABILITY T-09): on a `wss` listener, many concurrent clients
/// that send half a ClientHello and reset, close or stall, send garbage, reset in the middle of the
/// handshake or right after it. Each failure is counted by its class and as close code 1015 (metrics
/// only, never on the wire); sockets and OpenSSL objects return to (at most) their baseline: sockets an
/// earlier suite left closing may close meanwhile.
///
/// The clients are `scripts/test-peers/storm.py`; `WSGATE_FAULT_SCALE=N` multiplies the counts (the
/// catalog's 20,000 per kind is `WSGATE_FAULT_SCALE=400`).
@Suite(.serialized, .timeLimit(.minutes(2))) struct TLSAbortStormTests {
    static let scale = ProcessResources.faultScale
    static let certificate = try! TLSCertificateGenerator.selfSigned(TLSCertificateRequest(commonName: "localhost"))

    /// One storm of `kind` and the TLS failure classes it must add (class → count).
    struct Case: Sendable, CustomTestStringConvertible {
        var kind: String
        var classes: [String: Int]
        var testDescription: String { self.kind }
    }

    static let perKind = 50

    static let cases: [Case] = [
        Case(kind: "half-hello-rst", classes: ["reset_during_handshake": perKind]),
        Case(kind: "rst-mid-handshake", classes: ["reset_during_handshake": perKind]),
        Case(kind: "half-hello-fin", classes: ["eof_during_handshake": perKind]),
        Case(kind: "half-hello-hold", classes: ["handshake_timeout": perKind]),
        Case(kind: "garbage", classes: ["handshake_failed": perKind]),
        // Not a TLS failure: the handshake completed; the connection ends before its request.
        Case(kind: "rst-after-handshake", classes: [:]),
    ]

    /// Catalog T-09: each kind of handshake abort, concurrently, is counted by its class (timeout, reset, EOF, protocol error) and as 1015; sockets and OpenSSL objects back to baseline.
    @Test(arguments: Self.cases) func aStormOfAbortsIsCountedByClass(_ storm: Case) async throws {
        guard try await PythonPeer.require("ssl") else { return }
        let count = Self.perKind * Self.scale
        let metrics = TestMetrics()
        try await withGatewayAndDemo(
            metrics: metrics,
            configure: {
                $0.listeners[0].tls = TLSServerConfiguration(defaultIdentity: Self.certificate.identity)
                // Long enough for 50 concurrent handshakes of a debug build on a loaded machine; the
                // stalled kind waits it out once.
                $0.timeouts.tlsHandshake = .seconds(3)
            }
        ) { port in
            let sockets = ProcessResources.openSockets()
            let tlsObjects = TLSShim.liveConnections
            let outcome = try await Storm.run("tls-abort", port: port, ["--kind", storm.kind, "--count", "\(count)"])
            #expect(outcome == [storm.kind: count])
            let expected = storm.classes.mapValues { $0 * Self.scale }
            func classes() -> [String: Int] {
                var found: [String: Int] = [:]
                for counter in metrics.counters(label: "wsgate_tls_handshake_failures_total") where counter.totalValue > 0 {
                    let name = counter.dimensions.first { $0.0 == "class" }?.1 ?? "?"
                    found[name, default: 0] += Int(counter.totalValue)
                }
                return found
            }
            let settled = await ProcessResources.settle(within: .seconds(10)) {
                classes() == expected && ProcessResources.openSockets() <= sockets && TLSShim.liveConnections <= tlsObjects
            }
            #expect(
                settled,
                "classes \(classes()), sockets \(ProcessResources.openSockets()) (baseline \(sockets)), TLS objects \(TLSShim.liveConnections) (baseline \(tlsObjects))"
            )
            #expect(classes() == expected)
            #expect(metrics.total("wsgate_close_codes_total", [("side", "client"), ("code", "1015")]) == expected.values.reduce(0, +))
            #expect(ProcessResources.openSockets() <= sockets)
            #expect(TLSShim.liveConnections <= tlsObjects)
        }
    }
}
