import NIOCore
import Testing

@testable import Gateway

/// `KeepAlive`, the gateway's own ping toward one leg, as the pure state machine it is: every step under
/// virtual time (`NIODeadline`s made from numbers), no channel, no sleep.
@Suite struct KeepAliveTests {
    static let nonce: UInt64 = 0x0102_0304_0506_0708
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    static func at(_ seconds: Int64) -> NIODeadline { Self.start + .seconds(seconds) }

    static func make() -> KeepAlive {
        KeepAlive(interval: .seconds(30), deadline: .seconds(20), nonce: Self.nonce, now: Self.start)
    }

    /// The payload of ping `sequence`: "wsgate", the nonce and the sequence, big-endian.
    static func payload(_ sequence: UInt32, nonce: UInt64 = Self.nonce) -> [UInt8] {
        var bytes = Array("wsgate".utf8)
        withUnsafeBytes(of: nonce.bigEndian) { bytes += $0 }
        withUnsafeBytes(of: sequence.bigEndian) { bytes += $0 }
        return bytes
    }

    @Test func aQuietLegIsPingedAfterTheIntervalAndNotBefore() {
        var keepAlive = Self.make()
        var action = keepAlive.timerFired(now: Self.at(10), midFrame: false)
        #expect(action == .checkAt(Self.at(30)))
        #expect(keepAlive.state == .quiet)
        action = keepAlive.timerFired(now: Self.at(30), midFrame: false)
        #expect(action == .sendPing(payload: Self.payload(1), checkAt: Self.at(50)))
        #expect(keepAlive.state == .awaitingPong(sequence: 1, deadline: Self.at(50)))
        #expect(Self.payload(1).count == KeepAlive.payloadLength)
    }

    @Test func anyByteFromTheLegPostponesThePing() {
        var keepAlive = Self.make()
        keepAlive.heard(at: Self.at(25))
        var action = keepAlive.timerFired(now: Self.at(30), midFrame: false)
        #expect(action == .checkAt(Self.at(55)))
        keepAlive.heard(at: Self.at(54))
        action = keepAlive.timerFired(now: Self.at(55), midFrame: false)
        #expect(action == .checkAt(Self.at(84)))
        #expect(keepAlive.state == .quiet)
    }

    @Test func aPingDueInsideAFrameIsOwedAndSentAtTheFrameBoundary() {
        var keepAlive = Self.make()
        var action = keepAlive.frameBoundary(now: Self.at(5))
        #expect(action == KeepAlive.Action.none, "nothing owed yet")
        action = keepAlive.timerFired(now: Self.at(31), midFrame: true)
        #expect(action == KeepAlive.Action.none)
        #expect(keepAlive.state == .pingOwed)
        action = keepAlive.frameBoundary(now: Self.at(33))
        #expect(action == .sendPing(payload: Self.payload(1), checkAt: Self.at(53)))
        action = keepAlive.frameBoundary(now: Self.at(34))
        #expect(action == KeepAlive.Action.none, "sent once")
    }

    @Test func anOwedPingIsDroppedWhenTheLegSpeaksBeforeTheFrameEnds() {
        var keepAlive = Self.make()
        var action = keepAlive.timerFired(now: Self.at(31), midFrame: true)
        #expect(action == KeepAlive.Action.none)
        keepAlive.heard(at: Self.at(32))
        // The timer fires again before the boundary: the leg is alive, no ping is owed any more.
        action = keepAlive.timerFired(now: Self.at(33), midFrame: true)
        #expect(action == .checkAt(Self.at(62)))
        #expect(keepAlive.state == .quiet)
        action = keepAlive.frameBoundary(now: Self.at(34))
        #expect(action == KeepAlive.Action.none)
    }

    @Test func itsPongIsConsumedAndTheLegIsQuietAgain() {
        var keepAlive = Self.make()
        _ = keepAlive.timerFired(now: Self.at(30), midFrame: false)
        let consumed = keepAlive.pongReceived(ByteBuffer(bytes: Self.payload(1)), now: Self.at(35))
        #expect(consumed)
        #expect(keepAlive.state == .quiet)
        #expect(keepAlive.lastHeard == Self.at(35))
        var action = keepAlive.timerFired(now: Self.at(50), midFrame: false)
        #expect(action == .checkAt(Self.at(65)))
        action = keepAlive.timerFired(now: Self.at(65), midFrame: false)
        #expect(action == .sendPing(payload: Self.payload(2), checkAt: Self.at(85)))
    }

    @Test func noPongByTheDeadlineMeansTheLegIsDeadOnce() {
        var keepAlive = Self.make()
        _ = keepAlive.timerFired(now: Self.at(30), midFrame: false)
        var action = keepAlive.timerFired(now: Self.at(49), midFrame: false)
        #expect(action == .checkAt(Self.at(50)))
        action = keepAlive.timerFired(now: Self.at(50), midFrame: false)
        #expect(action == .dead)
        #expect(keepAlive.state == .stopped)
        action = keepAlive.timerFired(now: Self.at(90), midFrame: false)
        #expect(action == KeepAlive.Action.none)
    }

    /// Hostile or unrelated pongs: only the gateway's own payload (magic, this session's nonce, 18 bytes)
    /// is consumed; anything else is the peer's and is relayed. A late pong of an earlier ping is the
    /// gateway's (consumed) but does not answer the current ping.
    @Test func onlyTheGatewaysOwnPongsAreConsumedAndOnlyTheCurrentOneAnswersThePing() {
        var keepAlive = Self.make()
        _ = keepAlive.timerFired(now: Self.at(30), midFrame: false)
        let awaiting = keepAlive.state
        let foreign: [[UInt8]] = [
            [],
            Array("hello".utf8),
            Self.payload(1, nonce: Self.nonce ^ 1),
            Array(Self.payload(1).dropLast()),
            Self.payload(1) + [0],
            [UInt8(ascii: "W")] + Self.payload(1).dropFirst(),
        ]
        var consumed: Bool
        for payload in foreign {
            consumed = keepAlive.pongReceived(ByteBuffer(bytes: payload), now: Self.at(31))
            #expect(!consumed, "\(payload)")
            #expect(keepAlive.state == awaiting)
        }
        consumed = keepAlive.pongReceived(ByteBuffer(bytes: Self.payload(7)), now: Self.at(32))
        #expect(consumed, "a stale sequence is still ours")
        #expect(keepAlive.state == awaiting)
        // The payload may sit anywhere in the buffer (a read from a larger buffer).
        var buffer = ByteBuffer(bytes: [0xFF, 0xFF] + Self.payload(1))
        buffer.moveReaderIndex(forwardBy: 2)
        consumed = keepAlive.pongReceived(buffer, now: Self.at(33))
        #expect(consumed)
        #expect(keepAlive.state == .quiet)
    }

    @Test func afterStopNothingHappens() {
        var keepAlive = Self.make()
        keepAlive.stop()
        var action = keepAlive.timerFired(now: Self.at(100), midFrame: false)
        #expect(action == KeepAlive.Action.none)
        action = keepAlive.frameBoundary(now: Self.at(100))
        #expect(action == KeepAlive.Action.none)
        #expect(keepAlive.state == .stopped)
    }
}
