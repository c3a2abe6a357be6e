import Frames
import NIOCore
import NIOEmbedded
import Testing

@testable import Gateway

/// The relay's protocol code over the transport boundary with no channel at all: ``Relay`` over
/// ``MemoryRelayTransport`` (virtual clock, every transport call logged). The close handshakes, the
/// violation grace, the close timeout and back-pressure run as pure state machines; what reaches each
/// leg is compared with what the NIO transport (``RelayHandlerEmbeddedTests``' `EmbeddedChannel`s)
/// writes for the same input.
@Suite struct RelayTransportTests {
    typealias Frame = RelayHandlerEmbeddedTests.Frame
    typealias Embedded = RelayHandlerEmbeddedTests

    /// One relayed connection over the in-memory transport.
    final class Memory {
        let transport = MemoryRelayTransport()
        let relay: Relay<MemoryRelayTransport>
        private(set) var outcome: RelayCloseState.Outcome?
        private(set) var finished = false

        init(closeTimeout: TimeAmount = .seconds(10), idleTimeout: TimeAmount = .hours(1), policy: RelayPolicy = RelayPolicy()) {
            self.relay = Relay(transport: self.transport, limits: .init(), closeTimeout: closeTimeout, idleTimeout: idleTimeout, policy: policy)
            self.relay.onFinish = { [unowned self] outcome, _ in
                self.outcome = outcome
                self.finished = true
            }
            self.transport.connect(self.relay)
            self.transport.clearEvents()
        }

        func frames(to side: Side) throws -> [Frame] {
            try Embedded.frames(self.transport.written(to: side), sentTo: side)
        }
    }

    // MARK: Close handshake

    @Test func aClientCloseIsRelayedAndTheUpstreamsAnswerEndsBothLegs() throws {
        let memory = Memory()
        memory.transport.deliver(Embedded.clientFrame(.close, Embedded.closePayload(1000, "bye")), from: .client)
        #expect(
            try memory.frames(to: .upstream) == [
                Frame(opcode: .close, fin: true, masked: true, key: nil, payload: Embedded.closePayload(1000, "bye"))
            ]
        )
        #expect(memory.transport.open == PerSide(true), "closed before the upstream answered")
        #expect(memory.transport.armedTimers[.close(.upstream)] == .seconds(10), "the upstream has the close timeout to answer")

        memory.transport.deliver(Embedded.upstreamFrame(.close, Embedded.closePayload(1000, "bye")), from: .upstream)
        #expect(memory.transport.written(to: .client) == Embedded.upstreamFrame(.close, Embedded.closePayload(1000, "bye")))
        #expect(memory.transport.open == PerSide(false))
        #expect(memory.finished)
        #expect(memory.outcome == .init(code: .normalClosure, closedBy: "client"))
        #expect(memory.transport.armedTimers.isEmpty, "every timer is disarmed at the end")
    }

    @Test func anUpstreamCloseIsRelayedAndTheClientsAnswerEndsBothLegs() throws {
        let memory = Memory()
        memory.transport.deliver(Embedded.upstreamFrame(.close, Embedded.closePayload(1001, "restart")), from: .upstream)
        #expect(
            try memory.frames(to: .client) == [
                Frame(opcode: .close, fin: true, masked: false, key: nil, payload: Embedded.closePayload(1001, "restart"))
            ]
        )
        #expect(memory.transport.open == PerSide(true))
        #expect(memory.transport.armedTimers[.close(.client)] == .seconds(10))

        memory.transport.deliver(Embedded.clientFrame(.close, Embedded.closePayload(1001, "restart")), from: .client)
        let toUpstream = try memory.frames(to: .upstream)
        #expect(toUpstream.map(\.opcode) == [.close], "the client's answer is relayed")
        #expect(toUpstream.first?.payload == Embedded.closePayload(1001, "restart"))
        #expect(memory.transport.open == PerSide(false))
        #expect(memory.outcome == .init(code: .goingAway, closedBy: "upstream"))
        #expect(memory.transport.armedTimers.isEmpty)
    }

    /// Catalog U-12: (c) a client Close the upstream never answers: both TCP connections end at the close timeout, the client's Close answered once.
    @Test func theCloseTimeoutEndsBothLegsWhenTheUpstreamNeverAnswers() throws {
        let memory = Memory(closeTimeout: .seconds(3))
        memory.transport.deliver(Embedded.clientFrame(.close, Embedded.closePayload(1001)), from: .client)
        #expect(try memory.frames(to: .upstream).map(\.opcode) == [.close])
        memory.transport.advance(by: .milliseconds(2999))
        #expect(memory.transport.open == PerSide(true), "closed before the close timeout")
        memory.transport.advance(by: .milliseconds(1))
        #expect(memory.transport.open == PerSide(false))
        #expect(memory.finished)
        #expect(try memory.frames(to: .client) == [Frame(opcode: .close, fin: true, masked: false, key: nil, payload: Embedded.closePayload(1001))])
    }

    // MARK: Violation grace

    /// The offender's Close is held for the grace while the upstream may still answer; at the grace it
    /// gets 1002 and its TCP ends; the upstream, which never answers its 1001, ends at its close timeout.
    @Test func aViolatingClientGetsItsCloseAtTheGraceAndTheUpstreamAtItsCloseTimeout() throws {
        let memory = Memory(closeTimeout: .seconds(10))
        let unmasked = Embedded.upstreamFrame(.text, Array("x".utf8))
        memory.transport.deliver(Embedded.clientFrame(.text, Array("ok".utf8)) + unmasked, from: .client)
        let toUpstream = try memory.frames(to: .upstream)
        #expect(toUpstream.map(\.opcode) == [.text, .close], "the valid message first, then 1001")
        #expect(toUpstream.last?.payload.prefix(2) == [0x03, 0xE9])
        #expect(memory.transport.armedTimers[.grace(.client)] == RelaySession.defaultViolationGrace)
        #expect(memory.transport.armedTimers[.close(.upstream)] == .seconds(10))

        memory.transport.advance(by: RelaySession.defaultViolationGrace - .nanoseconds(1))
        #expect(memory.transport.written(to: .client).isEmpty, "closed before the grace")
        #expect(memory.transport.open.client)
        memory.transport.advance(by: .nanoseconds(1))
        let toClient = try memory.frames(to: .client)
        #expect(toClient.map(\.opcode) == [.close])
        #expect(toClient.first?.payload == Embedded.closePayload(1002, FramesError.Code.unmaskedClientFrame.description))
        #expect(!memory.transport.open.client, "its framing is broken: its TCP ends right after the Close")
        #expect(memory.transport.open.upstream)

        memory.transport.advance(by: .seconds(10) - RelaySession.defaultViolationGrace)
        #expect(!memory.transport.open.upstream)
        #expect(memory.finished)
        #expect(memory.outcome?.code == .protocolError)
    }

    /// The upstream answers within the grace: its answer reaches the offender before the offender's own
    /// Close, and the connection ends then, the grace timer disarmed.
    @Test func anUpstreamAnswerWithinTheGraceGoesFirstAndDisarmsIt() throws {
        let memory = Memory()
        memory.transport.deliver(Embedded.clientFrame(.text, Array("ok".utf8)) + Embedded.upstreamFrame(.text, Array("x".utf8)), from: .client)
        _ = memory.transport.written(to: .upstream)
        memory.transport.advance(by: .milliseconds(100))
        memory.transport.deliver(
            Embedded.upstreamFrame(.text, Array("ok".utf8)) + Embedded.upstreamFrame(.close, Embedded.closePayload(1001)),
            from: .upstream
        )
        let toClient = try memory.frames(to: .client)
        #expect(toClient.map(\.opcode) == [.text, .close])
        #expect(toClient.last?.payload.prefix(2) == [0x03, 0xEA])
        #expect(memory.transport.open == PerSide(false))
        #expect(memory.transport.events.contains(.cancel(.grace(.client))))
        #expect(memory.transport.armedTimers.isEmpty)
    }

    // MARK: Back-pressure

    /// Catalog U-08: an upstream that cannot take more stops the gateway reading the client until it drains.
    @Test func anUnwritableUpstreamHoldsTheClientsReadUntilItIsWritableAgain() throws {
        let memory = Memory()
        memory.transport.pullRead(.client)
        #expect(memory.transport.reads.client == 1)

        memory.transport.setWritable(.upstream, false)
        memory.transport.pullRead(.client)
        memory.transport.deliver(Embedded.clientFrame(.text, Array("held".utf8)), from: .client)
        #expect(memory.transport.reads.client == 1, "the client was read while the upstream could take nothing")
        #expect(try memory.frames(to: .upstream).map(\.payload) == [Array("held".utf8)], "what was read is still relayed")

        memory.transport.clearEvents()
        memory.transport.setWritable(.upstream, true)
        #expect(memory.transport.reads.client == 2, "the held read was not resumed")
        #expect(memory.transport.events == [.read(.client)], "resumed once, by the relay")
    }

    // MARK: Policies

    /// A throttle over the transport: the held frame waits on the `throttleResume` slot while the
    /// client's reads are held, goes out when its token is back, and then the held read goes on.
    @Test func aThrottleHoldsTheReadsUntilItsResumeTimerFires() throws {
        var limits = GatewayConfiguration.RateLimits()
        limits.upstream.controlFrames = nil
        limits.client.messages = .init(perSecond: 2, burst: 2)
        limits.client.action = .throttle
        var policy = RelayPolicy()
        policy.rateLimits = limits
        let memory = Memory(policy: policy)
        let text = { (string: String) in Embedded.clientFrame(.text, Array(string.utf8)) }
        memory.transport.deliver(text("a") + text("b") + text("c"), from: .client)
        #expect(try memory.frames(to: .upstream).map(\.payload) == [[0x61], [0x62]])
        #expect(memory.transport.armedTimers[.throttleResume(.client)] == .milliseconds(500))
        #expect(memory.transport.reads.client == 0, "read while throttled")
        memory.transport.advance(by: .milliseconds(499))
        #expect(memory.transport.written(to: .upstream).isEmpty)
        memory.transport.advance(by: .milliseconds(1))
        #expect(try memory.frames(to: .upstream).map(\.payload) == [[0x63]])
        #expect(memory.transport.reads.client == 1, "caught up: the held read goes on")
    }

    // MARK: The same bytes as the NIO transport

    /// Upstream → client is forwarded in place, so its bytes are exact: the same frames cut at every
    /// byte come out the same through both transports, then the same Close exchange.
    @Test func bothTransportsWriteTheSameBytesForTheSameReads() throws {
        let frames =
            Embedded.upstreamFrame(.text, Array("héllo".utf8), fin: false) + Embedded.upstreamFrame(.ping, [1, 2])
            + Embedded.upstreamFrame(.continuation, Array(" world".utf8)) + Embedded.upstreamFrame(.binary, [UInt8](repeating: 9, count: 300))
        let cuts = Array(1..<frames.count)
        let pair = try Embedded.Pair()
        let memory = Memory()
        try pair.deliver(frames, from: .upstream, cutAt: cuts)
        memory.transport.deliver(frames, from: .upstream, cutAt: cuts)
        let viaNIO = try pair.written(to: .client)
        #expect(viaNIO == frames)
        #expect(memory.transport.written(to: .client) == viaNIO)

        pair.session.gatewayClose(.goingAway, reason: "bye")
        memory.relay.gatewayClose(.goingAway, reason: "bye")
        #expect(memory.transport.written(to: .client) == (try pair.written(to: .client)))
        // Toward the upstream the Close is masked with a fresh key: the same frame, other bytes.
        #expect(try memory.frames(to: .upstream) == Embedded.frames(pair.written(to: .upstream), sentTo: .upstream))
    }

    /// The idle timer is one slot re-armed for the rest of the period: 1001 exactly one idle period
    /// after the last frame.
    @Test func theIdleTimerIsReArmedForTheRestOfThePeriod() throws {
        let memory = Memory(idleTimeout: .seconds(60))
        memory.transport.advance(by: .seconds(30))
        memory.transport.deliver(Embedded.upstreamFrame(.text, Array("tick".utf8)), from: .upstream)
        _ = memory.transport.written(to: .client)
        memory.transport.advance(by: .seconds(60))
        #expect(memory.transport.events.contains(.schedule(.idle, at: .seconds(90))), "re-armed for the 30 s left")
        #expect(try memory.frames(to: .client).map(\.payload) == [Embedded.closePayload(1001, "idle timeout")])
    }
}
