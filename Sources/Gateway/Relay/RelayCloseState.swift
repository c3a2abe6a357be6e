import Frames

/// Which leg of a connection.
enum Side: String, Sendable, Hashable {
    case client
    case upstream

    var other: Side { self == .client ? .upstream : .client }
}

/// The close handshake across both legs (DESIGN §1 close-code table, §3 "Close"), as a state machine
/// that returns actions. The session performs them.
///
/// A leg is *done* when a Close has gone both ways on it, or its TCP connection is gone. When both legs
/// are done, or the close timeout fires, both connections are closed.
struct RelayCloseState {
    struct Leg {
        var closeSent = false
        var closeReceived = false
        var tcpClosed = false
        var isDone: Bool { self.tcpClosed || (self.closeSent && self.closeReceived) }
    }

    /// Who ended the connection and with which code, for the access log.
    struct Outcome: Equatable {
        var code: CloseCode?
        var closedBy: String
    }

    enum Action: Equatable {
        /// Write a Close frame to `side` (at a frame boundary; if that is impossible, close its TCP).
        case sendClose(Side, CloseCode?, reason: String)
        /// Relay the peer's Close payload verbatim.
        case relayClose(to: Side)
        /// Stop reading from `side` (it failed, or sent a Close: nothing after it is forwarded).
        case stopReading(Side)
        case startCloseTimer
        case closeBoth
    }

    private(set) var legs: [Side: Leg] = [.client: Leg(), .upstream: Leg()]
    private(set) var outcome: Outcome?
    private var timerStarted = false
    private var finished = false

    /// Whether frames may still be written to `side` (no Close sent to it yet).
    func mayWrite(to side: Side) -> Bool { !self.legs[side]!.closeSent && !self.legs[side]!.tcpClosed }

    /// A valid Close frame arrived from `side`.
    mutating func closeReceived(from side: Side, code: CloseCode?) -> [Action] {
        self.record(code: code ?? .noStatusReceived, by: side.rawValue)
        self.legs[side]!.closeReceived = true
        var actions: [Action] = [.stopReading(side)]
        if self.mayWrite(to: side.other) {
            self.legs[side.other]!.closeSent = true
            actions.append(.relayClose(to: side.other))
        }
        return actions + self.progress()
    }

    /// `side` broke the protocol: Close with `error.closeCode` to it, and 1001 (client side) or 1014
    /// (the upstream offended) to the other leg.
    mutating func violation(by side: Side, error: FramesError) -> [Action] {
        self.record(code: error.closeCode, by: "gateway")
        var actions: [Action] = [.stopReading(side)]
        if self.mayWrite(to: side) {
            self.legs[side]!.closeSent = true
            actions.append(.sendClose(side, error.closeCode, reason: error.code.description))
        }
        // The offender gets no more time: its leg is done once our Close is out.
        self.legs[side]!.closeReceived = true
        if self.mayWrite(to: side.other) {
            self.legs[side.other]!.closeSent = true
            actions.append(.sendClose(side.other, side == .client ? .goingAway : .badGateway, reason: ""))
        }
        return actions + self.progress()
    }

    /// The gateway ends the connection itself (idle timeout, drain): Close with `code` to both legs.
    mutating func gatewayClose(_ code: CloseCode, reason: String) -> [Action] {
        self.record(code: code, by: "gateway")
        var actions: [Action] = []
        for side in [Side.client, .upstream] where self.mayWrite(to: side) {
            self.legs[side]!.closeSent = true
            actions.append(.sendClose(side, code, reason: reason))
        }
        return actions + self.progress()
    }

    /// `side`'s TCP connection is gone. If it had not closed properly, the other leg gets 1014 (upstream
    /// lost) or 1001 (client lost).
    mutating func tcpClosed(_ side: Side) -> [Action] {
        let wasClean = self.legs[side]!.closeReceived
        self.legs[side]!.tcpClosed = true
        var actions: [Action] = []
        if !wasClean {
            self.record(code: .abnormalClosure, by: side.rawValue)
            if self.mayWrite(to: side.other) {
                self.legs[side.other]!.closeSent = true
                actions.append(.sendClose(side.other, side == .upstream ? .badGateway : .goingAway, reason: side == .upstream ? "upstream lost" : ""))
            }
        }
        return actions + self.progress()
    }

    /// A Close could not be written at a frame boundary (the leg was mid-frame); its TCP is closed instead.
    mutating func closeImpossible(_ side: Side) {
        self.legs[side]!.tcpClosed = true
    }

    mutating func closeTimerFired() -> [Action] {
        self.finishIfNeeded()
    }

    private mutating func progress() -> [Action] {
        if self.legs[.client]!.isDone && self.legs[.upstream]!.isDone {
            return self.finishIfNeeded()
        }
        if !self.timerStarted {
            self.timerStarted = true
            return [.startCloseTimer]
        }
        return []
    }

    private mutating func finishIfNeeded() -> [Action] {
        guard !self.finished else { return [] }
        self.finished = true
        return [.closeBoth]
    }

    private mutating func record(code: CloseCode, by: String) {
        if self.outcome == nil { self.outcome = Outcome(code: code, closedBy: by) }
    }
}
