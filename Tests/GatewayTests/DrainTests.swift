import Foundation
import Frames
import MetricsTestKit
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@testable import Gateway

/// SIGTERM's drain over real sockets (DESIGN §6, RELIABILITY G-01/G-02): Close 1001 on both legs at
/// a frame boundary, nothing fully received is lost, the deadline bounds it all.
@Suite(.timeLimit(.minutes(2))) struct DrainTests {
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

    @Test func aHalfRelayedFrameIsFinishedBeforeTheClose() async throws {
        let upstream = try await FakeUpstream.start { .accept($0) }
        defer { Task { await upstream.close() } }
        try await withGatewayServer(upstreamPort: upstream.port, configure: { $0.timeouts.close = .milliseconds(300) }) { server, port in
            let client = try await TestWebSocketClient.connect(port: port, path: "/")
            // A 100-byte binary frame: header, key and the first 40 bytes now, the rest after the drain began.
            let payload = (0..<100).map { UInt8($0) }
            var encoder = FrameEncoder(role: .client)
            var frame = ByteBuffer()
            encoder.writeFrame(opcode: .binary, payload: ByteBuffer(bytes: payload), to: &frame)
            let bytes = Array(buffer: frame)
            let split = bytes.count - 60
            try await client.sendRaw(Array(bytes[..<split]))
            try await upstream.waitUntilReceived { $0.count >= split }

            let drain = Task { await server.drain(timeout: .seconds(10)) }
            try await Task.sleep(for: .milliseconds(200))
            // Nothing may be written into the half-relayed frame: neither leg has its Close yet.
            #expect(upstream.received.count == split)
            await #expect(throws: TestWebSocketClient.Failure.timedOut("a frame")) {
                _ = try await client.receiveFrame(timeout: .milliseconds(100))
            }
            try await client.sendRaw(Array(bytes[split...]))
            #expect(try await client.receiveMessage() == .close(.goingAway, RelaySession.drainReason))
            try await upstream.waitUntilReceived { $0.count > bytes.count }
            let frames = try upstream.receivedFrames()
            #expect(frames.count == 2)
            #expect(frames.first?.0?.opcode == .binary)
            #expect(frames.first?.2 == payload, "the frame in flight when the drain began arrives whole")
            #expect(frames.last?.1?.closeCode == .goingAway)
            try await client.close(code: .goingAway)
            // The fake upstream never answers its Close: the close timeout (300 ms) ends the connection.
            #expect(await drain.value == .init(closed: 1, forced: 0))
        }
    }

    @Test func aFrameTheUpstreamIsSendingIsFinishedBeforeTheClose() async throws {
        // The upstream sends the first 40 bytes of a 100-byte frame right behind its 101, the rest
        // once the drain has begun.
        var frame = ByteBuffer()
        FrameHeader(opcode: .binary, payloadLength: 100).write(to: &frame)
        frame.writeRepeatingByte(0x42, count: 100)
        let bytes = Array(buffer: frame)
        let first = Array(bytes[..<(bytes.count - 60)])
        let rest = Array(bytes[(bytes.count - 60)...])
        let expected = TestWebSocketClient.Message.binary([UInt8](repeating: 0x42, count: 100))
        let upstream = try await FakeUpstream.start { request in
            var reply = FakeUpstream.Reply.accept(request)
            reply.then = first
            return reply
        }
        defer { Task { await upstream.close() } }
        try await withGatewayServer(upstreamPort: upstream.port, configure: { $0.timeouts.close = .milliseconds(300) }) { server, port in
            try await Self.finishTheUpstreamFrameDuringADrain(server: server, port: port, upstream: upstream, rest: rest, expected: expected)
        }
    }

    private static func finishTheUpstreamFrameDuringADrain(
        server: GatewayServer,
        port: Int,
        upstream: FakeUpstream,
        rest: [UInt8],
        expected: TestWebSocketClient.Message
    ) async throws {
        let client = try await TestWebSocketClient.connect(port: port, path: "/")
        try await Task.sleep(for: .milliseconds(100))
        let drain = Task { await server.drain(timeout: .seconds(10)) }
        try await Task.sleep(for: .milliseconds(200))
        #expect(upstream.received.isEmpty, "no Close while the frame toward the client is unfinished")
        upstream.write(rest)
        let whole = try await client.receiveMessage()
        #expect(whole == expected, "the frame arrives whole")
        let close = try await client.receiveMessage()
        #expect(close == .close(.goingAway, RelaySession.drainReason))
        try await upstream.waitUntilReceived { !$0.isEmpty }
        let frames = try upstream.receivedFrames()
        #expect(frames.first?.1?.closeCode == .goingAway)
        try await client.close(code: .goingAway)
        let result = await drain.value
        #expect(result == .init(closed: 1, forced: 0))
    }

    @Test func aFrameTheUpstreamLeftHalfSentIsNeverInterruptedByAClose() async throws {
        // The upstream sends the first 40 bytes of a 100-byte frame right behind its 101, then nothing.
        var frame = ByteBuffer()
        FrameHeader(opcode: .binary, payloadLength: 100).write(to: &frame)
        frame.writeRepeatingByte(0x42, count: 40)
        let partial = Array(buffer: frame)
        let upstream = try await FakeUpstream.start { request in
            var reply = FakeUpstream.Reply.accept(request)
            reply.then = partial
            return reply
        }
        defer { Task { await upstream.close() } }
        try await withGatewayServer(upstreamPort: upstream.port) { server, port in
            let client = try await TestWebSocketClient.connect(port: port, path: "/")
            try await Task.sleep(for: .milliseconds(100))
            let drain = Task { await server.drain(timeout: .milliseconds(600)) }
            try await Task.sleep(for: .milliseconds(300))
            // No boundary came: no Close on either leg while the frame is unfinished.
            #expect(upstream.received.isEmpty, "the drain's Close waits for the boundary on both legs")
            #expect(await drain.value == .init(closed: 0, forced: 1))
            // At the deadline the client's TCP connection is closed with the frame unfinished, never a
            // Close inside it.
            await #expect(throws: TestWebSocketClient.Failure.connectionClosed) {
                _ = try await client.receiveMessage(timeout: .seconds(2))
            }
        }
    }

    @Test func connectionsStillOpenAtTheDeadlineAreClosed() async throws {
        let metrics = TestMetrics()
        let upstream = try await FakeUpstream.start { .accept($0) }
        defer { Task { await upstream.close() } }
        try await withGatewayServer(upstreamPort: upstream.port, metrics: metrics) { server, port in
            // Neither peer ever answers a Close (close timeout: the default 10 s, longer than the drain).
            let client = try await TestWebSocketClient.connect(port: port, path: "/")
            let start = ContinuousClock.now
            let result = await server.drain(timeout: .milliseconds(300))
            #expect(result == .init(closed: 0, forced: 1))
            #expect(ContinuousClock.now - start < .seconds(3))
            #expect(try await client.receiveMessage() == .close(.goingAway, RelaySession.drainReason))
            try await client.waitForTCPClose()
            // Closed by the gateway at the deadline: not counted as connections lost by their peers.
            #expect(metrics.total("wsgate_close_codes_total", [("code", "1006")]) == 0)
            #expect(metrics.total("wsgate_drained_connections_total", [("result", "forced")]) == 1)
        }
    }

    @Test func anUpgradeRequestThatArrivesDuringTheDrainGets503() async throws {
        let metrics = TestMetrics()
        let upstream = try await FakeUpstream.start { .accept($0) }
        defer { Task { await upstream.close() } }
        try await withGatewayServer(upstreamPort: upstream.port, metrics: metrics) { server, port in
            // Connected before the drain, request sent after it began.
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
            try await Task.sleep(for: .milliseconds(50))
            let drain = Task { await server.drain(timeout: .seconds(2)) }
            try await Task.sleep(for: .milliseconds(50))
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
