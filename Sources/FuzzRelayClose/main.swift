// libFuzzer harness for the per-leg close state machine (``RelayCloseState`` over two ``RelayLegClose``;
// README, "Fuzzing"). Each input byte is one event of a relayed connection, applied to a model of what
// ``RelaySession`` does around the state machine: the frames each peer sends (header, payload, end), which
// are relayed while the other leg `mayWrite`, peers' Closes (only between their frames), violations
// (anywhere, also mid-frame), policy closes, gateway closes, close and grace timers, keep-alive expiry
// and lost TCP connections. Properties checked after every event (a failed one traps, a bug found):
// 1. **Never a Close inside a frame:** a Close is only written to a leg when no relayed frame toward it
//    is half written, at most one Close per leg, and nothing is written to a leg after its Close or after
//    its TCP connection was closed; 1005, 1006 and 1015 are never written (RFC 6455 §7.4.1).
// 2. **No byte lost:** a peer whose leg is still `open` (it has neither sent nor been sent a Close) is
//    relayed: the other leg `mayWrite`. A frame being relayed toward a leg either ends before that leg's
//    Close, or the leg's TCP connection ends without a Close (its source is gone mid-frame).
// 3. **Liveness:** once both TCP connections are gone, `finish` has been reported, exactly once; a
//    Close that is owed or held always has a timer that ends it (close timer or violation grace), except
//    a drain's (`timed: false`), which its own deadline bounds.
// Gateway types are internal: the harness imports them `@testable` (fuzz builds are debug builds);
// in a release build the file is empty and the program does nothing.
#if DEBUG
import Frames
import NIOCore
@testable import Gateway

private struct Model {
    var state = RelayCloseState()
    /// Per leg: the relayed frame toward it is half written (the session's `unfinishedPayload > 0`).
    var towardMidFrame = PerSide(false)
    /// Per peer: its own stream is inside a frame (its parser's position; Closes only come between frames).
    var sourceMidFrame = PerSide(false)
    /// Per peer: whether the frame it is sending is being relayed (written toward the other leg).
    var relaying = PerSide(false)
    var stoppedReading = PerSide(false)
    var tcpClosedByGateway = PerSide(false)
    var tcpGone = PerSide(false)
    var closeSent = PerSide(false)
    var closeTimer = PerSide(false)
    var graceTimer = PerSide(false)
    var finished = 0
    var lastReceivedPayload = PerSide<ByteBuffer?>(nil)

    var boundary: PerSide<Bool> { PerSide(client: !self.towardMidFrame.client, upstream: !self.towardMidFrame.upstream) }

    /// Whether `side`'s peer can still send bytes the gateway reads.
    func isRead(_ side: Side) -> Bool { !self.stoppedReading[side] && !self.tcpGone[side] && !self.tcpClosedByGateway[side] }

    mutating func perform(_ actions: [RelayCloseState.Action], _ event: String) {
        for action in actions {
            switch action {
            case .sendClose(let side, let message):
                precondition(!self.towardMidFrame[side], "\(event): Close written to \(side) inside a relayed frame")
                precondition(!self.closeSent[side], "\(event): a second Close to \(side)")
                precondition(!self.tcpClosedByGateway[side] && !self.tcpGone[side], "\(event): Close to \(side) after its TCP ended")
                if case .code(let code?, _) = message {
                    precondition(![1005, 1006, 1015].contains(code.rawValue), "\(event): \(code) written in a Close frame")
                }
                self.closeSent[side] = true
            case .stopReading(let side):
                self.stoppedReading[side] = true
                if self.relaying[side] {
                    // The peer's frame can never end toward the other leg now: the session cuts it there
                    // (the state machine must have closed that leg's TCP, checked in `check`).
                    self.relaying[side] = false
                }
            case .startCloseTimer(let side):
                self.closeTimer[side] = true
            case .closeLeg(let side):
                self.tcpClosedByGateway[side] = true
                self.closeTimer[side] = false
            case .startGraceTimer(let side):
                self.graceTimer[side] = true
            case .finish:
                self.finished += 1
                precondition(self.finished == 1, "\(event): finish reported twice")
                precondition(self.state.legs.client.isClosed && self.state.legs.upstream.isClosed, "\(event): finish with a leg open")
            }
        }
    }

    /// Invariants after every event.
    func check(_ event: String) {
        for side in [Side.client, .upstream] {
            let leg = self.state.legs[side]
            if leg.isOpen && self.isRead(side) {
                precondition(self.state.mayWrite(to: side.other), "\(event): \(side) is open and read, but what it sends is dropped")
            }
            if self.closeSent[side] || self.tcpClosedByGateway[side] {
                precondition(!self.state.mayWrite(to: side), "\(event): \(side) may be written after its Close or TCP close")
            }
            // A frame toward `side` that can no longer be finished (not written on, or its source no longer
            // read) ends with the leg's TCP connection, never with a Close after a half frame.
            if self.towardMidFrame[side] && (!self.state.mayWrite(to: side) || !self.isRead(side.other)) && !self.tcpGone[side] {
                precondition(
                    self.tcpClosedByGateway[side] || self.closeTimer[side] || self.state.legs[side].isOwed,
                    "\(event): frame toward \(side) cut, but its leg stays open with nothing to end it"
                )
            }
            switch leg.state {
            case .closeOwed:
                precondition(self.closeTimer[side] || self.drained, "\(event): owed Close to \(side) without a close timer")
            case .closeHeld:
                precondition(self.graceTimer[side], "\(event): held Close of \(side) without a grace timer")
            case .closeSent:
                precondition(self.closeTimer[side] || self.drained, "\(event): Close sent to \(side) without a close timer")
            case .open, .closeReceived, .closed:
                break
            }
        }
        if self.tcpGoneOrClosed(.client) && self.tcpGoneOrClosed(.upstream) {
            precondition(self.finished == 1, "\(event): both connections ended but no finish")
        }
    }

    var drained = false

    func tcpGoneOrClosed(_ side: Side) -> Bool { self.tcpGone[side] || self.tcpClosedByGateway[side] }
}

private let codes: [CloseCode] = [.normalClosure, .goingAway, .protocolError, .invalidPayloadData, .policyViolation, .messageTooBig, .internalError]
private let errors: [FramesError] = [.reservedOpcode, .invalidUTF8, .messageTooLarge, .tooManyFragments, .invalidCompressedData]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRelayClose(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var model = Model()
    for index in 0..<min(size, 256) {
        let byte = data[index]
        let side: Side = byte & 1 == 0 ? .client : .upstream
        let other = side.other
        let arg = Int(byte >> 5)
        let event = "event \(index) (\(byte)): \((byte >> 1) & 0x0F) from \(side)"
        switch (byte >> 1) & 0x0F {
        case 0, 1:
            // `side` sends a frame header (its stream between frames), relayed while the other leg may be written.
            guard model.isRead(side), !model.sourceMidFrame[side] else { continue }
            model.sourceMidFrame[side] = true
            if model.state.mayWrite(to: other) && !model.tcpGoneOrClosed(other) {
                model.relaying[side] = true
                model.towardMidFrame[other] = true
            } else {
                precondition(!model.state.legs[side].isOpen, "\(event): a frame from open \(side) dropped")
            }
        case 2, 3:
            // The end of `side`'s frame (its payload all read): a boundary toward the other leg.
            guard model.isRead(side), model.sourceMidFrame[side] else { continue }
            model.sourceMidFrame[side] = false
            if model.relaying[side] {
                model.relaying[side] = false
                if !model.tcpGoneOrClosed(other) {
                    // The frame was started toward a leg that is still open: it must be able to end there.
                    precondition(model.state.mayWrite(to: other), "\(event): the rest of a relayed frame cannot be written")
                    model.towardMidFrame[other] = false
                    model.perform(model.state.frameBoundary(toward: other, boundary: model.boundary), event)
                }
            }
        case 4:
            // A valid Close from `side`, between its frames.
            guard model.isRead(side), !model.sourceMidFrame[side] else { continue }
            var payload = ByteBuffer()
            let code = arg == 0 ? nil : codes[arg % codes.count]
            if let code { payload.writeInteger(code.rawValue) }
            model.perform(model.state.closeReceived(from: side, code: code, payload: payload, boundary: model.boundary), event)
        case 5:
            // `side` broke the framing (anywhere, also inside a frame: cut-through).
            guard model.isRead(side) else { continue }
            let wasRelaying = model.relaying[side]
            model.perform(model.state.violation(by: side, error: errors[arg % errors.count], boundary: model.boundary), event)
            model.sourceMidFrame[side] = false
            if wasRelaying {
                precondition(model.tcpClosedByGateway[other] || model.tcpGone[other], "\(event): a frame cut mid-way, the leg it went to still open")
            }
        case 6:
            // A policy close of `side`: a rate limit with action close (its read cut) or the frame deadline.
            guard model.isRead(side) else { continue }
            let failed = arg & 1 == 0
            let wasRelaying = model.relaying[side]
            model.perform(
                model.state.policyViolation(by: side, code: .policyViolation, reason: "fuzz", failed: failed, boundary: model.boundary),
                event
            )
            if failed {
                model.stoppedReading[side] = true  // the session discards the rest of its read
                model.sourceMidFrame[side] = false
                if wasRelaying {
                    precondition(
                        model.tcpClosedByGateway[other] || model.tcpGone[other],
                        "\(event): a frame cut mid-way, the leg it went to still open"
                    )
                }
            }
        case 7:
            // The gateway closes (idle, lifetime; arg 0: a drain, untimed).
            let timed = arg != 0
            if !timed { model.drained = true }
            model.perform(model.state.gatewayClose(.goingAway, reason: "fuzz", boundary: model.boundary, timed: timed), event)
        case 8:
            guard model.closeTimer[side], !model.tcpGoneOrClosed(side) else { continue }
            model.closeTimer[side] = false
            model.perform(model.state.closeTimerFired(side, boundary: model.boundary), event)
        case 9:
            guard model.graceTimer[side] else { continue }
            model.graceTimer[side] = false
            model.perform(model.state.graceExpired(side, boundary: model.boundary), event)
        case 10, 11:
            // `side`'s TCP connection is gone (lost, or the end of one the gateway closed).
            guard !model.tcpGone[side] else { continue }
            model.tcpGone[side] = true
            model.closeTimer[side] = false
            if model.relaying[side] {
                // Its frame toward the other leg can never end.
                model.relaying[side] = false
            }
            model.sourceMidFrame[side] = false
            model.perform(model.state.tcpClosed(side, boundary: model.boundary), event)
            // Nothing more is written toward a gone leg: its half frame does not matter any more.
            model.towardMidFrame[side] = false
        case 12:
            // A keep-alive ping to `side` went unanswered (pings only while its leg is open).
            guard model.state.legs[side].isOpen, !model.tcpGoneOrClosed(side) else { continue }
            model.perform(model.state.keepAliveExpired(side, boundary: model.boundary), event)
            model.relaying[side] = false
            model.sourceMidFrame[side] = false
        default:
            continue
        }
        // A relayed frame whose source stopped being read can never end: the leg it goes to must end, at
        // the latest when the source's TCP close the gateway asked for completes (its `tcpClosed`).
        for source in [Side.client, .upstream] where model.towardMidFrame[source.other] && !model.relaying[source] {
            let sourceClosing = model.tcpClosedByGateway[source] && !model.tcpGone[source]
            precondition(
                model.tcpClosedByGateway[source.other] || model.tcpGone[source.other] || sourceClosing,
                "\(event): frame toward \(source.other) abandoned mid-way, the leg still open"
            )
        }
        model.check(event)
    }
    // Liveness: both TCP connections end (closed by peers); `finish` comes exactly once.
    for side in [Side.client, .upstream] where !model.tcpGone[side] {
        model.tcpGone[side] = true
        model.relaying[side] = false
        model.perform(model.state.tcpClosed(side, boundary: model.boundary), "end: \(side) TCP gone")
        model.towardMidFrame[side] = false
    }
    model.check("end")
    return 0
}
#endif
