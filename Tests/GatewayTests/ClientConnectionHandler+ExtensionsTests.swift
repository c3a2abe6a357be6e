import Frames
import MetricsTestKit
import NIOHTTP1
import Testing

@testable import Gateway

/// The gateway's extension negotiation (``ClientConnectionHandler/negotiateExtensions(_:upstreamDeflate:metrics:)``
/// and ``ClientConnectionHandler/upstreamDeflateOffer(_:)``, DESIGN §4): what each leg gets under each
/// policy, and the one decision counted per side.
@Suite struct ClientConnectionHandlerExtensionsTests {
    typealias Mode = GatewayConfiguration.ExtensionMode

    /// A validated request on a route with `client`/`upstream` modes and the client's `extensions` header.
    static func request(client: Mode, upstream: Mode, extensions: String?) throws -> ClientUpgradeRequest {
        var route = GatewayConfiguration.Route(hosts: [], pathPrefix: "/", upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 1)])
        route.extensions.permessageDeflate = .init(client: client, upstream: upstream)
        var headers: HTTPHeaders = [
            "Host": "gw.example", "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
        ]
        if let extensions { headers.add(name: "Sec-WebSocket-Extensions", value: extensions) }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: headers)
        return try ClientUpgradeRequest.validate(head, limits: .init(), routes: RouteTable([route])).get()
    }

    /// The decisions counted, as "side=decision" (`wsgate_extension_decisions_total`).
    static func decisions(_ metrics: TestMetrics) -> Set<String> {
        Set(
            metrics.counters(label: "wsgate_extension_decisions_total").map { counter in
                let side = counter.dimensions.first { $0.0 == "side" }?.1 ?? "?"
                let decision = counter.dimensions.first { $0.0 == "decision" }?.1 ?? "?"
                return "\(side)=\(decision)×\(counter.totalValue)"
            }
        )
    }

    @Test func theUpstreamIsOfferedDeflateOnlyWhenItsLegNegotiates() throws {
        let negotiate = try Self.request(client: .strip, upstream: .negotiate, extensions: nil)
        #expect(ClientConnectionHandler.upstreamDeflateOffer(negotiate) == PerMessageDeflate.clientOffer())
        let strip = try Self.request(client: .negotiate, upstream: .strip, extensions: "permessage-deflate")
        #expect(ClientConnectionHandler.upstreamDeflateOffer(strip) == nil, "a client's offer must never be forwarded")
    }

    @Test func stripOnBothLegsAnswersNothingAndCountsWhatWasStripped() throws {
        let metrics = TestMetrics()
        let request = try Self.request(client: .strip, upstream: .strip, extensions: "permessage-deflate, x-custom")
        let outcome = ClientConnectionHandler.negotiateExtensions(request, upstreamDeflate: nil, metrics: GatewayMetrics(factory: metrics))
        #expect(outcome.clientAnswer == nil && outcome.upstreamAgreement == nil)
        #expect(outcome.compression.client == nil && outcome.compression.upstream == nil)
        #expect(Self.decisions(metrics) == ["upstream=stripped×1", "client=stripped×1"])
        #expect(metrics.counters(label: "wsgate_extensions_dropped_total").map(\.totalValue) == [1], "x-custom not counted as dropped")
    }

    @Test func theClientLegIsAnsweredByTheGatewayFromTheFirstAcceptableOffer() throws {
        let metrics = TestMetrics()
        let request = try Self.request(
            client: .negotiate,
            upstream: .strip,
            extensions: "permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits"
        )
        let outcome = ClientConnectionHandler.negotiateExtensions(request, upstreamDeflate: nil, metrics: GatewayMetrics(factory: metrics))
        let answer = try #require(outcome.clientAnswer, "no answer to an acceptable offer")
        #expect(try ExtensionHeader.parse([answer]).first?.name == "permessage-deflate")
        #expect(outcome.compression.client != nil && outcome.compression.upstream == nil)
        #expect(Self.decisions(metrics) == ["upstream=stripped×1", "client=negotiated×1"])
    }

    /// Catalog H-14: invalid permessage-deflate offers are declined (101 without them), not refused.
    @Test func aClientWithoutAnAcceptableOfferIsDeclinedOrNotOffered() throws {
        for (extensions, decision) in [
            ("permessage-deflate; server_max_window_bits=7", "declined"), (nil, "not-offered"), ("x-custom", "not-offered"),
        ] {
            let metrics = TestMetrics()
            let request = try Self.request(client: .negotiate, upstream: .strip, extensions: extensions)
            let outcome = ClientConnectionHandler.negotiateExtensions(request, upstreamDeflate: nil, metrics: GatewayMetrics(factory: metrics))
            #expect(outcome.clientAnswer == nil && outcome.compression.client == nil, "\(extensions ?? "none")")
            #expect(Self.decisions(metrics) == ["upstream=stripped×1", "client=\(decision)×1"], "\(extensions ?? "none")")
        }
    }

    @Test func theUpstreamsAgreementIsRecordedAndMatchedOnTheClientLegWhenTheOfferAllows() throws {
        let metrics = TestMetrics()
        let agreed = PerMessageDeflateParameters(serverNoContextTakeover: true, clientMaxWindowBits: 12)
        let request = try Self.request(client: .negotiate, upstream: .negotiate, extensions: "permessage-deflate; client_max_window_bits")
        let outcome = ClientConnectionHandler.negotiateExtensions(request, upstreamDeflate: agreed, metrics: GatewayMetrics(factory: metrics))
        #expect(outcome.compression.upstream == agreed)
        #expect(outcome.upstreamAgreement == agreed.description)
        // The client's answer takes the upstream's parameters so compressed payloads pass verbatim.
        #expect(outcome.compression.client == agreed)
        #expect(Self.decisions(metrics) == ["upstream=negotiated×1", "client=negotiated×1"])
    }

    @Test func anUpstreamThatDeclinedIsCountedAsDeclined() throws {
        let metrics = TestMetrics()
        let request = try Self.request(client: .strip, upstream: .negotiate, extensions: nil)
        let outcome = ClientConnectionHandler.negotiateExtensions(request, upstreamDeflate: nil, metrics: GatewayMetrics(factory: metrics))
        #expect(outcome.upstreamAgreement == nil && outcome.compression.upstream == nil)
        #expect(Self.decisions(metrics) == ["upstream=declined×1", "client=not-offered×1"])
    }
}
