import Frames
import MetricsTestKit
import NIOCore
import NIOEmbedded
import Testing

@testable import Gateway

/// Rate limits, keep-alive and maximum lifetime in the relay, in memory: two `EmbeddedChannel`s on one
/// `EmbeddedEventLoop` whose virtual time is the relay's clock, so every instant is exact and nothing
/// sleeps (STYLE P11).
@Suite struct RelayPolicyEmbeddedTests {
    typealias Base = RelayHandlerEmbeddedTests

    typealias Pair = Base.Pair

    private static func limits(_ configure: (inout GatewayConfiguration.DirectionRateLimits) -> Void) -> GatewayConfiguration.RateLimits {
        var limits = GatewayConfiguration.RateLimits()
        limits.upstream.controlFrames = nil
        configure(&limits.client)
        return limits
    }

    private static func text(_ string: String, fin: Bool = true) -> [UInt8] { Base.clientFrame(.text, Array(string.utf8), fin: fin) }

    // MARK: Rate limits: throttle

    /// Catalog O-05: throttling holds the reads (backpressure), never buffers or drops.
    @Test func throttleHoldsTheFrameAndTheReadsUntilTokensReturnAndLosesNothing() throws {
        let pair = try Pair {
            $0.rateLimits = Self.limits {
                $0.messages = .init(perSecond: 2, burst: 2)
                $0.action = .throttle
            }
        }
        // Four messages in one read: two pass, the third is held with the fourth behind it.
        try pair.deliver(Self.text("a") + Self.text("b") + Self.text("c") + Self.text("d"), from: .client)
        #expect(try pair.frames(to: .upstream).map(\.payload) == [[0x61], [0x62]])
        #expect(pair.count("wsgate_rate_limit_decisions_total", [("side", "client"), ("limit", "messages"), ("action", "throttle")]) == 1)
        // The client is no longer read, and what was already on its way is kept, not dropped.
        pair.client.read()
        #expect(pair.clientReads.reads == 0)
        try pair.deliver(Self.text("e"), from: .client)
        // One token every 500 ms: nothing at 499 ms, "c" at 500 ms, "d" at 1 s, "e" at 1.5 s.
        pair.loop.advanceTime(by: .milliseconds(499))
        #expect(try pair.frames(to: .upstream).isEmpty)
        pair.loop.advanceTime(by: .milliseconds(1))
        #expect(try pair.frames(to: .upstream).map(\.payload) == [[0x63]])
        pair.loop.advanceTime(by: .milliseconds(500))
        #expect(try pair.frames(to: .upstream).map(\.payload) == [[0x64]])
        #expect(pair.clientReads.reads == 0, "read while still throttled")
        pair.loop.advanceTime(by: .milliseconds(500))
        #expect(try pair.frames(to: .upstream).map(\.payload) == [[0x65]])
        // Caught up: the held read goes out.
        #expect(pair.clientReads.reads == 1)
        #expect(pair.count("wsgate_rate_limit_decisions_total", [("side", "client"), ("limit", "messages"), ("action", "throttle")]) == 3)
        #expect(pair.client.isActive && pair.upstream.isActive)
    }

    /// Moved from `PolicyRelayTests` (real sockets, a wall-clock lower bound that was flaky in parallel
    /// runs) to virtual time, keeping what it proved: ten small messages at 20/s after a burst of 1, then
    /// a 100 kB message under a 1 MiB/s byte limit with a 64 KiB burst, all sent at once, reach the
    /// upstream one every 50 ms (the tenth at 450 ms, the big one at 500 ms), byte-exact and in order;
    /// the client is not read meanwhile; the echo comes back and the close handshake completes normally.
    /// Catalog O-05: with action throttle, the sender over its rate is slowed by backpressure (reads held), not buffered or dropped.
    @Test func throttlingSlowsTheSenderAndLosesNothing() throws {
        let pair = try Pair {
            $0.rateLimits = Self.limits {
                $0.messages = .init(perSecond: 20, burst: 1)
                $0.bytes = .init(perSecond: 1 << 20, burst: 64 << 10)
                $0.action = .throttle
            }
        }
        let big = [UInt8](repeating: 0x42, count: 100_000)
        let sent = (0..<10).map { Self.text("m\($0)") }.joined() + Base.clientFrame(.binary, big)
        try pair.deliver(Array(sent), from: .client)
        pair.client.read()
        var arrivals: [(at: Int64, payload: [UInt8])] = []
        for step in 0...12 {
            if step > 0 { pair.loop.advanceTime(by: .milliseconds(50)) }
            for frame in try pair.frames(to: .upstream) { arrivals.append((Int64(step * 50), frame.payload)) }
            if step < 10 { #expect(pair.clientReads.reads == 0, "the client was read while throttled (\(step * 50) ms)") }
        }
        #expect(arrivals.map(\.payload) == (0..<10).map { Array("m\($0)".utf8) } + [big], "everything, in order, byte-exact")
        #expect(arrivals.map(\.at) == (0..<10).map { Int64($0) * 50 } + [500], "one message every 50 ms")
        #expect(pair.clientReads.reads == 1, "caught up: the held read went out")
        #expect(pair.count("wsgate_rate_limit_decisions_total", [("side", "client"), ("limit", "messages"), ("action", "throttle")]) >= 9)

        // The upstream's echo is not limited (client limits only), and the close handshake ends normally.
        let echo = (0..<10).map { Base.upstreamFrame(.text, Array("m\($0)".utf8)) }.joined() + Base.upstreamFrame(.binary, big)
        try pair.deliver(Array(echo), from: .upstream)
        #expect(try pair.written(to: .client) == Array(echo))
        try pair.deliver(Base.clientFrame(.close, Base.closePayload(1000)), from: .client)
        #expect(try pair.frames(to: .upstream).map(\.payload) == [Base.closePayload(1000)])
        try pair.deliver(Base.upstreamFrame(.close, Base.closePayload(1000)), from: .upstream)
        #expect(try pair.frames(to: .client).map(\.payload) == [Base.closePayload(1000)])
        #expect(!pair.client.isActive && !pair.upstream.isActive)
    }

    @Test func byteThrottlingKeepsFragmentsAndPayloadIntact() throws {
        let pair = try Pair {
            $0.rateLimits = Self.limits {
                $0.bytes = .init(perSecond: 100, burst: 100)
                $0.action = .throttle
            }
        }
        let payload = [UInt8](repeating: 0x78, count: 80)
        try pair.deliver(
            Base.clientFrame(.binary, payload, fin: false) + Base.clientFrame(.continuation, payload, fin: false)
                + Base.clientFrame(.continuation, payload),
            from: .client
        )
        // Masked frames toward the upstream: 6 header bytes + 80 payload bytes each.
        var received = try pair.written(to: .upstream)
        #expect(received.count == 86)
        // 80 tokens for the second frame: 20 are left, 60 more take 600 ms.
        pair.loop.advanceTime(by: .milliseconds(599))
        #expect(try pair.written(to: .upstream).isEmpty)
        pair.loop.advanceTime(by: .milliseconds(1))
        received += try pair.written(to: .upstream)
        #expect(received.count == 172)
        pair.loop.advanceTime(by: .milliseconds(799))
        #expect(try pair.written(to: .upstream).isEmpty)
        pair.loop.advanceTime(by: .milliseconds(1))
        received += try pair.written(to: .upstream)
        let frames = try Base.frames(received, sentTo: .upstream)
        #expect(frames.map(\.opcode) == [.binary, .continuation, .continuation])
        #expect(frames.map(\.fin) == [false, false, true])
        #expect(frames.allSatisfy { $0.payload == payload })
    }

    // MARK: Rate limits: close

    /// Catalog O-05: over the limit the connection gets 1008 with a reason and the upstream 1001, at a frame boundary.
    @Test func closeSends1008ToTheClientAfterTheUpstreamsAnswerAnd1001ToTheUpstreamAtAFrameBoundary() throws {
        let pair = try Pair {
            $0.rateLimits = Self.limits {
                $0.messages = .init(perSecond: 1, burst: 2)
                $0.action = .close
            }
        }
        try pair.deliver(Self.text("a") + Self.text("b", fin: false) + Base.clientFrame(.continuation, [0x63]) + Self.text("d"), from: .client)
        let toUpstream = try pair.frames(to: .upstream)
        // "a" and the whole fragmented "bc" pass; "d" is the third message: the upstream gets 1001.
        #expect(toUpstream.map(\.opcode) == [.text, .text, .continuation, .close])
        #expect(toUpstream.last?.payload.prefix(2) == [0x03, 0xE9])
        // The client's 1008 is held until the upstream answers (or the violation grace ends): the answers
        // to "a" and "bc" still reach it (issue #10). Its read was cut, so its TCP ends after the Close.
        #expect(try pair.frames(to: .client).isEmpty)
        try pair.deliver(Base.upstreamFrame(.text, [0x61]) + Base.upstreamFrame(.close, Base.closePayload(1001)), from: .upstream)
        let toClient = try pair.frames(to: .client)
        #expect(toClient.map(\.opcode) == [.text, .close])
        #expect(toClient.last?.payload == Base.closePayload(1008, "rate limit: messages"))
        #expect(!pair.client.isActive)
        #expect(pair.finished && pair.outcome == .init(code: .policyViolation, closedBy: "gateway"))
        #expect(pair.count("wsgate_rate_limit_decisions_total", [("side", "client"), ("limit", "messages"), ("action", "close")]) == 1)
    }

    /// Catalog R-04: a ping flood over the control-frame limit is closed with 1008 and the other side gets 1001.
    @Test func aPingFloodFromTheUpstreamIsClosedWith1008AndTheClientGets1001() throws {
        let pair = try Pair {
            var limits = GatewayConfiguration.RateLimits()
            limits.upstream.controlFrames = .init(perSecond: 100, burst: 3)
            $0.rateLimits = limits
        }
        var flood: [UInt8] = []
        for _ in 0..<5 { flood += Base.upstreamFrame(.ping, [1]) }
        try pair.deliver(flood, from: .upstream)
        let toClient = try pair.frames(to: .client)
        #expect(toClient.map(\.opcode) == [.ping, .ping, .ping, .close])
        #expect(toClient.last?.payload.prefix(2) == [0x03, 0xE9])
        // The upstream's 1008 is held for the client's answer; the client never answers: the grace.
        #expect(try pair.frames(to: .upstream).isEmpty)
        pair.loop.advanceTime(by: RelaySession.defaultViolationGrace)
        let toUpstream = try pair.frames(to: .upstream)
        #expect(toUpstream.last?.opcode == .close)
        #expect(toUpstream.last?.payload == Base.closePayload(1008, "rate limit: control_frames"))
        #expect(pair.count("wsgate_rate_limit_decisions_total", [("side", "upstream"), ("limit", "control_frames"), ("action", "close")]) == 1)
    }

    /// Catalog O-05: control frames have their own limit; a Close is never limited.
    @Test func aCloseFrameIsNeverRateLimited() throws {
        let pair = try Pair { $0.rateLimits = Self.limits { $0.controlFrames = .init(perSecond: 1, burst: 1) } }
        try pair.deliver(Base.clientFrame(.ping, []) + Base.clientFrame(.close, Base.closePayload(1000)), from: .client)
        #expect(try pair.frames(to: .upstream).map(\.opcode) == [.ping, .close])
        #expect(pair.metrics.counterTotal(label: "wsgate_rate_limit_decisions_total") == 0)
    }

    // MARK: Keep-alive

    @Test func aQuietLegIsPingedAndItsPongIsConsumedNotRelayed() throws {
        let pair = try Pair {
            $0.pingInterval = .seconds(30)
            $0.pongDeadline = .seconds(20)
        }
        pair.loop.advanceTime(by: .seconds(29))
        #expect(try pair.frames(to: .client).isEmpty)
        pair.loop.advanceTime(by: .seconds(1))
        let ping = try #require(try pair.frames(to: .client).first)
        #expect(ping.opcode == .ping && ping.payload.count == 18 && ping.payload.starts(with: Array("wsgate".utf8)))
        let upstreamPing = try #require(try pair.frames(to: .upstream).first)
        #expect(upstreamPing.opcode == .ping && upstreamPing.masked)
        // Pongs of both legs come back: neither is relayed to the other side.
        try pair.deliver(Base.clientFrame(.pong, ping.payload), from: .client)
        try pair.deliver(Base.upstreamFrame(.pong, upstreamPing.payload), from: .upstream)
        #expect(try pair.frames(to: .upstream).isEmpty)
        #expect(try pair.frames(to: .client).isEmpty)
        // Alive: the deadline passes without effect, and the next ping comes 30 s after the pong.
        pair.loop.advanceTime(by: .seconds(29))
        #expect(pair.client.isActive && pair.upstream.isActive)
        pair.loop.advanceTime(by: .seconds(1))
        #expect(try pair.frames(to: .client).map(\.opcode) == [.ping])
        #expect(try pair.frames(to: .upstream).map(\.opcode) == [.ping])
        // A pong the gateway did not ask for (another payload) is relayed as usual.
        try pair.deliver(Base.clientFrame(.pong, [9]), from: .client)
        #expect(try pair.frames(to: .upstream).map(\.payload) == [[9]])
        #expect(pair.metrics.counterTotal(label: "wsgate_keepalive_timeouts_total") == 0)
    }

    @Test func keepAlivePongsDoNotPostponeTheIdleTimeout() throws {
        let pair = try Pair(idleTimeout: .seconds(60)) {
            $0.pingInterval = .seconds(30)
            $0.pongDeadline = .seconds(20)
        }
        pair.loop.advanceTime(by: .seconds(30))
        let clientPing = try #require(try pair.frames(to: .client).first)
        let upstreamPing = try #require(try pair.frames(to: .upstream).first)
        try pair.deliver(Base.clientFrame(.pong, clientPing.payload), from: .client)
        try pair.deliver(Base.upstreamFrame(.pong, upstreamPing.payload), from: .upstream)
        // Both legs are alive, but no application frame since the start: idle at exactly 60 s.
        pair.loop.advanceTime(by: .milliseconds(29_999))
        #expect(try pair.frames(to: .client).isEmpty)
        pair.loop.advanceTime(by: .milliseconds(1))
        #expect(try pair.frames(to: .client).last?.payload == Base.closePayload(1001, "idle timeout"))
        #expect(try pair.frames(to: .upstream).last?.payload == Base.closePayload(1001, "idle timeout"))
    }

    /// Catalog U-14: a black-holed upstream is detected by the per-leg keep-alive and the client gets Close 1001 exactly at ping_interval + pong_deadline.
    @Test func aDeadUpstreamIsClosedAndTheClientGets1001() throws {
        let pair = try Pair {
            $0.pingInterval = .seconds(30)
            $0.pongDeadline = .seconds(20)
        }
        pair.loop.advanceTime(by: .seconds(30))
        let clientPing = try #require(try pair.frames(to: .client).first)
        #expect(try pair.frames(to: .upstream).map(\.opcode) == [.ping])
        // The client answers, the upstream does not.
        try pair.deliver(Base.clientFrame(.pong, clientPing.payload), from: .client)
        pair.loop.advanceTime(by: .milliseconds(19_999))
        #expect(pair.upstream.isActive)
        pair.loop.advanceTime(by: .milliseconds(1))
        #expect(!pair.upstream.isActive, "the dead leg's connection is closed")
        #expect(try pair.frames(to: .upstream).isEmpty, "a dead leg gets no Close")
        let toClient = try pair.frames(to: .client)
        #expect(toClient.map(\.opcode) == [.close])
        #expect(toClient.first?.payload == Base.closePayload(1001, "keep-alive timeout"))
        #expect(pair.count("wsgate_keepalive_timeouts_total", [("side", "upstream")]) == 1)
        try pair.deliver(Base.clientFrame(.close, Base.closePayload(1001)), from: .client)
        #expect(pair.finished && pair.outcome == .init(code: .goingAway, closedBy: "gateway"))
    }

    @Test func aCloseHandshakeUnderWayIsLeftToTheCloseTimeout() throws {
        let pair = try Pair {
            $0.pingInterval = .seconds(30)
            $0.pongDeadline = .seconds(20)
        }
        pair.loop.advanceTime(by: .seconds(30))
        _ = try pair.frames(to: .client)
        _ = try pair.frames(to: .upstream)
        // Neither leg answers its ping; the client closes at 45 s and the upstream answers at 52 s (the
        // close timeout is 10 s).
        pair.loop.advanceTime(by: .seconds(15))
        try pair.deliver(Base.clientFrame(.close, Base.closePayload(1000)), from: .client)
        #expect(try pair.frames(to: .upstream).map(\.opcode) == [.close])
        pair.loop.advanceTime(by: .seconds(5))
        // At 50 s both pong deadlines pass: a Close went both ways on neither leg yet, but each leg is in a
        // close handshake (the client sent its Close, the upstream was sent one), so the close timeout
        // bounds them instead of keep-alive.
        #expect(pair.client.isActive && pair.upstream.isActive)
        pair.loop.advanceTime(by: .seconds(2))
        try pair.deliver(Base.upstreamFrame(.close, Base.closePayload(1000)), from: .upstream)
        #expect(try pair.frames(to: .client).map(\.payload) == [Base.closePayload(1000)])
        #expect(pair.finished && pair.outcome == .init(code: .normalClosure, closedBy: "client"))
        #expect(pair.metrics.counterTotal(label: "wsgate_keepalive_timeouts_total") == 0)
    }

    @Test func aTalkingLegIsNotPingedAndAPingWaitsForTheEndOfAHalfWrittenFrame() throws {
        let pair = try Pair {
            $0.pingInterval = .seconds(30)
            $0.pongDeadline = .seconds(20)
        }
        pair.loop.advanceTime(by: .seconds(20))
        // The upstream talks at 20 s: its next ping is due at 50 s. It starts a frame toward the client.
        let frame = Base.upstreamFrame(.binary, [UInt8](repeating: 1, count: 10))
        try pair.deliver(Array(frame.prefix(5)), from: .upstream)
        _ = try pair.client.readOutbound(as: ByteBuffer.self)
        _ = try pair.client.readOutbound(as: ByteBuffer.self)
        pair.loop.advanceTime(by: .seconds(10))
        // At 30 s the client is due, but the stream toward it is mid-frame: no ping yet.
        #expect(try pair.client.readOutbound(as: ByteBuffer.self) == nil)
        #expect(try pair.frames(to: .upstream).isEmpty, "the upstream talked 10 s ago")
        try pair.deliver(Array(frame.dropFirst(5)), from: .upstream)
        var bytes: [UInt8] = []
        while let buffer = try pair.client.readOutbound(as: ByteBuffer.self) { bytes += buffer.readableBytesView }
        // The rest of the frame, then the owed ping.
        #expect(Array(bytes.prefix(7)) == Array(frame.dropFirst(5)))
        let ping = try Base.frames(Array(bytes.dropFirst(7)), sentTo: .client)
        #expect(ping.map(\.opcode) == [.ping])
        try pair.deliver(Base.clientFrame(.pong, ping.first?.payload ?? []), from: .client)
        // The upstream last talked at 30 s: pinged at 60 s.
        pair.loop.advanceTime(by: .milliseconds(29_999))
        #expect(try pair.frames(to: .upstream).isEmpty)
        pair.loop.advanceTime(by: .milliseconds(1))
        #expect(try pair.frames(to: .upstream).map(\.opcode) == [.ping])
        #expect(pair.client.isActive && pair.upstream.isActive)
    }

    // MARK: Maximum lifetime

    @Test func theMaximumLifetimeClosesBothLegsWith1001() throws {
        let pair = try Pair { $0.maxLifetime = .seconds(60) }
        pair.loop.advanceTime(by: .milliseconds(59_999))
        #expect(try pair.frames(to: .client).isEmpty)
        pair.loop.advanceTime(by: .milliseconds(1))
        #expect(try pair.frames(to: .client).first?.payload == Base.closePayload(1001, "maximum lifetime"))
        #expect(try pair.frames(to: .upstream).first?.payload == Base.closePayload(1001, "maximum lifetime"))
        #expect(pair.count("wsgate_max_lifetime_closes_total", []) == 1)
    }
}

extension RelayHandlerEmbeddedTests.Pair {
    func frames(to side: Side) throws -> [RelayHandlerEmbeddedTests.Frame] {
        try RelayHandlerEmbeddedTests.frames(self.written(to: side), sentTo: side)
    }

    func count(_ label: String, _ dimensions: [(String, String)]) -> Int64 {
        self.metrics.counterTotal(label: label, dimensions: [("route", "/r")] + dimensions)
    }
}
