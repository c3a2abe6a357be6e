import Frames
import NIOCore
import Testing

@testable import RelayCore

#if canImport(Glibc)
import Glibc
#endif

/// The drain's pure rules over bytes and ticks: where a Close 1001 may go (message boundaries, at every
/// split of a stream), when the drain deadline fires on the wheel, and the accept back-off.
@Suite struct RelayDrainTests {
    /// A whole text message, a fragmented binary message around a Ping, then a Ping between messages.
    static let pieces: [(Opcode, [UInt8], Bool)] = [
        (.text, Array("hi".utf8), true),
        (.binary, [1, 2], false),
        (.ping, [7], true),
        (.continuation, [3, 4], true),
        (.ping, [8], true),
    ]
    /// After which pieces the stream is between messages (not after the first fragment or the Ping inside).
    static let boundaryAfter = [true, false, false, true, true]

    static func stream(masked: Bool) -> (bytes: [UInt8], boundaries: Set<Int>) {
        let keys = MaskingKeyGenerator(fill: { raw in for index in raw.indices { raw[index] = UInt8(truncatingIfNeeded: index &* 7 &+ 1) } })
        var bytes: [UInt8] = []
        var boundaries: Set<Int> = [0]
        for (index, piece) in Self.pieces.enumerated() {
            bytes += frame(piece.0, piece.1, fin: piece.2, key: masked ? keys.nextKey() : nil)
            if Self.boundaryAfter[index] { boundaries.insert(bytes.count) }
        }
        return (bytes, boundaries)
    }

    static func connection() -> RelayConnection {
        var connection = RelayConnection(client: 1000, limits: FrameParser.Configuration())
        connection.upstream.fd = 1001
        connection.phase = .relaying
        return connection
    }

    @Test func theCloseTowardTheUpstreamWaitsForTheClientsMessageBoundaryAtEverySplit() {
        let (bytes, boundaries) = Self.stream(masked: true)
        let keys = MaskingKeyGenerator(fill: { raw in for index in raw.indices { raw[index] = 0x5A } })
        var encoder = FrameEncoder(role: .client, keys: keys)
        for split in 0...bytes.count {
            var connection = Self.connection()
            var input = ByteBuffer(bytes: bytes[0..<split])
            var output = ByteBuffer()
            let step = RelayFraming.towardUpstream(&connection.fromClient, &input, into: &output, keys: keys, encoder: &encoder)
            #expect(step.failure == nil)
            #expect(
                RelayDrain.closeReady(toward: .upstream, connection) == boundaries.contains(split),
                "after \(split) of \(bytes.count) bytes"
            )
            #expect(RelayDrain.closeReady(toward: .client, connection), "the other direction is idle")
        }
    }

    @Test func theCloseTowardTheClientWaitsForTheUpstreamsMessageBoundaryAtEverySplit() {
        let (bytes, boundaries) = Self.stream(masked: false)
        for split in 0...bytes.count {
            // Two reads: the boundary state after the second must not depend on where the first ended.
            for first in [0, split / 2] {
                var connection = Self.connection()
                var one = ByteBuffer(bytes: bytes[0..<first])
                _ = RelayFraming.towardClient(&connection.fromUpstream, &one)
                var two = ByteBuffer(bytes: bytes[first..<split])
                let step = RelayFraming.towardClient(&connection.fromUpstream, &two)
                #expect(step.failure == nil)
                #expect(RelayDrain.closeReady(toward: .client, connection) == boundaries.contains(split), "after \(first) + \(split - first) bytes")
            }
        }
    }

    @Test func noCloseIsOwedOnceTheDirectionIsClosedOrTheLegGone() {
        var connection = Self.connection()
        connection.fromUpstream.closePassed = true  // the upstream's Close (or the gateway's) went to the client
        #expect(!RelayDrain.closeOwed(toward: .client, connection))
        #expect(RelayDrain.closeOwed(toward: .upstream, connection))
        connection.upstream.fd = -1
        #expect(!RelayDrain.closeOwed(toward: .upstream, connection))
        #expect(!RelayDrain.closeReady(toward: .upstream, connection))
    }

    @Test func aPeersAnsweringCloseIsFoundBehindItsDataAtEverySplitAndNothingIsForwarded() {
        let keys = MaskingKeyGenerator(fill: { raw in for index in raw.indices { raw[index] = UInt8(truncatingIfNeeded: index &+ 9) } })
        let bytes =
            frame(.text, Array("late".utf8), key: keys.nextKey()) + frame(.ping, [], key: keys.nextKey())
            + frame(.close, [0x03, 0xE9], key: keys.nextKey())
        for split in 0...bytes.count {
            var connection = Self.connection()
            connection.fromClient.closePassed = true  // the gateway's 1001 went to the upstream
            var one = ByteBuffer(bytes: bytes[0..<split])
            let first = RelayFraming.awaitingClose(&connection.fromClient, &one)
            var two = ByteBuffer(bytes: bytes[split...])
            let second = RelayFraming.awaitingClose(&connection.fromClient, &two)
            #expect(first.closed == (split == bytes.count) && first.failure == nil && second.failure == nil)
            #expect(first.closed || second.closed, "at split \(split)")
            #expect((first.closed ? first : second).closeCode == 1001)
            #expect(connection.fromClient.parser.isClosed)
        }
        var connection = Self.connection()
        var invalid = ByteBuffer(bytes: frame(.text, [0xFF], key: keys.nextKey()))
        #expect(RelayFraming.awaitingClose(&connection.fromClient, &invalid).failure != nil, "still validated")
    }

    @Test func theMessagesOfAReadAreCountedOncePerCompleteMessage() {
        let (bytes, _) = Self.stream(masked: false)
        for batching in [true, false] {
            var connection = Self.connection()
            var input = ByteBuffer(bytes: bytes)
            let step = RelayFraming.towardClient(&connection.fromUpstream, &input, batching: batching)
            #expect(step.messages == 2, "the text message and the fragmented binary one, not the Pings")
        }
    }

    @Test func theDrainDeadlineFiresOnTheWheelAtItsTickNotBefore() {
        // 250 ms at 100 ms ticks: rounded up to 3 ticks, so never early.
        let deadline = RelayDrain.deadline(now: 1_000, milliseconds: 250, tickMilliseconds: 100)
        #expect(deadline == 1_003)
        #expect(RelayDrain.deadline(now: 5, milliseconds: 0, tickMilliseconds: 100) == 6, "at least one tick")
        var wheel = TimerWheel(slotCount: 8, now: 1_000)
        wheel.schedule(RelayLoop.drainDeadlineKey, at: deadline)
        wheel.schedule(42, at: 1_001)  // a connection's close timeout
        var fired: [UInt64] = []
        wheel.advance(to: 1_002) { fired.append($0) }
        #expect(fired == [42])
        wheel.advance(to: 1_003) { fired.append($0) }
        #expect(fired == [42, RelayLoop.drainDeadlineKey])
        #expect(RelayLoop.drainDeadlineKey & RelayLoop.upstreamBit != 0, "never a slab handle's key")
    }

    /// As RELIABILITY R-12 asks of the gateway (the prototype is not the product, so not a catalog citation): an accept out of descriptors pauses the listener (resumed by the wheel), not a busy loop.
    @Test func acceptBacksOffOnResourceShortagesOnlyAndResumesAfterThePause() {
        var backoff = AcceptBackoff(pauseTicks: 10)
        #expect(backoff.failed(errno: EINTR, now: 50) == .retry)
        #expect(backoff.failed(errno: ECONNABORTED, now: 50) == .retry)
        #expect(backoff.failed(errno: EAGAIN, now: 50) == .done)
        #expect(backoff.pausedUntil == nil)
        for shortage in [EMFILE, ENFILE, ENOBUFS, ENOMEM] {
            var paused = AcceptBackoff(pauseTicks: 10)
            #expect(paused.failed(errno: shortage, now: 50) == .pause(until: 60))
        }
        #expect(backoff.failed(errno: EMFILE, now: 50) == .pause(until: 60))
        var wheel = TimerWheel(slotCount: 8, now: 50)
        wheel.schedule(RelayLoop.acceptResumeKey, at: 60)
        var resumed: [UInt64] = []
        wheel.advance(to: 59) { _ in resumed.append(59) }
        let early = backoff.resume(now: 59)
        #expect(resumed.isEmpty && !early)
        wheel.advance(to: 60) { key in if key == RelayLoop.acceptResumeKey, backoff.resume(now: 60) { resumed.append(60) } }
        #expect(resumed == [60])
        #expect(backoff.pausedUntil == nil)
        let again = backoff.resume(now: 61)
        #expect(!again, "one pause, one resume")
    }
}
