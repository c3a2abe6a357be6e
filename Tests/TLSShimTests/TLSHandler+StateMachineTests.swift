import NIOCore
import Testing

@testable import TLSShim

/// Transitions of ``TLSHandlerStateMachine`` without a channel or OpenSSL (STYLE.md P3).
@Suite struct TLSHandlerStateMachineTests {
    static func active(allowHalfClosure: Bool = false) -> TLSHandlerStateMachine {
        var machine = TLSHandlerStateMachine(allowHalfClosure: allowHalfClosure)
        #expect(machine.channelActive() == .startHandshake)
        #expect(machine.handshakeCompleted() == .fireHandshakeCompleted)
        return machine
    }

    @Test func handshakePath() {
        var machine = TLSHandlerStateMachine(allowHalfClosure: false)
        #expect(machine.write() == .buffer)
        #expect(machine.flush() == .deferUntilHandshakeCompleted)
        #expect(machine.channelActive() == .startHandshake)
        #expect(machine.channelActive() == .none)
        #expect(machine.channelRead() == .continueHandshake)
        #expect(machine.handshakeCompleted() == .fireHandshakeCompleted)
        #expect(machine.state == .active)
        #expect(machine.channelRead() == .decrypt)
        #expect(machine.flush() == .encryptAndFlush)
        #expect(machine.handshakeTimeoutFired() == .none)
    }

    @Test func readBeforeActiveStartsTheHandshake() {
        var machine = TLSHandlerStateMachine(allowHalfClosure: false)
        #expect(machine.channelRead() == .startHandshake)
        #expect(machine.state == .handshaking)
    }

    @Test func failuresDuringTheHandshake() {
        var timedOut = TLSHandlerStateMachine(allowHalfClosure: false)
        _ = timedOut.channelActive()
        #expect(timedOut.handshakeTimeoutFired() == .failAndClose(TLSError(code: .handshakeTimeout, reason: "")))
        #expect(timedOut.state == .closed)
        #expect(timedOut.channelRead() == .discard)
        #expect(timedOut.channelInactive() == .none)

        var eof = TLSHandlerStateMachine(allowHalfClosure: false)
        _ = eof.channelActive()
        #expect(eof.channelInactive() == .failHandshake(TLSError(code: .eofDuringHandshake, reason: "")))

        var inputEOF = TLSHandlerStateMachine(allowHalfClosure: false)
        _ = inputEOF.channelActive()
        #expect(inputEOF.inputEOF() == .failHandshake(TLSError(code: .eofDuringHandshake, reason: "")))

        var reset = TLSHandlerStateMachine(allowHalfClosure: false)
        _ = reset.channelActive()
        #expect(reset.transportFailed("connection reset by peer") == .failHandshake(TLSError(code: .resetDuringHandshake, reason: "")))
        #expect(reset.state == .closed)
        #expect(reset.channelInactive() == .none)
        var established = Self.active()
        #expect(established.transportFailed("connection reset by peer") == .forward)
        #expect(established.state == .active)

        var failed = TLSHandlerStateMachine(allowHalfClosure: false)
        _ = failed.channelActive()
        let error = TLSError(code: .certificateExpired, reason: "certificate has expired")
        #expect(failed.handshakeFailed(error) == .failAndClose(error))
        #expect(failed.write() == .fail(TLSError(code: .writeAfterClose, reason: "")))
    }

    @Test func closeNotifyWithoutHalfClosureIsAnsweredAndCloses() {
        var machine = Self.active()
        #expect(machine.closeNotifyReceived() == .sendCloseNotifyAndClose)
        #expect(machine.state == .closing)
        #expect(machine.channelRead() == .discard)
        #expect(machine.channelInactive() == .none)
    }

    @Test func halfClosureFromThePeer() {
        var machine = Self.active(allowHalfClosure: true)
        #expect(machine.closeNotifyReceived() == .fireInputClosed)
        #expect(machine.state == .inputClosed)
        #expect(machine.write() == .buffer)
        #expect(machine.flush() == .encryptAndFlush)
        #expect(machine.inputEOF() == .none)
        #expect(machine.close(mode: .output) == .sendCloseNotifyThenClose)
        #expect(machine.channelInactive() == .none)
    }

    @Test func halfClosureFromUs() {
        var machine = Self.active()
        #expect(machine.close(mode: .output) == .sendCloseNotifyThenCloseOutput)
        #expect(machine.state == .outputClosed)
        #expect(machine.write() == .fail(TLSError(code: .writeAfterClose, reason: "")))
        #expect(machine.channelRead() == .decrypt)
        #expect(machine.closeNotifyReceived() == .closeChannel)
    }

    @Test func transportLossAfterTheHandshakeIsUnclean() {
        var machine = Self.active()
        #expect(machine.inputEOF() == .reportUncleanShutdownAndForward(TLSError(code: .uncleanShutdown, reason: "")))
        var other = Self.active()
        #expect(other.channelInactive() == .reportUncleanShutdown(TLSError(code: .uncleanShutdown, reason: "")))
    }

    @Test func closeInEachState() {
        var idle = TLSHandlerStateMachine(allowHalfClosure: false)
        #expect(idle.close(mode: .all) == .forward)
        var handshaking = TLSHandlerStateMachine(allowHalfClosure: false)
        _ = handshaking.channelActive()
        #expect(handshaking.close(mode: .all) == .forward)
        var active = Self.active()
        #expect(active.close(mode: .input) == .forward)
        #expect(active.close(mode: .all) == .sendCloseNotifyThenClose)
        #expect(active.close(mode: .all) == .forward)
        #expect(
            active.connectionFailed(TLSError(code: .connectionFailed, reason: "")) == .failAndClose(TLSError(code: .connectionFailed, reason: ""))
        )
        #expect(active.connectionFailed(TLSError(code: .connectionFailed, reason: "")) == .none)
    }
}
