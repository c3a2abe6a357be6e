import Frames
import NIOCore

/// The close handshakes of a relayed connection (DESIGN §1 close-code table, §3 "Close"): one
/// ``RelayLegClose`` per leg, and the rules that tie an event on one leg to the other, as a state machine
/// that returns actions; ``RelaySession`` performs them.
///
/// Each leg closes on its own (issue #10): the gateway's Close to a leg goes out as soon as the direction
/// *toward that leg* is at a frame boundary, whatever the other leg is doing, and the leg's TCP
/// connection ends when that Close is answered (or at once after it when the peer broke the framing, or
/// at the close timeout). Every event takes `boundary`: per leg, whether the direction toward it is
/// between frames now.
///
/// - A valid Close from one peer is relayed to the other unchanged (code and reason), unless the gateway
///   already decided on its own Close for that leg; the answer is relayed back the same way.
/// - A peer that breaks the protocol (1002/1007/1009, or a rate limit with `action: close`) is no longer
///   read; the other leg gets 1001 (the client offended) or 1014 (the upstream offended) at its boundary.
///   The offender's own Close is *held* while the other leg may still answer the offender's earlier,
///   valid messages, which are relayed to it meanwhile (nothing lost): it goes out at the next boundary
///   toward the offender when the other peer's Close arrives (not relayed), the other leg ends, or the
///   short violation grace (``startGraceTimer(_:)``, ``graceExpired(_:boundary:)``) runs out, whichever
///   comes first. The frame deadline (1008) keeps the offender parsed: it gets its Close at once.
/// - A leg whose TCP connection is lost without a Close: the other leg gets 1014 (upstream lost) or 1001.
/// - A source that is gone mid-frame can never finish that frame toward the other leg: the other leg's
///   TCP ends without a Close (never a Close inside a frame).
/// - 1006 and 1015 are never written in a Close frame (RFC 6455 §7.4.1).
struct RelayCloseState {
    /// Who ended the connection and with which code, for the access log.
    struct Outcome: Equatable {
        var code: CloseCode?
        var closedBy: String
    }

    enum Action: Equatable {
        /// Write a Close frame to `side` (the direction toward it is between frames).
        case sendClose(Side, CloseMessage)
        /// Discard what `side` sends from now on; it is still read, so that its TCP close is seen.
        case stopReading(Side)
        /// (Re)start `side`'s close timer; when it fires, call ``closeTimerFired(_:)``.
        case startCloseTimer(Side)
        /// Close `side`'s TCP connection once what was written to it is flushed.
        case closeLeg(Side)
        /// Start the violation grace for `side`, whose Close is held; when it ends, call
        /// ``graceExpired(_:boundary:)``.
        case startGraceTimer(Side)
        /// Both legs are closed: report the outcome.
        case finish
    }

    private(set) var legs = PerSide(RelayLegClose())
    private(set) var outcome: Outcome?
    private var finished = false
    /// Per leg, the code of the Close its peer sent (`nil`: none, or an empty Close): a Close the other
    /// leg never answers is answered with it (RFC 6455 §5.5.1: the endpoint echoes the status code).
    private var receivedCodes = PerSide<CloseCode?>(nil)

    /// Whether frames may still be written to `side` (no Close sent to it yet, its TCP still open).
    func mayWrite(to side: Side) -> Bool { self.legs[side].mayWrite }

    /// A valid Close frame arrived from `side`, with `payload` (relayed as it is).
    mutating func closeReceived(from side: Side, code: CloseCode?, payload: ByteBuffer, boundary: PerSide<Bool>) -> [Action] {
        self.record(code: code ?? .noStatusReceived, by: side.rawValue)
        if self.legs[side].state == .open { self.receivedCodes[side] = code }
        let other = side.other
        // Relayed unless the gateway already has its own Close for the other leg (then this Close is the
        // answer to the gateway's Close to `side`, or comes too late to matter).
        let relay: Bool
        switch self.legs[other].state {
        case .open, .closeReceived: relay = true
        case .closeOwed, .closeHeld, .closeSent, .closed: relay = false
        }
        var actions = Self.map(self.legs[side].peerClose(), side)
        if relay {
            actions += Self.map(self.legs[other].close(.relay(payload), atBoundary: boundary[other]), other)
        } else if self.legs[other].isHeld {
            // The answer to the 1001/1014 the gateway sent: everything this peer sent the offender
            // before it has been relayed. The offender gets its own Close now, not this one.
            actions += Self.map(self.legs[other].release(atBoundary: boundary[other]), other)
        }
        return actions + self.progress(boundary)
    }

    /// `side` broke the protocol with `error` (its stream can no longer be parsed).
    mutating func violation(by side: Side, error: FramesError, boundary: PerSide<Bool>) -> [Action] {
        self.record(code: error.closeCode, by: "gateway")
        let toOther: CloseCode = side == .client ? .goingAway : .badGateway
        return self.offended(by: side, .code(error.closeCode, reason: error.code.description), failed: true, other: toOther, boundary: boundary)
    }

    /// `side` broke a policy after the handshake: a rate limit with `action: close` (its read was cut:
    /// `failed`) or the frame deadline (it is still parsed, so its answer is seen). It gets `code` (1008),
    /// the other leg 1001.
    mutating func policyViolation(by side: Side, code: CloseCode, reason: String, failed: Bool, boundary: PerSide<Bool>) -> [Action] {
        self.record(code: code, by: "gateway")
        return self.offended(by: side, .code(code, reason: reason), failed: failed, other: .goingAway, boundary: boundary)
    }

    private mutating func offended(by side: Side, _ message: CloseMessage, failed: Bool, other: CloseCode, boundary: PerSide<Bool>) -> [Action] {
        var actions: [Action] = []
        if failed && !boundary[side.other] {
            // The offender's frame toward the other leg is cut: that leg can only be closed, and nothing
            // more can come from it for the offender, whose Close goes out at once.
            actions += Self.map(self.legs[side].close(message, atBoundary: boundary[side], failed: true), side)
            actions += Self.map(self.legs[side.other].sourceEnded(), side.other)
            return actions + self.progress(boundary)
        }
        if failed, let held = self.legs[side].hold(message) {
            // The other peer may still be answering the offender's earlier messages: they are relayed
            // until its Close comes, its leg ends or the grace runs out.
            actions += Self.map(held, side) + [.startGraceTimer(side)]
        } else {
            actions += Self.map(self.legs[side].close(message, atBoundary: boundary[side], failed: failed), side)
        }
        actions += Self.map(self.legs[side.other].close(.code(other, reason: ""), atBoundary: boundary[side.other]), side.other)
        return actions + self.progress(boundary)
    }

    /// The violation grace of `side` ran out: its held Close goes out at the next boundary toward it
    /// (now, or after the frame being relayed to it, bounded by the close timer).
    mutating func graceExpired(_ side: Side, boundary: PerSide<Bool>) -> [Action] {
        Self.map(self.legs[side].release(atBoundary: boundary[side]), side) + self.progress(boundary)
    }

    /// The gateway ends the connection itself (idle timeout, maximum lifetime, drain): `code` to each
    /// leg at its own frame boundary. `timed`: an owed Close is bounded by the close timeout (a drain
    /// leaves that to its own deadline).
    mutating func gatewayClose(_ code: CloseCode, reason: String, boundary: PerSide<Bool>, timed: Bool = true) -> [Action] {
        self.record(code: code, by: "gateway")
        var actions: [Action] = []
        for side in [Side.client, .upstream] {
            actions += Self.map(self.legs[side].close(.code(code, reason: reason), atBoundary: boundary[side], timed: timed), side)
        }
        return actions + self.progress(boundary)
    }

    /// The direction toward `side` reached a frame boundary: an owed Close goes out.
    mutating func frameBoundary(toward side: Side, boundary: PerSide<Bool> = PerSide(true)) -> [Action] {
        Self.map(self.legs[side].frameBoundary(), side) + self.progress(boundary)
    }

    mutating func closeTimerFired(_ side: Side, boundary: PerSide<Bool> = PerSide(true)) -> [Action] {
        Self.map(self.legs[side].closeTimerFired(), side) + self.progress(boundary)
    }

    /// `side`'s TCP connection is gone. If it had not closed properly, the other leg gets 1014 (upstream
    /// lost) or 1001 (client lost); if it was mid-frame toward the other leg, that leg can only be closed.
    mutating func tcpClosed(_ side: Side, boundary: PerSide<Bool>) -> [Action] {
        let expected = self.legs[side].tcpClosed()
        if !expected { self.record(code: .abnormalClosure, by: side.rawValue) }
        return self.lost(side, expected: expected, reason: side == .upstream ? "upstream lost" : "", boundary: boundary)
    }

    /// A keep-alive ping to `side` went unanswered: `side` is dead. Its connection is closed at once (no
    /// Close: it would not be read) and the other leg gets 1001 (DESIGN §1: "idle/ping timeout on one
    /// leg").
    mutating func keepAliveExpired(_ side: Side, boundary: PerSide<Bool>) -> [Action] {
        self.record(code: .goingAway, by: "gateway")
        let actions = Self.map(self.legs[side].sourceEnded(), side)
        return actions + self.lost(side, expected: false, reason: "keep-alive timeout", code: .goingAway, boundary: boundary)
    }

    private mutating func lost(_ side: Side, expected: Bool, reason: String, code: CloseCode? = nil, boundary: PerSide<Bool>) -> [Action] {
        let other = side.other
        var actions: [Action] = []
        if !boundary[other] {
            actions += Self.map(self.legs[other].sourceEnded(), other)
        } else if !expected {
            let code = code ?? (side == .upstream ? .badGateway : .goingAway)
            actions += Self.map(self.legs[other].close(.code(code, reason: reason), atBoundary: true), other)
        }
        return actions + self.progress(boundary)
    }

    /// A Close could not be written (the direction toward `side` was mid-frame after all); its TCP
    /// connection is being closed instead.
    mutating func closeImpossible(_ side: Side, boundary: PerSide<Bool> = PerSide(true)) -> [Action] {
        _ = self.legs[side].sourceEnded()
        return self.progress(boundary)
    }

    private mutating func progress(_ boundary: PerSide<Bool>) -> [Action] {
        var actions: [Action] = []
        for side in [Side.client, .upstream] where self.legs[side.other].isClosed {
            if self.legs[side].state == .closeReceived {
                // `side`'s Close waited for the other peer's answer, which will never come now (the other
                // leg timed out or ended): it is answered with its own code (RFC 6455 §5.5.1: the
                // endpoint echoes the status code it received), or an empty Close for an empty one.
                actions += Self.map(self.legs[side].close(.code(self.receivedCodes[side], reason: ""), atBoundary: boundary[side]), side)
            } else if self.legs[side].isHeld {
                // Nothing more can come for the offender from the other leg: its held Close goes out.
                actions += Self.map(self.legs[side].release(atBoundary: boundary[side]), side)
            }
        }
        guard !self.finished, self.legs.client.isClosed, self.legs.upstream.isClosed else { return actions }
        self.finished = true
        return actions + [.finish]
    }

    private static func map(_ actions: [RelayLegClose.Action], _ side: Side) -> [Action] {
        actions.map { action in
            switch action {
            case .writeClose(let message): .sendClose(side, message)
            case .startCloseTimer: .startCloseTimer(side)
            case .closeTCP: .closeLeg(side)
            case .stopReading: .stopReading(side)
            }
        }
    }

    private mutating func record(code: CloseCode, by: String) {
        if self.outcome == nil { self.outcome = Outcome(code: code, closedBy: by) }
    }
}
