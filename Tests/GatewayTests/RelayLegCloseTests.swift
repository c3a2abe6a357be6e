import Frames
import NIOCore
import Testing

@testable import Gateway

/// The close handshake of one leg (``RelayLegClose``), every state against every event: the next state and
/// the exact actions (STYLE P3, issue #10).
@Suite struct RelayLegCloseTests {
    typealias State = RelayLegClose.State
    static let drain = CloseMessage.code(.goingAway, reason: "drain")
    static let other = CloseMessage.code(.protocolError, reason: "x")

    /// Reaches `state` through events only.
    static func leg(in state: State) -> RelayLegClose {
        var leg = RelayLegClose()
        switch state {
        case .open: break
        case .closeReceived: _ = leg.peerClose()
        case .closeOwed(let message, let peerClosed, let failed):
            if peerClosed { _ = leg.peerClose() }
            _ = leg.close(message, atBoundary: false, failed: failed)
        case .closeHeld(let message): _ = leg.hold(message)
        case .closeSent: _ = leg.close(Self.drain, atBoundary: true)
        case .closed: _ = leg.sourceEnded()
        }
        #expect(leg.state == state)
        return leg
    }

    static let states: [State] = [
        .open, .closeReceived, .closeOwed(drain, peerClosed: false, failed: false), .closeOwed(drain, peerClosed: true, failed: false),
        .closeOwed(drain, peerClosed: false, failed: true), .closeHeld(drain), .closeSent, .closed,
    ]

    enum Event: CaseIterable {
        case closeAtBoundary, closeMidFrame, failAtBoundary, failMidFrame, closeMidFrameUntimed
        case frameBoundary, peerClose, closeTimer, sourceEnded
        case hold, releaseAtBoundary, releaseMidFrame
    }

    static func apply(_ event: Event, to leg: inout RelayLegClose) -> [RelayLegClose.Action] {
        switch event {
        case .closeAtBoundary: leg.close(Self.other, atBoundary: true)
        case .closeMidFrame: leg.close(Self.other, atBoundary: false)
        case .failAtBoundary: leg.close(Self.other, atBoundary: true, failed: true)
        case .failMidFrame: leg.close(Self.other, atBoundary: false, failed: true)
        case .closeMidFrameUntimed: leg.close(Self.other, atBoundary: false, timed: false)
        case .frameBoundary: leg.frameBoundary()
        case .peerClose: leg.peerClose()
        case .closeTimer: leg.closeTimerFired()
        case .sourceEnded: leg.sourceEnded()
        case .hold: leg.hold(Self.other) ?? []
        case .releaseAtBoundary: leg.release(atBoundary: true)
        case .releaseMidFrame: leg.release(atBoundary: false)
        }
    }

    /// What each event does in each state.
    static func expected(_ state: State, _ event: Event) -> (State, [RelayLegClose.Action]) {
        let owedOther = { (peerClosed: Bool, failed: Bool) in State.closeOwed(Self.other, peerClosed: peerClosed, failed: failed) }
        switch (state, event) {
        case (.closed, _): return (.closed, [])
        case (_, .sourceEnded): return (.closed, [.stopReading, .closeTCP])
        // Held (an offender whose Close waits for the other leg's answer or the grace): only a release
        // moves it; the Close then goes out as a failed one, now or owed until the frame toward it ends.
        case (.open, .hold): return (.closeHeld(Self.other), [.stopReading])
        case (.closeHeld, .releaseAtBoundary): return (.closed, [.writeClose(Self.drain), .closeTCP])
        case (.closeHeld, .releaseMidFrame): return (.closeOwed(Self.drain, peerClosed: false, failed: true), [.startCloseTimer])
        case (.closeHeld, _): return (state, [])
        case (_, .hold), (_, .releaseAtBoundary), (_, .releaseMidFrame): return (state, [])
        // Open: the first Close decided goes out at the boundary, or is owed until it.
        case (.open, .closeAtBoundary): return (.closeSent, [.writeClose(Self.other), .startCloseTimer])
        case (.open, .closeMidFrame): return (owedOther(false, false), [.startCloseTimer])
        case (.open, .closeMidFrameUntimed): return (owedOther(false, false), [])
        case (.open, .failAtBoundary): return (.closed, [.stopReading, .writeClose(Self.other), .closeTCP])
        case (.open, .failMidFrame): return (owedOther(false, true), [.stopReading, .startCloseTimer])
        case (.open, .peerClose): return (.closeReceived, [.stopReading])
        case (.open, .frameBoundary), (.open, .closeTimer): return (.open, [])
        // The peer closed: the gateway's answer ends the leg as soon as it is written.
        case (.closeReceived, .closeAtBoundary), (.closeReceived, .failAtBoundary):
            return (.closed, [.writeClose(Self.other), .closeTCP])
        case (.closeReceived, .closeMidFrame), (.closeReceived, .failMidFrame):
            return (owedOther(true, event == .failMidFrame), [.startCloseTimer])
        case (.closeReceived, .closeMidFrameUntimed): return (owedOther(true, false), [])
        case (.closeReceived, .closeTimer): return (.closed, [.closeTCP])
        case (.closeReceived, .frameBoundary), (.closeReceived, .peerClose): return (.closeReceived, [])
        // Owed: the boundary writes it; then the answer (or, failed or answered already, the TCP close).
        case (.closeOwed(_, false, false), .frameBoundary): return (.closeSent, [.writeClose(Self.drain), .startCloseTimer])
        case (.closeOwed(_, _, _), .frameBoundary): return (.closed, [.writeClose(Self.drain), .closeTCP])
        case (.closeOwed(let message, false, let failed), .peerClose):
            return (.closeOwed(message, peerClosed: true, failed: failed), [.stopReading])
        case (.closeOwed, .peerClose): return (state, [])
        case (.closeOwed, .closeTimer): return (.closed, [.closeTCP])
        case (.closeOwed, _): return (state, [])  // the first Close decided wins
        // Sent: the answer or the timer ends the leg.
        case (.closeSent, .peerClose): return (.closed, [.stopReading, .closeTCP])
        case (.closeSent, .closeTimer): return (.closed, [.closeTCP])
        case (.closeSent, _): return (.closeSent, [])
        }
    }

    @Test(arguments: Self.states.indices)
    func everyEventInEveryState(_ index: Int) {
        let state = Self.states[index]
        for event in Event.allCases {
            var leg = Self.leg(in: state)
            let actions = Self.apply(event, to: &leg)
            let (next, expectedActions) = Self.expected(state, event)
            #expect(actions == expectedActions, "\(state) + \(event)")
            #expect(leg.state == next, "\(state) + \(event)")
        }
    }

    @Test func mayWriteUntilTheCloseIsWritten() {
        #expect(Self.states.map { Self.leg(in: $0).mayWrite } == [true, true, true, true, true, true, false, false])
        #expect(Self.states.map { Self.leg(in: $0).isOpen } == [true, false, false, false, false, false, false, false])
        #expect(Self.states.map { Self.leg(in: $0).isHeld } == [false, false, false, false, false, true, false, false])
    }

    @Test func onlyAnOpenLegCanBeHeld() {
        for state in Self.states {
            var leg = Self.leg(in: state)
            #expect((leg.hold(Self.other) != nil) == (state == .open), "\(state)")
        }
    }

    @Test func aTCPCloseIsExpectedOnceAnyCloseWentEitherWay() {
        let expected = [false, true, false, true, false, true, true, true]
        for (state, wasExpected) in zip(Self.states, expected) {
            var leg = Self.leg(in: state)
            #expect(leg.tcpClosed() == wasExpected, "\(state)")
            #expect(leg.state == .closed)
        }
    }
}
