import Foundation
import Frames
import MetricsTestKit
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@testable import Gateway

/// SIGTERM's drain over real sockets, end to end (DESIGN §6): Close 1001 on both legs, the listener
/// stops accepting, the deadline bounds it all.
@Suite(.timeLimit(.minutes(2))) struct DrainTests {
    /// Catalog G-01: the drain stops accepting at once, both legs get Close 1001, and the drain ends when the close handshakes are done (real sockets).
    @Test func bothLegsGet1001AndTheDrainEndsWhenTheHandshakesAreDone() async throws {
        let metrics = TestMetrics()
        try await withDemo { demo in
            try await withGatewayServer(upstreamPort: demo.port, metrics: metrics) { server, port in
                let client = try await TestWebSocketClient.connect(port: port, path: "/echo")
                try await client.send(text: "before the drain")
                #expect(try await client.receiveMessage() == .text("before the drain"))
                let drain = Task { await server.drain(timeout: .seconds(10)) }
                #expect(try await client.receiveMessage() == .close(.goingAway, RelaySession.drainReason))
                #expect(server.isDraining)
                // Stopped accepting: a new connection is refused.
                await #expect(throws: (any Error).self) {
                    // (A bare connect: the test client's handler would leak its promise on a refused connect.)
                    try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get().close()
                }
                try await client.close(code: .goingAway)
                try await client.waitForTCPClose()
                #expect(await drain.value == .init(closed: 1, forced: 0))
                #expect(server.openConnections == 0)
                // The demo upstream answered the gateway's 1001 with its own Close.
                #expect(metrics.total("wsgate_close_codes_total", [("side", "upstream"), ("code", "1001"), ("by", "gateway")]) == 1)
                #expect(metrics.total("wsgate_close_codes_total", [("side", "client"), ("code", "1001"), ("by", "gateway")]) == 1)
                #expect(metrics.total("wsgate_close_codes_total", [("side", "client"), ("code", "1001"), ("by", "peer")]) == 1)
                #expect(metrics.total("wsgate_drained_connections_total", [("result", "closed")]) == 1)
            }
        }
    }

    // The per-leg rules (a half-relayed frame is finished before its leg's Close, a leg stuck mid-frame
    // never delays the other leg's Close) are tested under virtual time in RelaySession+OperationsTests.

    /// Catalog G-02: peers that never answer are closed at the drain deadline, not counted as lost (1006).
    @Test func connectionsStillOpenAtTheDeadlineAreClosed() async throws {
        let metrics = TestMetrics()
        let upstream = try await FakeUpstream.start { .accept($0) }
        defer { Task { await upstream.close() } }
        // Neither peer ever answers a Close, and the close timeout (60 s) is far longer than the drain's
        // deadline (300 ms): only the deadline can end the connection. The bound on how long the drain
        // took is generous (a loaded machine is slow, not wrong); the exact deadline is tested under
        // virtual time (ConnectionRegistry+DrainTests).
        try await withGatewayServer(upstreamPort: upstream.port, metrics: metrics, configure: { $0.timeouts.close = .seconds(60) }) {
            server,
            port in
            let client = try await TestWebSocketClient.connect(port: port, path: "/")
            let start = ContinuousClock.now
            let result = await server.drain(timeout: .milliseconds(300))
            #expect(result == .init(closed: 0, forced: 1))
            #expect(ContinuousClock.now - start < .seconds(30), "the drain waited for the close timeout, not its deadline")
            #expect(try await client.receiveMessage() == .close(.goingAway, RelaySession.drainReason))
            try await client.waitForTCPClose()
            // Closed by the gateway at the deadline: not counted as connections lost by their peers.
            #expect(metrics.total("wsgate_close_codes_total", [("code", "1006")]) == 0)
            #expect(metrics.total("wsgate_drained_connections_total", [("result", "forced")]) == 1)
        }
    }

    /// Catalog G-01: an upgrade request that arrives during the drain gets 503.
    @Test func anUpgradeRequestThatArrivesDuringTheDrainGets503() async throws {
        let metrics = TestMetrics()
        let upstream = try await FakeUpstream.start { .accept($0) }
        defer { Task { await upstream.close() } }
        try await withGatewayServer(upstreamPort: upstream.port, metrics: metrics) { server, port in
            // Accepted before the drain, request sent after it began (each waited for, not slept for).
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
            await metrics.eventually(.seconds(10)) { metrics.total("wsgate_connections_accepted_total") == 1 }
            #expect(metrics.total("wsgate_connections_accepted_total") == 1)
            let drain = Task { await server.drain(timeout: .seconds(2)) }
            await waitFor { server.isDraining }
            #expect(server.isDraining)
            let collector = ResponseCollector()
            try await channel.pipeline.addHandler(collector)
            try await channel.writeAndFlush(ByteBuffer(string: OperationsMetricsTests.upgradeRequest))
            try await channel.closeFuture.get()
            #expect(collector.text.hasPrefix("HTTP/1.1 503"), "\(collector.text)")
            _ = await drain.value
            #expect(metrics.total("wsgate_upgrades_refused_total", [("reason", "draining"), ("status", "503")]) == 1)
        }
    }
}

/// Collects what a raw connection receives.
final class ResponseCollector: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    private let received = NIOLockedValueBox("")
    var text: String { self.received.withLockedValue { $0 } }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = Self.unwrapInboundIn(data)
        let text = buffer.readString(length: buffer.readableBytes) ?? ""
        self.received.withLockedValue { $0 += text }
    }
}
