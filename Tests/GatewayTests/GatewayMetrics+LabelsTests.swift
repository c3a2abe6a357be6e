import Frames
import MetricsTestKit
import Testing

@testable import Gateway

/// Issue #11 §4: label values a peer chooses are bounded, so a peer cannot mint time series.
@Suite struct GatewayMetricsLabelsTests {
    @Test func closeCodesFromPeersAreBoundedLabels() {
        let metrics = TestMetrics()
        let gateway = GatewayMetrics(factory: metrics)
        for code: UInt16 in [1000, 1001, 1015, 3000, 3999, 4000, 4321, 4999, 1016, 2999, 5000, 65535, 0] {
            gateway.close(side: .client, code: CloseCode(code), byPeer: true)
        }
        gateway.close(side: .client, code: nil, byPeer: true)
        let expected: [(String, Int64)] = [
            ("1000", 1), ("1001", 1), ("1015", 1), ("3xxx", 2), ("4xxx", 3), ("other", 5), ("1005", 1),
        ]
        for (label, count) in expected {
            #expect(metrics.total("wsgate_close_codes_total", [("code", label)]) == count, "\(label)")
        }
        #expect(metrics.total("wsgate_close_codes_total", [("code", "4321")]) == 0)
        // Every value the label can take: the 16 RFC codes, 3xxx, 4xxx, other.
        let labels = Set((0...UInt16.max).map { CloseCodeLabel(CloseCode($0)).value })
        #expect(labels.count == 16 + 3)
    }

    @Test func upstreamStatusesAreLabelledByClassAndTheGatewaysOwnByNumber() {
        let metrics = TestMetrics()
        let gateway = GatewayMetrics(factory: metrics)
        for status in [403, 418, 499, 503, 302, 999, 42] {
            gateway.upgradeRefused(
                listener: "l",
                HandshakeRejection(response: .rejection(status, "upstream said no"), reason: HandshakeRejection.upstreamRefusedReason)
            )
        }
        gateway.upgradeRefused(listener: "l", HandshakeRejection(426, "not an upgrade", reason: "not-an-upgrade"))
        let refused = "wsgate_upgrades_refused_total"
        #expect(metrics.total(refused, [("reason", "upstream-refused"), ("status", "4xx")]) == 3)
        #expect(metrics.total(refused, [("reason", "upstream-refused"), ("status", "5xx")]) == 1)
        #expect(metrics.total(refused, [("reason", "upstream-refused"), ("status", "3xx")]) == 1)
        #expect(metrics.total(refused, [("reason", "upstream-refused"), ("status", "other")]) == 2)
        #expect(metrics.total(refused, [("reason", "upstream-refused"), ("status", "418")]) == 0)
        #expect(metrics.total(refused, [("reason", "not-an-upgrade"), ("status", "426")]) == 1)
    }
}
