import Frames
import Testing

@testable import Gateway

/// The close handshake across both legs, as pure transitions (STYLE P3): each input and the exact actions.
@Suite struct RelayCloseStateTests {
    @Test func aClientCloseIsRelayedAndEachLegClosesWhenDone() {
        var state = RelayCloseState()
        #expect(state.closeReceived(from: .client, code: .normalClosure) == [.stopReading(.client), .relayClose(to: .upstream), .startCloseTimer])
        #expect(!state.mayWrite(to: .upstream))
        #expect(state.mayWrite(to: .client))
        // The upstream answers: relayed back; both legs done, both closed.
        #expect(
            state.closeReceived(from: .upstream, code: .normalClosure)
                == [.stopReading(.upstream), .relayClose(to: .client), .closeLeg(.client), .closeLeg(.upstream), .finish]
        )
        #expect(state.outcome == .init(code: .normalClosure, closedBy: "client"))
        // The TCP closes that follow are expected: nothing more happens.
        #expect(state.tcpClosed(.client) == [])
        #expect(state.tcpClosed(.upstream) == [])
    }

    @Test func anEmptyCloseIsRecordedAs1005() {
        var state = RelayCloseState()
        _ = state.closeReceived(from: .upstream, code: nil)
        #expect(state.outcome == .init(code: .noStatusReceived, closedBy: "upstream"))
    }

    @Test func aClientViolationClosesTheUpstreamFirstAndOwesTheClientItsCode() {
        var state = RelayCloseState()
        #expect(state.violation(by: .client, error: .invalidUTF8) == [.stopReading(.client), .sendClose(.upstream, .goingAway, reason: ""), .startCloseTimer])
        // Until the upstream closes, its frames still reach the client (answers to earlier messages).
        #expect(state.mayWrite(to: .client))
        #expect(
            state.closeReceived(from: .upstream, code: .goingAway)
                == [
                    .stopReading(.upstream), .sendClose(.client, .invalidPayloadData, reason: FramesError.Code.invalidUTF8.description),
                    .closeLeg(.client), .closeLeg(.upstream), .finish,
                ]
        )
        #expect(state.outcome == .init(code: .invalidPayloadData, closedBy: "gateway"))
    }

    @Test func theOwedCloseIsSentWhenTheUpstreamVanishesOrTheTimerFires() {
        var vanished = RelayCloseState()
        _ = vanished.violation(by: .client, error: .reservedOpcode)
        #expect(vanished.tcpClosed(.upstream) == [.sendClose(.client, .protocolError, reason: FramesError.Code.reservedOpcode.description), .closeLeg(.client), .finish])

        var silent = RelayCloseState()
        _ = silent.violation(by: .client, error: .frameTooLarge)
        #expect(silent.closeTimerFired() == [.sendClose(.client, .messageTooBig, reason: FramesError.Code.frameTooLarge.description), .finish])
    }

    @Test func anUpstreamViolationGivesItsCodeToTheUpstreamAnd1014ToTheClient() {
        var state = RelayCloseState()
        #expect(
            state.violation(by: .upstream, error: .maskedServerFrame)
                == [
                    .stopReading(.upstream), .sendClose(.upstream, .protocolError, reason: FramesError.Code.maskedServerFrame.description),
                    .sendClose(.client, .badGateway, reason: ""), .closeLeg(.upstream), .startCloseTimer,
                ]
        )
        #expect(state.closeReceived(from: .client, code: .badGateway) == [.stopReading(.client), .closeLeg(.client), .finish])
    }

    @Test func aLostUpstreamGivesTheClient1014AndALostClientGivesTheUpstream1001() {
        var upstreamLost = RelayCloseState()
        #expect(upstreamLost.tcpClosed(.upstream) == [.sendClose(.client, .badGateway, reason: "upstream lost"), .startCloseTimer])
        #expect(upstreamLost.outcome == .init(code: .abnormalClosure, closedBy: "upstream"))

        var clientLost = RelayCloseState()
        #expect(clientLost.tcpClosed(.client) == [.sendClose(.upstream, .goingAway, reason: ""), .startCloseTimer])
        #expect(clientLost.closeReceived(from: .upstream, code: .goingAway) == [.stopReading(.upstream), .closeLeg(.upstream), .finish])
    }

    @Test func aGatewayCloseGoesToBothLegsOnce() {
        var state = RelayCloseState()
        #expect(state.gatewayClose(.goingAway, reason: "idle timeout") == [.sendClose(.client, .goingAway, reason: "idle timeout"), .sendClose(.upstream, .goingAway, reason: "idle timeout"), .startCloseTimer])
        #expect(state.gatewayClose(.goingAway, reason: "again") == [])
        #expect(state.closeTimerFired() == [.finish])
        #expect(state.closeTimerFired() == [])
    }

    @Test func aCloseThatCannotBeWrittenClosesTheLeg() {
        var state = RelayCloseState()
        _ = state.violation(by: .client, error: .invalidUTF8)
        // The client's bad frame was half relayed: no Close can go upstream, its TCP is closed instead.
        #expect(state.closeImpossible(.upstream) == [.sendClose(.client, .invalidPayloadData, reason: FramesError.Code.invalidUTF8.description), .closeLeg(.client), .finish])
        #expect(state.tcpClosed(.upstream) == [])
    }
}
