import NIOCore

/// The states of a ``TLSHandler`` and the decisions taken in each (STYLE.md P3): one `mutating func`
/// per input event, each returning an action that the handler performs. The machine never touches the
/// channel, OpenSSL or the clock, so every transition is unit-tested on its own.
///
/// ```
/// idle ─active─▶ handshaking ─complete─▶ active ─close_notify in─▶ inputClosed ─close─▶ closing
///                     │                    │  └─close(.output)──▶ outputClosed ─close_notify in─▶ closing
///                     └─fail/timeout/EOF/reset─▶ closed ◀── channelInactive (from any state)
/// ```
struct TLSHandlerStateMachine {
    enum State: Equatable {
        /// Added to a channel that is not active yet.
        case idle
        /// Handshake in progress; writes are buffered.
        case handshaking
        /// Established in both directions.
        case active
        /// The peer sent `close_notify` (RFC 8446 §6.1) and half-closure is allowed: we may still write.
        case inputClosed
        /// We sent `close_notify` after `close(mode: .output)`; we still read.
        case outputClosed
        /// We sent `close_notify` for a full close; the channel is closing.
        case closing
        /// Failed or closed; nothing more goes through.
        case closed
    }

    private(set) var state: State = .idle
    /// Whether the channel allows half-closure (the peer's `close_notify` becomes `inputClosed`).
    let allowHalfClosure: Bool

    init(allowHalfClosure: Bool) {
        self.allowHalfClosure = allowHalfClosure
    }

    // MARK: Channel lifecycle

    enum ChannelActiveAction: Equatable {
        /// Start the handshake: arm the deadline, call `SSL_do_handshake` (a client sends its hello).
        case startHandshake
        case none
    }

    /// The channel became active (or the handler was added to an active channel).
    mutating func channelActive() -> ChannelActiveAction {
        switch self.state {
        case .idle:
            self.state = .handshaking
            return .startHandshake
        case .handshaking, .active, .inputClosed, .outputClosed, .closing, .closed:
            // Both `handlerAdded` on an active channel and `channelActive` may report it.
            return .none
        }
    }

    enum ChannelInactiveAction: Equatable {
        /// The transport went away mid-handshake: fail with ``TLSError/Code/eofDuringHandshake``.
        case failHandshake(TLSError)
        /// The transport went away without `close_notify` after the handshake (possible truncation).
        case reportUncleanShutdown(TLSError)
        case none
    }

    /// The channel became inactive. The handler forwards `channelInactive` after the action.
    mutating func channelInactive() -> ChannelInactiveAction {
        let previous = self.state
        self.state = .closed
        switch previous {
        case .handshaking:
            return .failHandshake(TLSError(code: .eofDuringHandshake, reason: "connection closed during the TLS handshake"))
        case .active, .outputClosed:
            return .reportUncleanShutdown(
                TLSError(code: .uncleanShutdown, reason: "connection closed without close_notify")
            )
        case .idle, .inputClosed, .closing, .closed:
            return .none
        }
    }

    enum InputEOFAction: Equatable {
        case failHandshake(TLSError)
        /// TCP input closed without `close_notify`: report it, then forward `inputClosed`.
        case reportUncleanShutdownAndForward(TLSError)
        /// Forward `ChannelEvent.inputClosed` unchanged.
        case forward
        case none
    }

    /// The transport's input closed (TCP FIN with half-closure enabled on the socket).
    mutating func inputEOF() -> InputEOFAction {
        switch self.state {
        case .idle:
            return .forward
        case .handshaking:
            self.state = .closed
            return .failHandshake(TLSError(code: .eofDuringHandshake, reason: "input closed during the TLS handshake"))
        case .active:
            self.state = .inputClosed
            return .reportUncleanShutdownAndForward(
                TLSError(code: .uncleanShutdown, reason: "input closed without close_notify")
            )
        case .outputClosed:
            self.state = .closing
            return .reportUncleanShutdownAndForward(
                TLSError(code: .uncleanShutdown, reason: "input closed without close_notify")
            )
        case .inputClosed, .closing, .closed:
            // After close_notify we already told the pipeline that input is closed.
            return .none
        }
    }

    // MARK: Inbound

    enum ChannelReadAction: Equatable {
        case startHandshake
        case continueHandshake
        case decrypt
        /// Ciphertext after close_notify or after failure is dropped (RFC 8446 §6.1: data after
        /// close_notify is ignored).
        case discard
    }

    /// Ciphertext arrived (the handler has already handed it to OpenSSL unless the action is `.discard`).
    mutating func channelRead() -> ChannelReadAction {
        switch self.state {
        case .idle:
            self.state = .handshaking
            return .startHandshake
        case .handshaking:
            return .continueHandshake
        case .active, .outputClosed:
            return .decrypt
        case .inputClosed, .closing, .closed:
            return .discard
        }
    }

    enum HandshakeCompletedAction: Equatable {
        /// Cancel the deadline, fire `TLSUserEvent.handshakeCompleted`, encrypt buffered writes (and flush
        /// them if a flush was requested), then decrypt application data that came with the last flight.
        case fireHandshakeCompleted
    }

    mutating func handshakeCompleted() -> HandshakeCompletedAction {
        switch self.state {
        case .handshaking:
            self.state = .active
            return .fireHandshakeCompleted
        case .idle, .active, .inputClosed, .outputClosed, .closing, .closed:
            preconditionFailure("Invalid state \(self.state)")
        }
    }

    enum FailureAction: Equatable {
        /// Send whatever OpenSSL queued (a fatal alert), fail buffered writes, fire the error, close.
        case failAndClose(TLSError)
        case none
    }

    /// `SSL_do_handshake` failed.
    mutating func handshakeFailed(_ error: TLSError) -> FailureAction {
        switch self.state {
        case .handshaking:
            self.state = .closed
            return .failAndClose(error)
        case .idle, .active, .inputClosed, .outputClosed, .closing, .closed:
            preconditionFailure("Invalid state \(self.state)")
        }
    }

    /// A server's first input is not a TLS record but a plain HTTP request (see
    /// ``isPlaintextHTTP(firstByte:)``): the handshake fails without asking OpenSSL.
    mutating func plaintextHTTPReceived() -> FailureAction {
        switch self.state {
        case .handshaking:
            self.state = .closed
            return .failAndClose(TLSError(code: .plaintextHTTP, reason: "a plain HTTP request was sent to a TLS port"))
        case .idle, .active, .inputClosed, .outputClosed, .closing, .closed:
            return .none
        }
    }

    /// Whether a connection's first byte starts a plain HTTP request rather than a TLS record. A TLS
    /// record starts with its content type (20–24, RFC 8446 §5.1) and an SSLv2-style hello with a byte
    /// ≥ 0x80; an HTTP request starts with a method token, upper-case letters by convention (RFC 9110
    /// §9.1: GET, POST, CONNECT…). One byte decides, so a client that sends only part of its request
    /// is answered at once.
    static func isPlaintextHTTP(firstByte: UInt8) -> Bool {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(firstByte)
    }

    /// The handshake deadline fired. A late timer (the handshake already finished or failed) is ignored.
    mutating func handshakeTimeoutFired() -> FailureAction {
        switch self.state {
        case .handshaking:
            self.state = .closed
            return .failAndClose(TLSError(code: .handshakeTimeout, reason: "TLS handshake not completed in time"))
        case .idle, .active, .inputClosed, .outputClosed, .closing, .closed:
            return .none
        }
    }

    enum TransportErrorAction: Equatable {
        /// Fail the handshake with this error instead of passing the transport's on: fail buffered
        /// writes, fire it, close (the socket is broken, so no alert is sent).
        case failHandshake(TLSError)
        /// Pass the transport's error on unchanged.
        case forward
    }

    /// The transport reported an error (a read failed: ECONNRESET when the peer reset the connection).
    /// During the handshake it fails the handshake, classified, so that the layers above count it like
    /// every other failed handshake (1015, by class; RELIABILITY T-09). Without this the socket's
    /// error reached them first as a plain client error, and the EOF this machine reported when the
    /// channel then went inactive came after the connection was already given up, uncounted.
    mutating func transportFailed(_ description: String) -> TransportErrorAction {
        switch self.state {
        case .handshaking:
            self.state = .closed
            return .failHandshake(TLSError(code: .resetDuringHandshake, reason: "connection lost during the TLS handshake: \(description)"))
        case .idle, .active, .inputClosed, .outputClosed, .closing, .closed:
            return .forward
        }
    }

    /// `SSL_read` / `SSL_write` failed on an established connection.
    mutating func connectionFailed(_ error: TLSError) -> FailureAction {
        switch self.state {
        case .active, .inputClosed, .outputClosed, .closing:
            self.state = .closed
            return .failAndClose(error)
        case .closed:
            return .none
        case .idle, .handshaking:
            preconditionFailure("Invalid state \(self.state)")
        }
    }

    enum CloseNotifyAction: Equatable {
        /// Half-closure: fire `ChannelEvent.inputClosed`; our output stays open.
        case fireInputClosed
        /// Answer with our `close_notify` and close the channel.
        case sendCloseNotifyAndClose
        /// Both `close_notify`s have been exchanged: close the channel.
        case closeChannel
        case none
    }

    /// The peer's `close_notify` was decrypted.
    mutating func closeNotifyReceived() -> CloseNotifyAction {
        switch self.state {
        case .active:
            if self.allowHalfClosure {
                self.state = .inputClosed
                return .fireInputClosed
            }
            self.state = .closing
            return .sendCloseNotifyAndClose
        case .outputClosed:
            self.state = .closing
            return .closeChannel
        case .inputClosed, .closing, .closed:
            return .none
        case .idle, .handshaking:
            preconditionFailure("Invalid state \(self.state)")
        }
    }

    // MARK: Outbound

    enum WriteAction: Equatable {
        case buffer
        case fail(TLSError)
    }

    mutating func write() -> WriteAction {
        switch self.state {
        case .idle, .handshaking, .active, .inputClosed:
            return .buffer
        case .outputClosed, .closing, .closed:
            return .fail(TLSError(code: .writeAfterClose, reason: "write after the TLS output was closed"))
        }
    }

    enum FlushAction: Equatable {
        case encryptAndFlush
        /// Remember the flush; it happens when the handshake completes.
        case deferUntilHandshakeCompleted
        case none
    }

    mutating func flush() -> FlushAction {
        switch self.state {
        case .active, .inputClosed:
            return .encryptAndFlush
        case .idle, .handshaking:
            return .deferUntilHandshakeCompleted
        case .outputClosed, .closing, .closed:
            return .none
        }
    }

    enum CloseAction: Equatable {
        /// Encrypt and send flushed data, then `close_notify`, then close the channel fully.
        case sendCloseNotifyThenClose
        /// Send `close_notify`, then close the channel's output (TLS half-closure).
        case sendCloseNotifyThenCloseOutput
        /// Pass the close to the channel as it is (nothing to say in TLS).
        case forward
    }

    mutating func close(mode: CloseMode) -> CloseAction {
        switch mode {
        case .all:
            switch self.state {
            case .active, .inputClosed, .outputClosed:
                self.state = .closing
                return .sendCloseNotifyThenClose
            case .idle, .handshaking:
                self.state = .closed
                return .forward
            case .closing, .closed:
                return .forward
            }
        case .output:
            switch self.state {
            case .active:
                self.state = .outputClosed
                return .sendCloseNotifyThenCloseOutput
            case .inputClosed:
                self.state = .closing
                return .sendCloseNotifyThenClose
            case .idle, .handshaking:
                self.state = .closed
                return .forward
            case .outputClosed, .closing, .closed:
                return .forward
            }
        case .input:
            return .forward
        }
    }
}
