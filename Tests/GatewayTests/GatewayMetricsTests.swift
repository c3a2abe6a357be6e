import CoreMetrics
import Foundation
import Frames
import MetricsTestKit
import NIOConcurrencyHelpers
import NIOCore
import TLSShim
import Testing

@testable import Gateway

/// The metrics are declared once (`GatewayMetrics`): the catalog is derived from the declarations,
/// every recorded series carries exactly its declaration's labels, and each series' swift-metrics
/// object is made once, not per event.
@Suite struct GatewayMetricsTests {
    /// Records every event `GatewayMetrics` knows, once, with typed values.
    static func recordEveryEvent(_ metrics: GatewayMetrics) {
        let rejection = HandshakeRejection(426, "upgrade required", reason: "not-an-upgrade")
        metrics.connectionAccepted(listener: "public")
        metrics.sessionOpened(listener: "public", route: "/chat")
        metrics.sessionEnded(listener: "public", route: "/chat", clientToUpstream: (1, 5), upstreamToClient: (2, 7))
        metrics.upgradeRefused(listener: "public", rejection)
        metrics.close(side: .client, code: .normalClosure, byPeer: true)
        metrics.tlsHandshakeFailed(leg: .upstream, TLSError(code: .handshakeTimeout, reason: "no answer"))
        metrics.protocolViolation(side: .client, FramesError(.reservedBitSet))
        metrics.upstreamConnected(route: "/chat", member: "ws://127.0.0.1:9000", seconds: 0.002)
        metrics.upstreamConnectFailed(route: "/chat", member: "ws://127.0.0.1:9000", timedOut: true)
        metrics.reloaded(.applied)
        metrics.drainingChanged(true)
        metrics.drained(.forced, count: 2)
        metrics.originDecided(route: "/chat", .refuse, reason: .mixedContent)
        metrics.rateLimited(route: "/chat", side: .upstream, limit: .controlFrames, action: .close)
        metrics.connectionLimitRefused(listener: "public", .ipHandshakeRate)
        metrics.keepAliveTimedOut(route: "/chat", side: .client)
        metrics.frameDeadlineClosed(route: "/chat", side: .upstream)
        metrics.maxLifetimeClosed(route: "/chat")
        metrics.proxyProtocolRefused(listener: "public", .untrustedPeer)
        metrics.acceptPaused(listener: "public", .emfile)
        metrics.extensionDecided(route: "/chat", side: .client, extension: "permessage-deflate", .notOffered)
        metrics.droppedExtensions(route: "/chat", side: .client, count: 1)
        metrics.uncompressedMessages(route: "/chat", side: .upstream, count: 2)
        metrics.compressionMemoryDeclined(route: "/chat", side: .client)
        metrics.clientCertificate(listener: "public", .verified)
        metrics.sessionOpened(listener: "public", protocol: "h2")
        metrics.authDecided(route: "/chat", method: "forward", outcome: "allow")
    }

    /// Every series' label names, by metric name, whatever its type.
    static func emittedLabels(_ metrics: TestMetrics) -> [String: Set<[String]>] {
        var emitted: [String: Set<[String]>] = [:]
        let series =
            metrics.counters.map { ($0.label, $0.dimensions) } + metrics.meters.map { ($0.label, $0.dimensions) }
            + metrics.recorders.map { ($0.label, $0.dimensions) }
        for (label, dimensions) in series {
            emitted[label, default: []].insert(dimensions.map(\.0))
        }
        return emitted
    }

    @Test func everyRecordedSeriesCarriesExactlyTheLabelsItsCatalogEntryDocuments() throws {
        let test = TestMetrics()
        Self.recordEveryEvent(GatewayMetrics(factory: test))
        let emitted = Self.emittedLabels(test)
        #expect(Set(emitted.keys) == Set(GatewayMetrics.catalog.map(\.name)), "every declared metric is recorded by one event")
        for entry in GatewayMetrics.catalog {
            #expect(emitted[entry.name] == [entry.labels], "\(entry.name)")
        }
        #expect(
            try test.expectRecorder("wsgate_upstream_connect_seconds", [("route", "/chat"), ("member", "ws://127.0.0.1:9000")]).values == [0.002]
        )
        #expect(try test.expectCounter("wsgate_tls_handshake_failures_total", [("leg", "upstream"), ("class", "handshake_timeout")]).totalValue == 1)
        #expect(try test.expectCounter("wsgate_protocol_violations_total", [("side", "client"), ("rule", "reserved_bit_set")]).totalValue == 1)
    }

    /// The three metrics whose catalog entry lacked the `route` label the relay policy has always
    /// recorded (issue #12 §3): the rate-limit decisions, keep-alive timeouts and maximum-lifetime closes.
    @Test func theRelayPolicyCountersCarryTheirRouteAsTheCatalogSays() throws {
        let test = TestMetrics()
        var policy = RelayPolicy()
        policy.metrics = GatewayMetrics(factory: test)
        policy.route = "chat.example.com/chat"
        let state = RelayPolicyState(policy)
        state.countRateLimit(.client, .messages, .throttle)
        state.countKeepAliveTimeout(.upstream)
        state.countMaxLifetimeClose()
        let route = ("route", "chat.example.com/chat")
        #expect(
            try test.expectCounter("wsgate_rate_limit_decisions_total", [route, ("side", "client"), ("limit", "messages"), ("action", "throttle")])
                .totalValue == 1
        )
        #expect(try test.expectCounter("wsgate_keepalive_timeouts_total", [route, ("side", "upstream")]).totalValue == 1)
        #expect(try test.expectCounter("wsgate_max_lifetime_closes_total", [route]).totalValue == 1)
        let catalog = Dictionary(uniqueKeysWithValues: GatewayMetrics.catalog.map { ($0.name, $0.labels) })
        #expect(catalog["wsgate_rate_limit_decisions_total"] == ["route", "side", "limit", "action"])
        #expect(catalog["wsgate_keepalive_timeouts_total"] == ["route", "side"])
        #expect(catalog["wsgate_max_lifetime_closes_total"] == ["route"])
    }

    @Test func theCatalogIsEveryDeclarationOnceInDeclarationOrder() {
        let names = GatewayMetrics.catalog.map(\.name)
        #expect(names.count == 29)
        #expect(Set(names).count == names.count)
        #expect(names.first == "wsgate_connections_accepted_total")
        #expect(names.last == "wsgate_auth_decisions_total")
        #expect(names.allSatisfy { $0.hasPrefix("wsgate_") })
        let kinds = Dictionary(uniqueKeysWithValues: GatewayMetrics.catalog.map { ($0.name, $0.kind) })
        #expect(kinds["wsgate_connections_open"] == .gauge)
        #expect(kinds["wsgate_draining"] == .gauge)
        #expect(kinds["wsgate_upstream_connect_seconds"] == .histogram)
        #expect(GatewayMetrics.catalog.allSatisfy { !$0.help.isEmpty })
    }

    /// Declared once: a metric name appears in the sources only in its declaration.
    @Test func noSourceOutsideTheDeclarationsSpellsAMetricName() throws {
        let gateway = OperationsDocumentationTests.root.appendingPathComponent("Sources/Gateway")
        var spelled: [String] = []
        let files = try #require(FileManager.default.enumerator(at: gateway, includingPropertiesForKeys: nil))
        for case let file as URL in files where file.pathExtension == "swift" && file.lastPathComponent != "GatewayMetrics.swift" {
            if try String(contentsOf: file, encoding: .utf8).contains("\"wsgate_") { spelled.append(file.lastPathComponent) }
        }
        #expect(spelled.isEmpty, "metric names outside GatewayMetrics.swift: \(spelled)")
    }

    @Test func aSeriesObjectIsMadeOnceAndReusedForEveryLaterEvent() throws {
        let factory = CountingFactory()
        let metrics = GatewayMetrics(factory: factory)
        for _ in 0..<5 {
            metrics.close(side: .client, code: .normalClosure, byPeer: true)
            metrics.sessionOpened(listener: "public", route: "/")
        }
        metrics.close(side: .upstream, code: .normalClosure, byPeer: true)
        // Two close-code series and one connections series: three counters, one meter.
        #expect(factory.made.withLockedValue { $0 } == ["counter": 3, "meter": 1])
        #expect(try factory.test.expectCounter("wsgate_close_codes_total", [("side", "client"), ("code", "1000"), ("by", "peer")]).totalValue == 5)
        #expect(try factory.test.expectMeter("wsgate_connections_open", [("listener", "public"), ("route", "/")]).lastValue == 5)
    }

    /// The label values a peer chooses go through one label type each: the seam where they are bounded.
    @Test func peerChosenValuesBecomeLabelsInOnePlace() {
        #expect(CloseCodeLabel(nil).value == "1005")
        #expect(CloseCodeLabel(.normalClosure).value == "1000")
        #expect(CloseCodeLabel(CloseCode(rawValue: 4321)).value == "4xxx")  // bounded (issue #11 §4)
        let refused = HandshakeRejection(404, "no route", reason: "no-route")
        #expect(UpgradeRefusalLabels(listener: "public", status: UpgradeStatusLabel(refused)).values == ["public", "no-route", "404"])
    }
}

/// A `TestMetrics` that counts how many objects it was asked to make, by kind.
final class CountingFactory: MetricsFactory {
    let test = TestMetrics()
    let made = NIOLockedValueBox<[String: Int]>([:])

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        self.made.withLockedValue { $0["counter", default: 0] += 1 }
        return self.test.makeCounter(label: label, dimensions: dimensions)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        self.made.withLockedValue { $0["meter", default: 0] += 1 }
        return self.test.makeMeter(label: label, dimensions: dimensions)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        self.made.withLockedValue { $0["recorder", default: 0] += 1 }
        return self.test.makeRecorder(label: label, dimensions: dimensions, aggregate: aggregate)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        self.test.makeTimer(label: label, dimensions: dimensions)
    }

    func destroyCounter(_ handler: any CounterHandler) { self.test.destroyCounter(handler) }
    func destroyMeter(_ handler: any MeterHandler) { self.test.destroyMeter(handler) }
    func destroyRecorder(_ handler: any RecorderHandler) { self.test.destroyRecorder(handler) }
    func destroyTimer(_ handler: any TimerHandler) { self.test.destroyTimer(handler) }
}
