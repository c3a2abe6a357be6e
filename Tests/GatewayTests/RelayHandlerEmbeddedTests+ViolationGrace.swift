import Frames
import NIOCore
import NIOEmbedded
import Testing

@testable import Gateway

/// An offender's Close and the violation grace (issue #10, behaviours 1 and 8; ``RelayCloseState``), in
/// the in-memory pair of ``RelayHandlerEmbeddedTests`` under virtual time.
extension RelayHandlerEmbeddedTests {
    static let grace = RelaySession.defaultViolationGrace
    static let unmaskedText = Self.upstreamFrame(.text, Array("x".utf8))

    /// (a) A responsive upstream: the answer to the client's valid message, sent before the upstream saw
    /// the 1001, reaches the client, then the client's own 1002 (not the upstream's Close), all before
    /// the grace. Autobahn 3.2, 4.1.3, 5.15… (before: the Close went first and the echo was lost).
    @Test func aViolatingClientGetsTheAnswersToItsEarlierMessagesThenItsClose() throws {
        let pair = try Pair(closeTimeout: .seconds(10))
        try pair.deliver(Self.clientFrame(.text, Array("ok".utf8)) + Self.unmaskedText, from: .client)
        #expect(try pair.written(to: .client).isEmpty, "the client's Close is held while the upstream may answer")
        let toUpstream = try Self.frames(pair.written(to: .upstream), sentTo: .upstream)
        #expect(toUpstream.map(\.opcode) == [.text, .close], "the valid message first, then 1001")
        #expect(toUpstream.last?.payload.prefix(2) == [0x03, 0xE9])
        // Nothing more from the client is relayed.
        try pair.deliver(Self.clientFrame(.text, Array("late".utf8)), from: .client)
        #expect(try pair.written(to: .upstream).isEmpty)

        pair.loop.advanceTime(by: Self.grace - .milliseconds(1))
        try pair.deliver(Self.upstreamFrame(.text, Array("ok".utf8)) + Self.upstreamFrame(.close, Self.closePayload(1001)), from: .upstream)
        let toClient = try Self.frames(pair.written(to: .client), sentTo: .client)
        #expect(toClient.map(\.opcode) == [.text, .close])
        #expect(toClient.first?.payload == Array("ok".utf8))
        #expect(toClient.last?.payload == Self.closePayload(1002, FramesError.Code.unmaskedClientFrame.description), "its own code")
        #expect(!pair.client.isActive && !pair.upstream.isActive)
        #expect(pair.finished)
        #expect(pair.outcome == .init(code: .protocolError, closedBy: "gateway"))
    }

    /// (b) An upstream that only sinks data: the offender gets its Close exactly at the grace, not at
    /// the close timeout (10 s); the upstream's own close timer ends it.
    @Test func aViolatingClientNextToASinkingUpstreamGetsItsCloseAtTheGrace() throws {
        let pair = try Pair(closeTimeout: .seconds(10))
        try pair.deliver(Self.clientFrame(.text, Array("ok".utf8)) + Self.unmaskedText, from: .client)
        #expect(try Self.frames(pair.written(to: .upstream), sentTo: .upstream).map(\.opcode) == [.text, .close])
        pair.loop.advanceTime(by: Self.grace - .nanoseconds(1))
        #expect(try pair.written(to: .client).isEmpty, "closed before the grace")
        #expect(pair.client.isActive)
        pair.loop.advanceTime(by: .nanoseconds(1))
        let toClient = try Self.frames(pair.written(to: .client), sentTo: .client)
        #expect(toClient.map(\.opcode) == [.close])
        #expect(toClient.first?.payload.prefix(2) == [0x03, 0xEA], "1002 at the grace")
        #expect(!pair.client.isActive, "its framing is broken: its TCP ends right after the Close")
        #expect(pair.upstream.isActive, "the upstream gets the close timeout to answer")
        pair.loop.advanceTime(by: .seconds(10))
        #expect(!pair.upstream.isActive)
        #expect(pair.finished)
        #expect(pair.outcome?.code == .protocolError)
    }

    /// (c) The upstream is mid-frame toward the client when the grace ends: the rest of that frame
    /// first, then the Close (never a Close inside a frame).
    @Test func aGraceThatEndsInsideTheUpstreamsFrameWaitsForThatFrame() throws {
        let pair = try Pair()
        let frame = Self.upstreamFrame(.binary, [UInt8](repeating: 3, count: 100))
        try pair.deliver(Array(frame.prefix(50)), from: .upstream)
        try pair.deliver(Self.unmaskedText, from: .client)
        #expect(try pair.written(to: .client) == Array(frame.prefix(50)))
        #expect(try Self.frames(pair.written(to: .upstream), sentTo: .upstream).map(\.opcode) == [.close])
        pair.loop.advanceTime(by: Self.grace)
        #expect(try pair.written(to: .client).isEmpty, "no Close inside the frame")
        #expect(pair.client.isActive)
        try pair.deliver(Array(frame.dropFirst(50)), from: .upstream)
        let toClient = try Self.frames(Array(frame.prefix(50)) + pair.written(to: .client), sentTo: .client)
        #expect(toClient.map(\.opcode) == [.binary, .close])
        #expect(toClient.last?.payload.prefix(2) == [0x03, 0xEA])
        #expect(!pair.client.isActive)
    }

    /// (c') …and if that frame never ends: the upstream, which never answered its 1001 either, is ended
    /// by its close timer, and with it the frame toward the client, whose TCP then ends without a Close.
    @Test func aFrameThatNeverEndsAfterTheGraceIsBoundedByTheCloseTimeout() throws {
        let pair = try Pair(closeTimeout: .seconds(3))
        let frame = Self.upstreamFrame(.binary, [UInt8](repeating: 3, count: 100))
        try pair.deliver(Array(frame.prefix(50)), from: .upstream)
        try pair.deliver(Self.unmaskedText, from: .client)
        pair.loop.advanceTime(by: .seconds(3) - .milliseconds(1))
        #expect(pair.client.isActive && pair.upstream.isActive)
        pair.loop.advanceTime(by: .milliseconds(1))
        #expect(!pair.client.isActive && !pair.upstream.isActive)
        #expect(pair.finished)
        #expect(try pair.written(to: .client) == Array(frame.prefix(50)), "no Close inside the frame")
    }

    /// (d) The upstream offends while the client is mid-frame: the client gets 1014 at once (the
    /// direction toward it is idle); the upstream is no longer read but still gets the rest of the
    /// client's frame and the client's answer decides its 1002, which is not relayed.
    /// Catalog U-02: a masked upstream frame: 1014 to the client at once, 1002 to the upstream after the rest of the client's frame.
    @Test func anOffendingUpstreamGets1002AfterTheClientsAnswerAndTheClient1014AtOnce() throws {
        let pair = try Pair()
        let big = Self.clientFrame(.binary, [UInt8](repeating: 4, count: 500))
        try pair.deliver(Array(big.prefix(100)), from: .client)
        // A valid message, then a masked frame from the upstream: 1002 (RFC 6455 §5.1).
        var masked = ByteBuffer()
        FrameHeader(opcode: .text, maskingKey: MaskingKey(1, 2, 3, 4), payloadLength: 0).write(to: &masked)
        try pair.deliver(Self.upstreamFrame(.text, Array("hi".utf8)) + Array(masked.readableBytesView), from: .upstream)
        let toClient = try Self.frames(pair.written(to: .client), sentTo: .client)
        #expect(toClient.map(\.opcode) == [.text, .close])
        #expect(toClient.last?.payload.prefix(2) == [0x03, 0xF6], "1014 to the client at once")
        let partial = try pair.written(to: .upstream)
        #expect(partial.count == 100)
        try pair.deliver(Array(big.dropFirst(100)) + Self.clientFrame(.close, Self.closePayload(1014)), from: .client)
        let toUpstream = try Self.frames(partial + pair.written(to: .upstream), sentTo: .upstream)
        #expect(toUpstream.map(\.opcode) == [.binary, .close], "the rest of the client's frame, then the upstream's own Close")
        #expect(toUpstream.last?.payload.prefix(2) == [0x03, 0xEA])
        #expect(!pair.upstream.isActive && !pair.client.isActive)
        #expect(pair.finished)
    }

    /// (d') …and with a client that never answers: the upstream gets its 1002 exactly at the grace.
    @Test func anOffendingUpstreamNextToASilentClientGetsItsCloseAtTheGrace() throws {
        let pair = try Pair(closeTimeout: .seconds(10))
        var masked = ByteBuffer()
        FrameHeader(opcode: .text, maskingKey: MaskingKey(1, 2, 3, 4), payloadLength: 0).write(to: &masked)
        try pair.deliver(Array(masked.readableBytesView), from: .upstream)
        #expect(try Self.frames(pair.written(to: .client), sentTo: .client).map(\.opcode) == [.close])
        pair.loop.advanceTime(by: Self.grace - .nanoseconds(1))
        #expect(try pair.written(to: .upstream).isEmpty)
        pair.loop.advanceTime(by: .nanoseconds(1))
        let toUpstream = try Self.frames(pair.written(to: .upstream), sentTo: .upstream)
        #expect(toUpstream.map(\.opcode) == [.close])
        #expect(toUpstream.first?.payload.prefix(2) == [0x03, 0xEA])
        #expect(!pair.upstream.isActive)
        #expect(pair.client.isActive, "the client gets the close timeout to answer its 1014")
    }
}
