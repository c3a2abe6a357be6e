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

    @Test func aPeerCloseTheOtherLegNeverAnswersIsAnsweredWhenThatLegEnds() {
        var state = RelayCloseState()
        _ = state.closeReceived(from: .client, code: .normalClosure, payload: Self.bye, boundary: Self.idle)
        #expect(
            state.closeTimerFired(.upstream, boundary: Self.idle)
                == [.closeLeg(.upstream), .sendClose(.client, .code(nil, reason: "")), .closeLeg(.client), .finish]
        )
    }

    @Test func anEmptyCloseIsRecordedAs1005() {
        var state = RelayCloseState()
        _ = state.closeReceived(from: .upstream, code: nil, payload: ByteBuffer(), boundary: Self.idle)
        #expect(state.outcome == .init(code: .noStatusReceived, closedBy: "upstream"))
    }

    @Test func aClientViolationClosesTheClientAtOnceWithoutWaitingForTheUpstream() {
        var state = RelayCloseState()
        let reason = FramesError.Code.invalidUTF8.description
        #expect(
            state.violation(by: .client, error: .invalidUTF8, boundary: Self.idle)
                == [
                    .stopReading(.client), .sendClose(.client, .code(.invalidPayloadData, reason: reason)), .closeLeg(.client),
                    .sendClose(.upstream, .code(.goingAway, reason: "")), .startCloseTimer(.upstream),
                ]
        )
        #expect(state.outcome == .init(code: .invalidPayloadData, closedBy: "gateway"))
        // The upstream never answers (it only sinks data): its own timer ends it.
        #expect(state.closeTimerFired(.upstream) == [.closeLeg(.upstream), .finish])
    }

    @Test func aClientViolationWhileTheUpstreamSendsAFrameWaitsForThatFrameOnly() {
        var state = RelayCloseState()
        let actions = state.violation(by: .client, error: .frameTooLarge, boundary: Self.clientMidFrame)
        #expect(actions == [.stopReading(.client), .startCloseTimer(.client), .sendClose(.upstream, .code(.goingAway, reason: "")), .startCloseTimer(.upstream)])
        #expect(state.mayWrite(to: .client), "the rest of the upstream's frame still goes to the client")
        #expect(
            state.frameBoundary(toward: .client)
                == [.sendClose(.client, .code(.messageTooBig, reason: FramesError.Code.frameTooLarge.description)), .closeLeg(.client)]
        )
    }

    @Test func aClientViolationInsideItsOwnFrameEndsTheUpstreamWithoutAClose() {
        var state = RelayCloseState()
        let actions = state.violation(by: .client, error: .invalidUTF8, boundary: Self.upstreamMidFrame)
        #expect(actions.contains(.closeLeg(.upstream)))
        #expect(!actions.contains { if case .sendClose(.upstream, _) = $0 { true } else { false } }, "a Close inside the cut frame")
    }

    @Test func anUpstreamViolationGivesItsCodeToTheUpstreamAnd1014ToTheClient() {
        var state = RelayCloseState()
        let reason = FramesError.Code.maskedServerFrame.description
        #expect(
            state.violation(by: .upstream, error: .maskedServerFrame, boundary: Self.idle)
                == [
                    .stopReading(.upstream), .sendClose(.upstream, .code(.protocolError, reason: reason)), .closeLeg(.upstream),
                    .sendClose(.client, .code(.badGateway, reason: "")), .startCloseTimer(.client),
                ]
        )
        #expect(
            state.closeReceived(from: .client, code: .badGateway, payload: ByteBuffer(), boundary: Self.idle)
                == [.stopReading(.client), .closeLeg(.client), .finish]
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
        #expect(state.closeReceived(from: .client, code: .policyViolation, payload: ByteBuffer(), boundary: Self.idle) == [.stopReading(.client), .closeLeg(.client)])
        #expect(state.closeReceived(from: .upstream, code: .goingAway, payload: ByteBuffer(), boundary: Self.idle) == [.stopReading(.upstream), .closeLeg(.upstream), .finish])
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
        #expect(clientLost.tcpClosed(.client, boundary: Self.idle) == [.sendClose(.upstream, .code(.goingAway, reason: "")), .startCloseTimer(.upstream)])
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
        #expect(state.closeReceived(from: .client, code: .goingAway, payload: ByteBuffer(), boundary: Self.upstreamMidFrame) == [.stopReading(.client), .closeLeg(.client)])
        #expect(state.frameBoundary(toward: .upstream) == [.sendClose(.upstream, .code(.goingAway, reason: "drain")), .startCloseTimer(.upstream)])
        #expect(state.closeReceived(from: .upstream, code: .goingAway, payload: ByteBuffer(), boundary: Self.idle) == [.stopReading(.upstream), .closeLeg(.upstream), .finish])
        #expect(state.gatewayClose(.goingAway, reason: "again", boundary: Self.idle) == [])
    }

    @Test func aKeepAliveTimeoutClosesTheDeadLegAndGivesTheOther1001() {
        var state = RelayCloseState()
        #expect(
            state.keepAliveExpired(.upstream, boundary: Self.idle)
                == [.stopReading(.upstream), .closeLeg(.upstream), .sendClose(.client, .code(.goingAway, reason: "keep-alive timeout")), .startCloseTimer(.client)]
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
