import Frames
import MetricsTestKit
import Testing

@testable import Gateway

/// `limits.compression_memory` (issue #10 item 7): the budget, the per-leg formula, and a gateway whose
/// budget is spent opening connections plain and counting the declines.
@Suite struct CompressionMemoryBudgetTests {
    @Test func reservationsFitTheBudgetAndAreGivenBackOnce() {
        let budget = CompressionMemoryBudget(limit: 1000)
        let first = budget.reserve(600)
        #expect(first != nil && budget.reserved == 600)
        #expect(budget.reserve(401) == nil && budget.reserved == 600)
        #expect(!budget.fits(401) && budget.fits(400))
        // An agreement already made is reserved past the budget.
        var forced = budget.reserve(500, force: true)
        #expect(forced != nil && budget.reserved == 1100)
        first?.release()
        first?.release()
        #expect(budget.reserved == 500)
        // Freed without release(): given back too.
        forced = nil
        #expect(budget.reserved == 0)
    }

    /// Catalog R-14: deflate memory per connection is zlib's formula for the negotiated window bits (the reported KiB per leg).
    @Test func theFormulaIsZlibs() {
        // zconf.h: inflate 2^windowBits + ~7 KiB; deflate 2^(windowBits+2) + 2^(memLevel+9) + ~6 KiB.
        #expect(CompressionMemoryBudget.inflaterBytes(windowBits: 15) == 32 * 1024 + 7 * 1024)
        #expect(CompressionMemoryBudget.inflaterBytes(windowBits: 8) == 512 + 7 * 1024)
        #expect(CompressionMemoryBudget.deflaterBytes(windowBits: 15, memoryLevel: 8) == 128 * 1024 + 128 * 1024 + 6 * 1024)
        #expect(CompressionMemoryBudget.deflaterBytes(windowBits: 8, memoryLevel: 8) == 0)
        let compression = RelayCompression()
        #expect(compression.clientLegMemory(PerMessageDeflateParameters()) == 301 * 1024)
        var small = RelayCompression()
        small.policy.maxWindowBits = 12
        small.policy.memoryLevel = 5
        #expect(small.clientLegMemory(PerMessageDeflateParameters()) == 32 * 1024 + 7 * 1024 + 16 * 1024 + 16 * 1024 + 6 * 1024)
        #expect(compression.upstreamLegMemory(nil) == 301 * 1024)
        #expect(CompressionMemoryBudget.defaultLimit > 0)
    }

    // MARK: The negotiation hook

    typealias Extensions = ClientConnectionHandlerExtensionsTests

    /// Catalog R-14: the documented cap: past the compression memory budget, new connections are not offered deflate.
    @Test func aSpentBudgetDeclinesTheClientLegAndDoesNotOfferTheUpstream() throws {
        let metrics = TestMetrics()
        let budget = CompressionMemoryBudget(limit: 100 * 1024)
        let request = try Extensions.request(client: .negotiate, upstream: .negotiate, extensions: "permessage-deflate")
        #expect(ClientConnectionHandler.upstreamDeflateOffer(request, budget: budget, metrics: GatewayMetrics(factory: metrics)) == nil)
        let outcome = ClientConnectionHandler.negotiateExtensions(
            request,
            upstreamDeflate: nil,
            metrics: GatewayMetrics(factory: metrics),
            budget: budget
        )
        #expect(outcome.clientAnswer == nil && outcome.compression.client == nil && outcome.compression.reservation == nil)
        #expect(Extensions.decisions(metrics) == ["upstream=declined×1", "client=declined×1"])
        #expect(metrics.counterTotal(label: "wsgate_compression_memory_declines_total", dimensions: [("side", "client")]) == 1)
        #expect(metrics.counterTotal(label: "wsgate_compression_memory_declines_total", dimensions: [("side", "upstream")]) == 1)
        #expect(budget.reserved == 0)
    }

    @Test func aNegotiatedConnectionHoldsItsShareUntilItIsReleased() throws {
        let metrics = TestMetrics()
        let budget = CompressionMemoryBudget(limit: 1 << 20)
        let request = try Extensions.request(client: .negotiate, upstream: .negotiate, extensions: "permessage-deflate")
        #expect(ClientConnectionHandler.upstreamDeflateOffer(request, budget: budget) != nil)
        var outcome: ClientConnectionHandler.ExtensionOutcome? = ClientConnectionHandler.negotiateExtensions(
            request,
            upstreamDeflate: PerMessageDeflateParameters(),
            metrics: GatewayMetrics(factory: metrics),
            budget: budget
        )
        #expect(outcome?.compression.client != nil && outcome?.compression.upstream != nil)
        #expect(budget.reserved == 2 * 301 * 1024)
        // A second connection fits the upstream leg only (agreed already), so its client leg is declined.
        let second = ClientConnectionHandler.negotiateExtensions(
            request,
            upstreamDeflate: PerMessageDeflateParameters(),
            metrics: GatewayMetrics(factory: metrics),
            budget: budget
        )
        #expect(second.compression.client == nil && second.compression.upstream != nil)
        #expect(budget.reserved == 3 * 301 * 1024, "the upstream agreement is reserved past the budget")
        outcome = nil
        #expect(budget.reserved == 301 * 1024)
        _ = second
    }

    @Test func theKeyIsASizeAndAbsentMeansTheMachineDefault() throws {
        let base = """
            listeners: [{address: "127.0.0.1:8080"}]
            routes: [{upstreams: ["ws://127.0.0.1:9000"]}]

            """
        #expect(try GatewayConfiguration(yaml: base + "limits: {compression_memory: 64MiB}").limits.compressionMemory == 64 << 20)
        #expect(try GatewayConfiguration(yaml: base + "limits: {compression_memory: ~}").limits.compressionMemory == nil)
        #expect(try GatewayConfiguration(yaml: base).limits.compressionMemory == nil)
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration(yaml: base + "limits: {compression_memory: 0}") }
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration(yaml: base + "limits: {compression_memory: lots}") }
    }

    /// Catalog R-14: over sockets, connections past the budget open without deflate and the declines are counted.
    @Test func aSpentBudgetOpensConnectionsPlainAndCountsTheDeclines() async throws {
        let metrics = TestMetrics()
        try await withGatewayAndDemo(
            metrics: metrics,
            configure: {
                $0.limits.compressionMemory = 400 * 1024
                $0.routes[0].extensions.permessageDeflate = .init(client: .negotiate, upstream: .strip)
            }
        ) { port in
            let offer = [("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")]
            // The first connection takes 301 KiB of the 400: compressed.
            let first = try await TestWebSocketClient.connect(port: port, path: "/echo", headers: offer)
            #expect(first.responseHeaders.contains { $0.0 == "Sec-WebSocket-Extensions" })
            // The second does not fit: it opens, plain, and works.
            let second = try await TestWebSocketClient.connect(port: port, path: "/echo", headers: offer)
            #expect(!second.responseHeaders.contains { $0.0.lowercased() == "sec-websocket-extensions" })
            try await second.send(text: "plain")
            #expect(try await second.receiveMessage() == .text("plain"))
            try await second.close(code: .normalClosure)
            _ = try await second.receiveMessage()
            // When the first ends its share is given back: a third connection is compressed again.
            try await first.close(code: .normalClosure)
            _ = try await first.receiveMessage()
            var compressed = false
            for _ in 0..<50 where !compressed {
                let third = try await TestWebSocketClient.connect(port: port, path: "/echo", headers: offer)
                compressed = third.responseHeaders.contains { $0.0 == "Sec-WebSocket-Extensions" }
                try await third.close(code: .normalClosure)
                _ = try await third.receiveMessage()
                if !compressed { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(compressed)
        }
        let declines = metrics.counters(label: "wsgate_compression_memory_declines_total")
            .filter { $0.dimensions.contains { $0 == ("side", "client") } }
            .reduce(0) { $0 + $1.totalValue }
        #expect(declines >= 1)
    }
}
