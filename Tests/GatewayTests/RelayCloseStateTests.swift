import Frames
import NIOCore
import Testing

@testable import Gateway

/// The close handshakes of both legs (``RelayCloseState``), as pure transitions (STYLE P3): each input
/// and the exact actions. Each leg closes on its own (issue #10).
@Suite struct RelayCloseStateTests {
    static let idle = PerSide(true)
    /// The direction toward the upstream is mid-frame (the client's frame is half relayed).
    static let upstreamMidFrame = PerSide(client: true, upstream: false)
    /// The direction toward the client is mid-frame.
    static let clientMidFrame = PerSide(client: false, upstream: true)
    static let bye = ByteBuffer(bytes: [0x03, 0xE8, 0x62])

    @Test func aClientCloseIsRelayedAndEachLegClosesWhenAnswered() {
        var state = RelayCloseState()
        #expect(
            state.closeReceived(from: .client, code: .normalClosure, payload: Self.bye, boundary: Self.idle)
                == [.stopReading(.client), .sendClose(.upstream, .relay(Self.bye)), .startCloseTimer(.upstream)]
        )
        #expect(!state.mayWrite(to: .upstream))
        #expect(state.mayWrite(to: .client), "answers to the client's earlier messages still reach it")
        // The upstream answers: relayed back; both legs done, both closed.
        #expect(
            state.closeReceived(from: .upstream, code: .normalClosure, payload: Self.bye, boundary: Self.idle)
                == [.stopReading(.upstream), .closeLeg(.upstream), .sendClose(.client, .relay(Self.bye)), .closeLeg(.client), .finish]
        )
        #expect(state.outcome == .init(code: .normalClosure, closedBy: "client"))
        #expect(state.tcpClosed(.client, boundary: Self.idle) == [])
        #expect(state.tcpClosed(.upstream, boundary: Self.idle) == [])
    }

    /// RFC 6455 §5.5.1: the endpoint answering a Close echoes its status code. A peer's Close that the
    /// other leg never answers gets its own code back (before: an empty Close).
    @Test func aPeerCloseTheOtherLegNeverAnswersIsAnsweredWithItsOwnCodeWhenThatLegEnds() {
        var state = RelayCloseState()
        _ = state.closeReceived(from: .client, code: .normalClosure, payload: Self.bye, boundary: Self.idle)
        #expect(
            state.closeTimerFired(.upstream, boundary: Self.idle)
                == [.closeLeg(.upstream), .sendClose(.client, .code(.normalClosure, reason: "")), .closeLeg(.client), .finish]
        )
        // An empty Close is answered with an empty one.
        var empty = RelayCloseState()
        _ = empty.closeReceived(from: .upstream, code: nil, payload: ByteBuffer(), boundary: Self.idle)
        #expect(empty.tcpClosed(.client, boundary: Self.idle) == [.sendClose(.upstream, .code(nil, reason: "")), .closeLeg(.upstream), .finish])
    }

    @Test func anEmptyCloseIsRecordedAs1005() {
        var state = RelayCloseState()
        _ = state.closeReceived(from: .upstream, code: nil, payload: ByteBuffer(), boundary: Self.idle)
        #expect(state.outcome == .init(code: .noStatusReceived, closedBy: "upstream"))
    }

    /// The offender is no longer read, but its Close is held until the upstream's answer to the 1001:
    /// what the upstream sent before it (answers to the client's earlier, valid messages) still reaches
    /// the client (issue #10: nothing lost; Autobahn 3.2, 4.1.3, 5.15…). The upstream's Close is not
    /// relayed: the client gets its own violation code.
    @Test func aClientViolationHoldsItsCloseUntilTheUpstreamAnswers() {
        var state = RelayCloseState()
        let reason = FramesError.Code.invalidUTF8.description
        #expect(
            state.violation(by: .client, error: .invalidUTF8, boundary: Self.idle)
                == [
                    .stopReading(.client), .startGraceTimer(.client), .sendClose(.upstream, .code(.goingAway, reason: "")),
                    .startCloseTimer(.upstream),
                ]
        )
        #expect(state.mayWrite(to: .client), "the upstream's answers still reach the client")
        #expect(state.legs.client.isHeld)
        #expect(
            state.closeReceived(from: .upstream, code: .goingAway, payload: ByteBuffer(), boundary: Self.idle)
                == [
                    .stopReading(.upstream), .closeLeg(.upstream), .sendClose(.client, .code(.invalidPayloadData, reason: reason)),
                    .closeLeg(.client), .finish,
                ]
        )
        #expect(state.outcome == .init(code: .invalidPayloadData, closedBy: "gateway"))
        #expect(state.graceExpired(.client, boundary: Self.idle) == [], "the grace after the release does nothing")
    }

    /// An upstream that only sinks data: the offender gets its Close when the grace ends, not at the
    /// close timeout; the upstream's own timer ends it.
    @Test func aClientViolationNextToASinkingUpstreamGetsItsCloseAtTheGrace() {
        var state = RelayCloseState()
        _ = state.violation(by: .client, error: .unmaskedClientFrame, boundary: Self.idle)
        let reason = FramesError.Code.unmaskedClientFrame.description
        #expect(state.graceExpired(.client, boundary: Self.idle) == [.sendClose(.client, .code(.protocolError, reason: reason)), .closeLeg(.client)])
        #expect(state.closeTimerFired(.upstream) == [.closeLeg(.upstream), .finish])
    }

    @Test func aGraceThatEndsWhileTheUpstreamSendsAFrameWaitsForThatFrameOnly() {
        var state = RelayCloseState()
        let actions = state.violation(by: .client, error: .frameTooLarge, boundary: Self.clientMidFrame)
        #expect(
            actions == [
                .stopReading(.client), .startGraceTimer(.client), .sendClose(.upstream, .code(.goingAway, reason: "")), .startCloseTimer(.upstream),
            ]
        )
        #expect(state.graceExpired(.client, boundary: Self.clientMidFrame) == [.startCloseTimer(.client)], "never a Close inside a frame")
        #expect(state.mayWrite(to: .client), "the rest of the upstream's frame still goes to the client")
        #expect(
            state.frameBoundary(toward: .client)
                == [.sendClose(.client, .code(.messageTooBig, reason: FramesError.Code.frameTooLarge.description)), .closeLeg(.client)]
        )
    }

    @Test func aHeldCloseGoesOutWhenTheOtherLegEnds() {
        var lost = RelayCloseState()
        _ = lost.violation(by: .client, error: .invalidUTF8, boundary: Self.idle)
        let reason = FramesError.Code.invalidUTF8.description
        #expect(
            lost.tcpClosed(.upstream, boundary: Self.idle) == [
                .sendClose(.client, .code(.invalidPayloadData, reason: reason)), .closeLeg(.client), .finish,
            ]
        )

        var timedOut = RelayCloseState()
        _ = timedOut.violation(by: .client, error: .invalidUTF8, boundary: Self.idle)
        #expect(
            timedOut.closeTimerFired(.upstream, boundary: Self.idle)
                == [.closeLeg(.upstream), .sendClose(.client, .code(.invalidPayloadData, reason: reason)), .closeLeg(.client), .finish]
        )
    }

    @Test func aDrainOrIdleTimeoutLeavesAHeldCloseToTheGrace() {
        var state = RelayCloseState()
        _ = state.violation(by: .client, error: .invalidUTF8, boundary: Self.idle)
        #expect(state.gatewayClose(.goingAway, reason: "drain", boundary: Self.idle, timed: false) == [])
        #expect(state.legs.client.isHeld)
    }

    @Test func aRateLimitCloseIsHeldLikeAViolation() {
        var state = RelayCloseState()
        #expect(
            state.policyViolation(by: .client, code: .policyViolation, reason: "rate limit: messages", failed: true, boundary: Self.idle)
                == [
                    .stopReading(.client), .startGraceTimer(.client), .sendClose(.upstream, .code(.goingAway, reason: "")),
                    .startCloseTimer(.upstream),
                ]
        )
        #expect(
            state.graceExpired(.client, boundary: Self.idle) == [
                .sendClose(.client, .code(.policyViolation, reason: "rate limit: messages")), .closeLeg(.client),
            ]
        )
    }

    @Test func aClientViolationInsideItsOwnFrameEndsTheUpstreamWithoutAClose() {
        var state = RelayCloseState()
        let actions = state.violation(by: .client, error: .invalidUTF8, boundary: Self.upstreamMidFrame)
        #expect(actions.contains(.closeLeg(.upstream)))
        // Nothing more can come from the upstream: the client's Close is not held.
        #expect(actions.contains(.sendClose(.client, .code(.invalidPayloadData, reason: FramesError.Code.invalidUTF8.description))))
        #expect(actions.last == .finish)
        #expect(!actions.contains { if case .sendClose(.upstream, _) = $0 { true } else { false } }, "a Close inside the cut frame")
    }

    @Test func anUpstreamViolationGives1014ToTheClientAndItsCodeToTheUpstreamOnceTheClientAnswers() {
        var state = RelayCloseState()
        let reason = FramesError.Code.maskedServerFrame.description
        #expect(
            state.violation(by: .upstream, error: .maskedServerFrame, boundary: Self.idle)
                == [
                    .stopReading(.upstream), .startGraceTimer(.upstream), .sendClose(.client, .code(.badGateway, reason: "")),
                    .startCloseTimer(.client),
                ]
        )
        #expect(
            state.closeReceived(from: .client, code: .badGateway, payload: ByteBuffer(), boundary: Self.idle)
                == [
                    .stopReading(.client), .closeLeg(.client), .sendClose(.upstream, .code(.protocolError, reason: reason)), .closeLeg(.upstream),
                    .finish,
                ]
        )
    }

    @Test func aPolicyViolationThatKeepsTheStreamParsedWaitsForTheOffendersAnswer() {
        var state = RelayCloseState()
        // The frame deadline: the client's frame is half relayed toward the upstream.
        #expect(
            state.policyViolation(by: .client, code: .policyViolation, reason: "frame deadline", failed: false, boundary: Self.upstreamMidFrame)
                == [.sendClose(.client, .code(.policyViolation, reason: "frame deadline")), .startCloseTimer(.client), .startCloseTimer(.upstream)]
        )
        #expect(state.mayWrite(to: .upstream), "the rest of the frame may still come")
        #expect(state.frameBoundary(toward: .upstream) == [.sendClose(.upstream, .code(.goingAway, reason: "")), .startCloseTimer(.upstream)])
        #expect(
            state.closeReceived(from: .client, code: .policyViolation, payload: ByteBuffer(), boundary: Self.idle) == [
                .stopReading(.client), .closeLeg(.client),
            ]
        )
        #expect(
            state.closeReceived(from: .upstream, code: .goingAway, payload: ByteBuffer(), boundary: Self.idle) == [
                .stopReading(.upstream), .closeLeg(.upstream), .finish,
            ]
        )
        #expect(state.outcome == .init(code: .policyViolation, closedBy: "gateway"))
    }

    @Test func aLostUpstreamGivesTheClient1014AndALostClientGivesTheUpstream1001() {
        var upstreamLost = RelayCloseState()
        #expect(
            upstreamLost.tcpClosed(.upstream, boundary: Self.idle)
                == [.sendClose(.client, .code(.badGateway, reason: "upstream lost")), .startCloseTimer(.client)]
        )
        #expect(upstreamLost.outcome == .init(code: .abnormalClosure, closedBy: "upstream"))

        var clientLost = RelayCloseState()
        #expect(
            clientLost.tcpClosed(.client, boundary: Self.idle) == [.sendClose(.upstream, .code(.goingAway, reason: "")), .startCloseTimer(.upstream)]
        )
        #expect(
            clientLost.closeReceived(from: .upstream, code: .goingAway, payload: ByteBuffer(), boundary: Self.idle)
                == [.stopReading(.upstream), .closeLeg(.upstream), .finish]
        )
    }

    @Test func anUpstreamLostMidFrameEndsTheClientWithoutAClose() {
        var state = RelayCloseState()
        #expect(state.tcpClosed(.upstream, boundary: Self.clientMidFrame) == [.stopReading(.client), .closeLeg(.client), .finish])
    }

    @Test func theDrainClosesEachLegAtItsOwnBoundary() {
        var state = RelayCloseState()
        // The client is sending a large frame: the direction toward the upstream is mid-frame.
        #expect(
            state.gatewayClose(.goingAway, reason: "drain", boundary: Self.upstreamMidFrame, timed: false)
                == [.sendClose(.client, .code(.goingAway, reason: "drain")), .startCloseTimer(.client)]
        )
        #expect(state.legs.upstream.isOwed)
        // The client answers at once; its leg ends. The upstream still waits for the frame.
        #expect(
            state.closeReceived(from: .client, code: .goingAway, payload: ByteBuffer(), boundary: Self.upstreamMidFrame) == [
                .stopReading(.client), .closeLeg(.client),
            ]
        )
        #expect(state.frameBoundary(toward: .upstream) == [.sendClose(.upstream, .code(.goingAway, reason: "drain")), .startCloseTimer(.upstream)])
        #expect(
            state.closeReceived(from: .upstream, code: .goingAway, payload: ByteBuffer(), boundary: Self.idle) == [
                .stopReading(.upstream), .closeLeg(.upstream), .finish,
            ]
        )
        #expect(state.gatewayClose(.goingAway, reason: "again", boundary: Self.idle) == [])
    }

    @Test func aKeepAliveTimeoutClosesTheDeadLegAndGivesTheOther1001() {
        var state = RelayCloseState()
        #expect(
            state.keepAliveExpired(.upstream, boundary: Self.idle)
                == [
                    .stopReading(.upstream), .closeLeg(.upstream), .sendClose(.client, .code(.goingAway, reason: "keep-alive timeout")),
                    .startCloseTimer(.client),
                ]
        )
        #expect(state.closeTimerFired(.client) == [.closeLeg(.client), .finish])
        #expect(state.closeTimerFired(.client) == [])
    }

    @Test func aCloseThatCannotBeWrittenClosesTheLeg() {
        var state = RelayCloseState()
        _ = state.gatewayClose(.goingAway, reason: "idle", boundary: Self.idle)
        #expect(state.closeImpossible(.upstream) == [])
        #expect(state.closeTimerFired(.client) == [.closeLeg(.client), .finish])
    }
}
