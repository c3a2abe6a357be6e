import Frames
import NIOCore
import Testing

@testable import Gateway

/// Drain per leg (issue #10, behaviours 2 and 8), under virtual time: the drain reaches the relay as
/// `ChannelShouldQuiesceEvent` fired into the client channel, as ``ConnectionRegistry`` fires it.
@Suite struct RelaySessionOperationsTests {
    typealias T = RelayHandlerEmbeddedTests
    typealias Pair = RelayHandlerEmbeddedTests.Pair

    static func drain(_ pair: Pair) {
        pair.client.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
    }

    static func code(_ frame: T.Frame?) -> UInt16? {
        guard let frame, frame.opcode == .close, frame.payload.count >= 2 else { return nil }
        return UInt16(frame.payload[0]) << 8 | UInt16(frame.payload[1])
    }

    @Test func aClientSendingALargeFrameGetsIts1001AtOnceAndTheUpstreamAfterTheFrame() throws {
        let pair = try Pair()
        let payload = [UInt8](repeating: 0x33, count: 1000)
        let wire = T.clientFrame(.binary, payload)
        try pair.deliver(Array(wire[..<300]), from: .client)
        Self.drain(pair)
        // The direction toward the client is idle: its Close goes now, whatever the upstream leg does.
        let toClient = try T.frames(pair.written(to: .client), sentTo: .client)
        #expect(toClient.map(\.opcode) == [.close])
        #expect(Self.code(toClient.first) == 1001)
        #expect(toClient.first?.payload.dropFirst(2) == ArraySlice(RelaySession.drainReason.utf8))
        // The upstream is mid-frame: nothing but the frame's bytes so far.
        let partial = try pair.written(to: .upstream)
        #expect(partial.count == 300)
        try pair.deliver(Array(wire[300...]), from: .client)
        let toUpstream = try T.frames(partial + pair.written(to: .upstream), sentTo: .upstream)
        #expect(toUpstream.map(\.opcode) == [.binary, .close], "the rest of the frame, then the Close")
        #expect(toUpstream.first?.payload == payload)
        #expect(Self.code(toUpstream.last) == 1001)
        // Each leg's answer ends that leg.
        try pair.deliver(T.clientFrame(.close, T.closePayload(1001)), from: .client)
        #expect(!pair.client.isActive)
        #expect(pair.upstream.isActive)
        try pair.deliver(T.upstreamFrame(.close, T.closePayload(1001)), from: .upstream)
        #expect(!pair.upstream.isActive)
        #expect(pair.finished)
        #expect(pair.outcome == .init(code: .goingAway, closedBy: "gateway"))
    }

    /// Catalog G-02: a leg stuck mid-frame never delays the other leg's Close and is closed at the drain deadline without a Close inside the frame.
    @Test func anUpstreamStuckMidFrameGetsItsCloseAtOnceAndTheClientOnlyItsTCPClosedAtTheDeadline() throws {
        let pair = try Pair(closeTimeout: .seconds(60))
        let frame = T.upstreamFrame(.binary, [UInt8](repeating: 7, count: 100))
        try pair.deliver(Array(frame.prefix(40)), from: .upstream)
        #expect(try pair.written(to: .client) == Array(frame.prefix(40)))
        Self.drain(pair)
        let toUpstream = try T.frames(pair.written(to: .upstream), sentTo: .upstream)
        #expect(toUpstream.map(\.opcode) == [.close], "the upstream's direction is idle: its 1001 at once")
        #expect(Self.code(toUpstream.first) == 1001)
        // No close timer runs for the client's owed Close: the drain deadline bounds it. (Once the
        // upstream's own close timeout ends the upstream, the frame can never finish and the client's TCP
        // ends too.)
        pair.loop.advanceTime(by: .seconds(59))
        #expect(pair.client.isActive)
        #expect(try pair.written(to: .client).isEmpty, "a Close inside the half-relayed frame")
        // The drain deadline: the registry closes the client channel; the upstream goes with it.
        pair.client.close(promise: nil)
        pair.loop.run()
        #expect(!pair.client.isActive && !pair.upstream.isActive)
        #expect(pair.finished)
        #expect(pair.metrics.counterTotal(label: "wsgate_close_codes_total", dimensions: [("code", "1006")]) == 0)
    }

    @Test func aDrainBetweenFramesClosesBothLegsAtOnce() throws {
        let pair = try Pair()
        Self.drain(pair)
        #expect(Self.code(try T.frames(pair.written(to: .client), sentTo: .client).first) == 1001)
        #expect(Self.code(try T.frames(pair.written(to: .upstream), sentTo: .upstream).first) == 1001)
        Self.drain(pair)
        #expect(try pair.written(to: .client).isEmpty, "one Close per leg")
    }

    /// Behaviour 8: wherever the drain falls in a stream of frames split at every byte, every frame the
    /// gateway began relaying arrives whole, the Close comes only between frames, and no Close carries
    /// 1006 or 1015.
    /// Catalog G-01: wherever the drain falls, every frame begun is relayed whole and the single Close 1001 comes at a frame boundary.
    @Test func whereverTheDrainFallsNothingBegunIsCutAndNoCloseIsInsideAFrame() throws {
        let upstreamWire = T.upstreamFrame(.binary, Array(0..<40)) + T.upstreamFrame(.ping, [9]) + T.upstreamFrame(.text, Array("hello".utf8))
        let clientWire = T.clientFrame(.binary, Array(0..<30)) + T.clientFrame(.text, Array("hi".utf8))
        for cut in 0...max(upstreamWire.count, clientWire.count) {
            let pair = try Pair()
            try pair.deliver(Array(upstreamWire.prefix(cut)), from: .upstream)
            try pair.deliver(Array(clientWire.prefix(cut)), from: .client)
            Self.drain(pair)
            try pair.deliver(Array(upstreamWire.dropFirst(cut)), from: .upstream)
            try pair.deliver(Array(clientWire.dropFirst(cut)), from: .client)
            for side in [Side.client, .upstream] {
                // `frames` fails on any partial frame or protocol error in what was written.
                let frames = try T.frames(pair.written(to: side), sentTo: side)
                #expect(frames.last?.opcode == .close, "cut \(cut) toward \(side)")
                #expect(frames.filter { $0.opcode == .close }.count == 1)
                #expect(Self.code(frames.last) == 1001)
                // Frames the gateway had begun relaying before the drain: a data frame once its header
                // was parsed, a control frame once it was whole.
                let relayedFrom = side == .client ? [2, 45, 47] : [6, 42]
                let begun = relayedFrom.filter { $0 <= cut }.count
                #expect(frames.count - 1 >= begun, "cut \(cut) toward \(side): a frame that had begun was dropped")
            }
        }
    }
}
