import Frames
import NIOCore

/// What the gateway writes as its Close frame to a leg.
enum CloseMessage: Equatable {
    /// The gateway's own Close: `code` (`nil`: an empty Close) and `reason`.
    case code(CloseCode?, reason: String)
    /// The other peer's Close payload, relayed unchanged (RFC 6455 §5.5.1: code and reason kept).
    case relay(ByteBuffer)
}

/// The close handshake of **one** leg (one TCP connection to one peer), as a state machine that returns
/// actions and does no I/O (DESIGN §1, "Each leg's Close is independent"; issue #10).
///
/// The rules it encodes:
/// - A Close is only ever written between frames (DESIGN §3): when the gateway decides on a Close while
///   the direction *toward* this leg is in the middle of a frame, the Close is *owed* and goes out at
///   that direction's next frame boundary (``frameBoundary()``), never earlier and never waiting for
///   anything else — in particular not for the other leg's handshake.
/// - After the gateway's Close, the leg's TCP connection ends when the peer's Close arrives
///   (RFC 6455 §7.1.1: the server closes TCP first), or at the close timeout.
/// - A peer that broke the framing (``close(_:atBoundary:failed:timed:)`` with `failed`) cannot be
///   parsed any further, so its answer could never be recognised: its TCP ends as soon as the Close is
///   written (RFC 6455 §7.1.7, "Fail the WebSocket Connection").
/// - A peer that broke the framing while the other leg can still answer is *held* (``hold(_:)``): it is
///   no longer read, but what the other peer sends it (answers to its earlier, valid messages) is still
///   relayed until ``release(atBoundary:)`` — the other peer's Close, the other leg's end, or the short
///   violation grace (``RelayCloseState``).
/// - If the direction toward the leg can never reach a boundary again (its source is gone mid-frame),
///   the leg's TCP ends without a Close (``sourceEnded()``): never a Close inside a frame.
struct RelayLegClose: Equatable {
    enum State: Equatable {
        /// No Close either way.
        case open
        /// The peer's Close arrived; the gateway's answer (usually the other peer's Close) is not
        /// decided yet. Frames may still be written to the leg.
        case closeReceived
        /// The gateway decided on `message`, but the direction toward the leg is mid-frame: frames
        /// still go to the leg until that frame ends, then the Close.
        case closeOwed(CloseMessage, peerClosed: Bool, failed: Bool)
        /// The peer broke the framing and is no longer read; its Close (`message`) is held back while the
        /// other leg may still answer its earlier messages: frames still go to the leg. Released by
        /// ``release(atBoundary:)``, then as a failed Close (TCP ends right after it).
        case closeHeld(CloseMessage)
        /// The gateway's Close was written; the peer's answer is awaited.
        case closeSent
        /// The TCP connection was closed (by the gateway) or lost.
        case closed
    }

    enum Action: Equatable {
        case writeClose(CloseMessage)
        /// (Re)start this leg's close timer (``closeTimerFired()``).
        case startCloseTimer
        /// Close the leg's TCP connection once what was written to it is flushed.
        case closeTCP
        /// Discard what the peer sends from now on; it is still read so that its TCP close is seen.
        case stopReading
    }

    private(set) var state = State.open

    /// Whether frames may still be written toward the leg.
    var mayWrite: Bool {
        switch self.state {
        case .open, .closeReceived, .closeOwed, .closeHeld: true
        case .closeSent, .closed: false
        }
    }

    /// No Close has gone either way (keep-alive pings are only sent then).
    var isOpen: Bool { self.state == .open }

    /// A Close waits for the direction toward the leg to reach a frame boundary.
    var isOwed: Bool {
        if case .closeOwed = self.state { return true }
        return false
    }

    var isClosed: Bool { self.state == .closed }

    /// The peer's violation Close is held back (``hold(_:)``).
    var isHeld: Bool {
        if case .closeHeld = self.state { return true }
        return false
    }

    /// The gateway wants to send `message` to the leg. `atBoundary`: the direction toward the leg is
    /// between frames. `failed`: the peer broke the framing and is no longer parsed. `timed`: start the
    /// close timer even while the Close is owed (a drain leaves it to the drain deadline). The first
    /// Close decided wins; later ones are ignored.
    mutating func close(_ message: CloseMessage, atBoundary: Bool, failed: Bool = false, timed: Bool = true) -> [Action] {
        let peerClosed: Bool
        switch self.state {
        case .open: peerClosed = false
        case .closeReceived: peerClosed = true
        case .closeOwed, .closeHeld, .closeSent, .closed: return []
        }
        let stop: [Action] = failed && !peerClosed ? [.stopReading] : []
        guard atBoundary else {
            self.state = .closeOwed(message, peerClosed: peerClosed, failed: failed)
            return stop + (timed ? [.startCloseTimer] : [])
        }
        return stop + self.write(message, peerClosed: peerClosed, failed: failed)
    }

    /// The peer broke the framing (it is no longer read), but its Close `message` is held back: the other
    /// leg may still be answering the peer's earlier, valid messages, which are relayed to it meanwhile
    /// (issue #10: nothing lost). Only from `open`; otherwise the usual failed ``close(_:atBoundary:failed:timed:)``
    /// applies and this returns `nil`.
    mutating func hold(_ message: CloseMessage) -> [Action]? {
        switch self.state {
        case .open:
            self.state = .closeHeld(message)
            return [.stopReading]
        case .closeReceived, .closeOwed, .closeHeld, .closeSent, .closed:
            return nil
        }
    }

    /// The held Close goes out: now if the direction toward the leg is between frames (then its TCP
    /// ends), else owed until that frame ends, bounded by the close timer.
    mutating func release(atBoundary: Bool) -> [Action] {
        guard case .closeHeld(let message) = self.state else { return [] }
        guard atBoundary else {
            self.state = .closeOwed(message, peerClosed: false, failed: true)
            return [.startCloseTimer]
        }
        return self.write(message, peerClosed: false, failed: true)
    }

    /// The direction toward the leg reached a frame boundary: an owed Close goes out now.
    mutating func frameBoundary() -> [Action] {
        guard case .closeOwed(let message, let peerClosed, let failed) = self.state else { return [] }
        return self.write(message, peerClosed: peerClosed, failed: failed)
    }

    private mutating func write(_ message: CloseMessage, peerClosed: Bool, failed: Bool) -> [Action] {
        if peerClosed || failed {
            self.state = .closed
            return [.writeClose(message), .closeTCP]
        }
        self.state = .closeSent
        return [.writeClose(message), .startCloseTimer]
    }

    /// The peer's (valid) Close arrived.
    mutating func peerClose() -> [Action] {
        switch self.state {
        case .open:
            self.state = .closeReceived
            return [.stopReading]
        case .closeOwed(let message, false, let failed):
            self.state = .closeOwed(message, peerClosed: true, failed: failed)
            return [.stopReading]
        case .closeSent:
            self.state = .closed
            return [.stopReading, .closeTCP]
        case .closeReceived, .closeOwed, .closeHeld, .closed:
            // Held: the peer is no longer read, its Close cannot be seen.
            return []
        }
    }

    /// The close timer ran out: the handshake (or the frame the owed Close waits for) took too long.
    mutating func closeTimerFired() -> [Action] {
        switch self.state {
        case .closeReceived, .closeOwed, .closeSent:
            self.state = .closed
            return [.closeTCP]
        case .open, .closeHeld, .closed:
            // Held: no close timer runs; the violation grace releases it.
            return []
        }
    }

    /// The direction toward the leg stopped mid-frame for good (its source broke or vanished), or the
    /// leg itself is dead: its TCP ends now, without a Close.
    mutating func sourceEnded() -> [Action] {
        guard self.state != .closed else { return [] }
        self.state = .closed
        return [.stopReading, .closeTCP]
    }

    /// The leg's TCP connection is gone. Returns whether that was expected (the peer had sent its Close
    /// or the gateway had closed it or was done with it).
    mutating func tcpClosed() -> Bool {
        let expected: Bool
        switch self.state {
        case .open: expected = false
        case .closeOwed(_, let peerClosed, _): expected = peerClosed
        case .closeReceived, .closeHeld, .closeSent, .closed: expected = true
        }
        self.state = .closed
        return expected
    }
}
