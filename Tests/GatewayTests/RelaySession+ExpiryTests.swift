import Frames
import NIOCore
import NIOEmbedded
import Testing

@testable import Gateway

/// The token-expiry close (`auth.jwt.close_on_expiry`, `RelaySession+Expiry.swift`) under virtual time:
/// two `EmbeddedChannel`s on one `EmbeddedEventLoop`, nothing sleeps.
@Suite struct RelaySessionExpiryTests {
    typealias Base = RelayHandlerEmbeddedTests

    @Test func atExpBothLegsGet1008TokenExpiredAndNotASecondBefore() throws {
        let pair = try Base.Pair { $0.tokenExpiry = .seconds(90) }
        pair.loop.advanceTime(by: .milliseconds(89_999))
        #expect(try pair.frames(to: .client).isEmpty)
        #expect(try pair.frames(to: .upstream).isEmpty)
        pair.loop.advanceTime(by: .milliseconds(1))
        #expect(try pair.frames(to: .client).map(\.payload) == [Base.closePayload(1008, "token expired")])
        #expect(try pair.frames(to: .upstream).map(\.payload) == [Base.closePayload(1008, "token expired")])
        #expect(pair.count("wsgate_auth_decisions_total", [("method", "jwt"), ("outcome", "closed_on_expiry")]) == 1)
        // Both peers answer; the connection ends, recorded as the gateway's 1008.
        try pair.deliver(Base.clientFrame(.close, Base.closePayload(1008)), from: .client)
        try pair.deliver(Base.upstreamFrame(.close, Base.closePayload(1008)), from: .upstream)
        pair.loop.run()
        #expect(pair.outcome == .init(code: .policyViolation, closedBy: "gateway"))
    }

    @Test func aFrameBeingRelayedIsFinishedBeforeTheCloseAndTheOtherLegIsNotKeptWaiting() throws {
        let pair = try Base.Pair { $0.tokenExpiry = .seconds(10) }
        let frame = Base.upstreamFrame(.binary, Array(repeating: 0x41, count: 10))
        // Header and half the payload toward the client when the token expires.
        try pair.deliver(Array(frame[..<7]), from: .upstream)
        #expect(try pair.written(to: .client) == Array(frame[..<7]))
        pair.loop.advanceTime(by: .seconds(10))
        // Nothing is cut into the frame; the upstream (whose direction is between frames) is told at once.
        #expect(try pair.written(to: .client).isEmpty)
        #expect(try pair.frames(to: .upstream).map(\.payload) == [Base.closePayload(1008, "token expired")])
        try pair.deliver(Array(frame[7...]), from: .upstream)
        let rest = try pair.written(to: .client)
        #expect(Array(rest.prefix(5)) == Array(frame[7...]))
        #expect(try Base.frames(Array(rest.dropFirst(5)), sentTo: .client).map(\.payload) == [Base.closePayload(1008, "token expired")])
    }

    @Test func aFragmentedMessageIsClosedBetweenItsFramesNeverInsideOne() throws {
        let pair = try Base.Pair { $0.tokenExpiry = .seconds(5) }
        try pair.deliver(Base.clientFrame(.text, Array("first ".utf8), fin: false), from: .client)
        #expect(try pair.frames(to: .upstream).map(\.fin) == [false])
        pair.loop.advanceTime(by: .seconds(5))
        let frames = try pair.frames(to: .upstream)
        #expect(frames.map(\.opcode) == [.close])
        #expect(frames.first?.payload == Base.closePayload(1008, "token expired"))
    }

    @Test func aTokenThatExpiredDuringTheHandshakeClosesAtOnce() throws {
        let pair = try Base.Pair { $0.tokenExpiry = .seconds(-3) }
        pair.loop.run()
        #expect(try pair.frames(to: .client).map(\.payload) == [Base.closePayload(1008, "token expired")])
    }

    @Test func withoutCloseOnExpiryNothingHappens() throws {
        let pair = try Base.Pair(idleTimeout: .hours(48))
        pair.loop.advanceTime(by: .hours(24))
        #expect(try pair.frames(to: .client).allSatisfy { $0.opcode != .close })
        #expect(pair.count("wsgate_auth_decisions_total", [("method", "jwt"), ("outcome", "closed_on_expiry")]) == 0)
    }
}
