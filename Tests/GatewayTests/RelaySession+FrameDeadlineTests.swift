import Frames
import NIOCore
import Testing

@testable import Gateway

/// `timeouts.frame` (issue #10, behaviour 3), under virtual time: a frame and a fragmented message must
/// arrive whole within the deadline however steadily their bytes trickle.
@Suite struct RelaySessionFrameDeadlineTests {
    typealias T = RelayHandlerEmbeddedTests
    typealias Pair = RelayHandlerEmbeddedTests.Pair

    static func pair(closeTimeout: TimeAmount = .seconds(10), frame: TimeAmount? = .seconds(30)) throws -> Pair {
        try Pair(closeTimeout: closeTimeout) { $0.frameTimeout = frame }
    }

    static func code(_ frame: T.Frame?) -> UInt16? {
        guard let frame, frame.opcode == .close, frame.payload.count >= 2 else { return nil }
        return UInt16(frame.payload[0]) << 8 | UInt16(frame.payload[1])
    }

    /// Catalog R-09: a frame trickled one byte every 2 s gets 1008 at the 30 s deadline, counted from its start; the upstream gets the rest of the frame, then 1001.
    @Test func aTrickledClientFrameGets1008AtTheDeadlineAndTheUpstreamItsRestThen1001() throws {
        let pair = try Self.pair()
        let payload = [UInt8](repeating: 0x5A, count: 100)
        let wire = T.clientFrame(.binary, payload)
        // The header and 20 bytes now, then one byte every 2 s: steady, never idle, never whole in time.
        try pair.deliver(Array(wire[..<26]), from: .client)
        var sent = 26
        for _ in 0..<14 {
            pair.loop.advanceTime(by: .seconds(2))
            try pair.deliver([wire[sent]], from: .client)
            sent += 1
        }
        pair.loop.advanceTime(by: .milliseconds(1999))
        #expect(try pair.written(to: .client).isEmpty, "closed before the deadline")
        pair.loop.advanceTime(by: .milliseconds(1))
        let toClient = try T.frames(pair.written(to: .client), sentTo: .client)
        #expect(toClient.count == 1)
        #expect(Self.code(toClient.first) == 1008)
        #expect(pair.count("wsgate_frame_deadline_closes_total", [("side", "client")]) == 1)
        // The upstream is mid-frame: no Close inside it.
        let partial = try pair.written(to: .upstream)
        #expect(partial.count == sent, "the relayed part of the frame (remasked: same length)")
        // The rest of the frame comes: it is relayed whole, then 1001.
        try pair.deliver(Array(wire[sent...]), from: .client)
        let toUpstream = try T.frames(partial + pair.written(to: .upstream), sentTo: .upstream)
        #expect(toUpstream.map(\.opcode) == [.binary, .close])
        #expect(toUpstream.first?.payload == payload)
        #expect(Self.code(toUpstream.last) == 1001)
        // Both answer: both TCP connections end.
        try pair.deliver(T.clientFrame(.close, T.closePayload(1008)), from: .client)
        #expect(!pair.client.isActive)
        try pair.deliver(T.upstreamFrame(.close, T.closePayload(1001)), from: .upstream)
        #expect(!pair.upstream.isActive)
        #expect(pair.finished)
        #expect(pair.outcome == .init(code: .policyViolation, closedBy: "gateway"))
    }

    /// Catalog R-09: a fragmented message must also complete within the deadline.
    @Test func aFragmentedMessageMustAlsoCompleteInTime() throws {
        let pair = try Self.pair()
        try pair.deliver(T.upstreamFrame(.text, Array("a".utf8), fin: false), from: .upstream)
        for _ in 0..<2 {
            pair.loop.advanceTime(by: .seconds(10))
            try pair.deliver(T.upstreamFrame(.continuation, Array("b".utf8), fin: false), from: .upstream)
        }
        pair.loop.advanceTime(by: .seconds(10))
        // Both directions are between frames: 1008 to the upstream, 1001 to the client, at once.
        let toUpstream = try T.frames(pair.written(to: .upstream), sentTo: .upstream)
        #expect(toUpstream.map(\.opcode) == [.close])
        #expect(Self.code(toUpstream.first) == 1008)
        let toClient = try T.frames(pair.written(to: .client), sentTo: .client)
        #expect(toClient.map(\.opcode) == [.text, .continuation, .continuation, .close])
        #expect(Self.code(toClient.last) == 1001)
    }

    @Test func aBusyStreamOfWholeMessagesNeverTripsIt() throws {
        let pair = try Self.pair()
        // Every read ends inside a frame, but each message completes within seconds: for 5 minutes.
        var wire: [UInt8] = []
        for index in 0..<300 { wire += T.clientFrame(.binary, [UInt8](repeating: UInt8(index & 0xFF), count: 10)) }
        var offset = 0
        while offset < wire.count {
            let end = min(offset + 13, wire.count)
            try pair.deliver(Array(wire[offset..<end]), from: .client)
            offset = end
            pair.loop.advanceTime(by: .milliseconds(800))
        }
        #expect(try pair.written(to: .client).isEmpty)
        #expect(try T.frames(pair.written(to: .upstream), sentTo: .upstream).count == 300)
        #expect(pair.client.isActive && pair.upstream.isActive)
    }

    @Test func offTurnsItOff() throws {
        let pair = try Self.pair(frame: nil)
        let wire = T.clientFrame(.binary, [UInt8](repeating: 1, count: 100))
        try pair.deliver(Array(wire[..<30]), from: .client)
        pair.loop.advanceTime(by: .minutes(10))
        #expect(try pair.written(to: .client).isEmpty)
        try pair.deliver(Array(wire[30...]), from: .client)
        #expect(try T.frames(pair.written(to: .upstream), sentTo: .upstream).count == 1)
    }

    @Test func timeTheGatewayHoldsTheSenderBackDoesNotCount() throws {
        let pair = try Self.pair()
        let wire = T.clientFrame(.binary, [UInt8](repeating: 1, count: 100))
        try pair.deliver(Array(wire[..<30]), from: .client)
        // The upstream stops taking data: the client is no longer read.
        pair.upstream.isWritable = false
        pair.upstream.pipeline.fireChannelWritabilityChanged()
        pair.client.read()
        pair.loop.advanceTime(by: .seconds(45))
        #expect(try pair.written(to: .client).isEmpty, "the slow upstream is not the client's fault")
        pair.upstream.isWritable = true
        pair.upstream.pipeline.fireChannelWritabilityChanged()
        try pair.deliver(Array(wire[30...]), from: .client)
        #expect(try T.frames(pair.written(to: .upstream), sentTo: .upstream).count == 1)
    }
}
