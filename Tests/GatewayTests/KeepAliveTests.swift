import NIOCore
import Testing

@testable import Gateway

/// ``KeepAlive`` as a pure state machine under a virtual clock (issue #10 asks for direct tests).
@Suite struct KeepAliveTests {
    static let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
    static let nonce: UInt64 = 0x0102_0304_0506_0708

    static func make() -> KeepAlive {
        KeepAlive(interval: .seconds(30), deadline: .seconds(20), nonce: Self.nonce, now: Self.t0)
    }

    static func pong(sequence: UInt32, nonce: UInt64 = Self.nonce) -> ByteBuffer {
        var buffer = ByteBuffer(bytes: KeepAlive.magic)
        buffer.writeInteger(nonce)
        buffer.writeInteger(sequence)
        return buffer
    }

    @Test func aQuietLegIsPingedAfterTheIntervalWithTheNonceAndASequence() {
        var keepAlive = Self.make()
        #expect(keepAlive.timerFired(now: Self.t0 + .seconds(29), midFrame: false) == .checkAt(Self.t0 + .seconds(30)))
        let action = keepAlive.timerFired(now: Self.t0 + .seconds(30), midFrame: false)
        #expect(action == .sendPing(payload: Array(Self.pong(sequence: 1).readableBytesView), checkAt: Self.t0 + .seconds(50)))
        #expect(keepAlive.state == .awaitingPong(sequence: 1, deadline: Self.t0 + .seconds(50)))
    }

    @Test func anythingHeardPostponesThePing() {
        var keepAlive = Self.make()
        keepAlive.heard(at: Self.t0 + .seconds(20))
        #expect(keepAlive.timerFired(now: Self.t0 + .seconds(30), midFrame: false) == .checkAt(Self.t0 + .seconds(50)))
        #expect(keepAlive.state == .quiet)
    }

    @Test func aPingIsOwedWhileAFrameIsHalfWrittenAndSentAtItsEnd() {
        var keepAlive = Self.make()
        #expect(keepAlive.timerFired(now: Self.t0 + .seconds(30), midFrame: true) == KeepAlive.Action.none)
        #expect(keepAlive.state == .pingOwed)
        guard case .sendPing(_, let checkAt) = keepAlive.frameBoundary(now: Self.t0 + .seconds(35)) else {
            Issue.record("no ping at the frame boundary")
            return
        }
        #expect(checkAt == Self.t0 + .seconds(55))
        #expect(keepAlive.frameBoundary(now: Self.t0 + .seconds(36)) == KeepAlive.Action.none, "one ping only")
    }

    @Test func theRightPongIsConsumedAndForgedOrStaleOnesAreNot() {
        var keepAlive = Self.make()
        _ = keepAlive.timerFired(now: Self.t0 + .seconds(30), midFrame: false)
        let forged = keepAlive.pongReceived(Self.pong(sequence: 1, nonce: 42), now: Self.t0 + .seconds(31))
        #expect(!forged, "a forged nonce")
        let application = keepAlive.pongReceived(ByteBuffer(bytes: [1, 2, 3]), now: Self.t0 + .seconds(31))
        #expect(!application, "an application pong")
        let stale = keepAlive.pongReceived(Self.pong(sequence: 7), now: Self.t0 + .seconds(31))
        #expect(stale, "ours, but stale: consumed")
        #expect(keepAlive.state == .awaitingPong(sequence: 1, deadline: Self.t0 + .seconds(50)), "a stale pong proves nothing")
        let answer = keepAlive.pongReceived(Self.pong(sequence: 1), now: Self.t0 + .seconds(32))
        #expect(answer)
        #expect(keepAlive.state == .quiet)
        #expect(keepAlive.lastHeard == Self.t0 + .seconds(32))
    }

    @Test func noPongByTheDeadlineMeansDeadAndThenNothing() {
        var keepAlive = Self.make()
        _ = keepAlive.timerFired(now: Self.t0 + .seconds(30), midFrame: false)
        #expect(keepAlive.timerFired(now: Self.t0 + .seconds(49), midFrame: false) == .checkAt(Self.t0 + .seconds(50)))
        #expect(keepAlive.timerFired(now: Self.t0 + .seconds(50), midFrame: false) == .dead)
        #expect(keepAlive.state == .stopped)
        #expect(keepAlive.timerFired(now: Self.t0 + .seconds(99), midFrame: false) == KeepAlive.Action.none)
    }

    @Test func stoppedKeepAliveDoesNothing() {
        var keepAlive = Self.make()
        keepAlive.stop()
        #expect(keepAlive.timerFired(now: Self.t0 + .seconds(300), midFrame: false) == KeepAlive.Action.none)
        #expect(keepAlive.frameBoundary(now: Self.t0 + .seconds(300)) == KeepAlive.Action.none)
    }

    /// A leg that speaks while a ping is owed (the frame toward it not yet ended) is alive: the next
    /// timer finds it quiet again and nothing is sent at the boundary.
    @Test func anOwedPingIsDroppedWhenTheLegSpeaksFirst() {
        var keepAlive = Self.make()
        var action = keepAlive.timerFired(now: Self.t0 + .seconds(31), midFrame: true)
        #expect(action == KeepAlive.Action.none)
        keepAlive.heard(at: Self.t0 + .seconds(32))
        action = keepAlive.timerFired(now: Self.t0 + .seconds(33), midFrame: true)
        #expect(action == .checkAt(Self.t0 + .seconds(62)))
        action = keepAlive.frameBoundary(now: Self.t0 + .seconds(34))
        #expect(action == KeepAlive.Action.none)
    }

    /// Hostile pongs: only exactly the gateway's 18 bytes (magic, nonce, sequence) are consumed, wherever
    /// they sit in the buffer; one byte more or less, or another magic, is the peer's and is relayed.
    @Test func onlyTheExactPayloadIsConsumedWhereverItSitsInTheBuffer() {
        var keepAlive = Self.make()
        _ = keepAlive.timerFired(now: Self.t0 + .seconds(30), midFrame: false)
        let ours = Array(Self.pong(sequence: 1).readableBytesView)
        for foreign in [[], Array(ours.dropLast()), ours + [0], [UInt8(ascii: "W")] + ours.dropFirst()] {
            let consumed = keepAlive.pongReceived(ByteBuffer(bytes: foreign), now: Self.t0 + .seconds(31))
            #expect(!consumed, "\(foreign)")
        }
        var buffer = ByteBuffer(bytes: [0xFF, 0xFF] + ours)
        buffer.moveReaderIndex(forwardBy: 2)
        let consumed = keepAlive.pongReceived(buffer, now: Self.t0 + .seconds(32))
        #expect(consumed)
        #expect(keepAlive.state == .quiet)
    }
}
