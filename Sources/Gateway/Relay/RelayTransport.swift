import NIOCore

/// One relayed pair's I/O, as the protocol code above it (``Relay``) sees it: the transport boundary
/// (issue #15, DESIGN-NOTES "The transport boundary"). Implemented by ``NIORelayTransport`` (two
/// `ChannelHandlerContext`s on one event loop, the gateway's) and by the tests' in-memory transport
/// with a virtual clock; RelayCore's loop is meant to be the next one. Every call is made on the
/// transport's own thread; bytes are plaintext WebSocket frames (TLS is below the boundary).
///
/// `Relay` is generic over its transport and holds it concretely, so a release build specialises the
/// whole session for each transport: no existential dispatch and no retain per call on the frame path.
/// A leg that is not attached (before its handler is added, after it is removed) takes nothing: every
/// operation on it is a no-op, as the optional context was before.
protocol RelayTransport: AnyObject {
    /// Whether `side`'s leg is connected to the session.
    func isAttached(_ side: Side) -> Bool
    /// Queues `buffer` toward `side`; it goes out at ``flush(_:)``.
    func write(_ buffer: ByteBuffer, to side: Side)
    func flush(_ side: Side)
    func writeAndFlush(_ buffer: ByteBuffer, to side: Side)
    /// Ends `side`'s connection (what was flushed to it goes first).
    func close(_ side: Side)
    /// Asks for `side`'s next read: a read the session held (``Relay/shouldRead(_:)`` said no, for
    /// back-pressure or a throttle) goes on. Reads are pulled: the transport asks `shouldRead` before each.
    func read(_ side: Side)
    /// Whether `side` is attached and takes more bytes now (NIO's writability, the high watermark).
    func isWritable(_ side: Side) -> Bool
    /// A buffer for a frame the session writes itself.
    func buffer(capacity: Int) -> ByteBuffer
    /// Monotonic time (an `EmbeddedEventLoop`'s or the in-memory transport's is virtual).
    var now: NIODeadline { get }
    /// Arms `timer` at `deadline`: when it fires, the transport calls `relay.timerFired(timer)`. A timer
    /// already armed in the same slot (``RelayTimer/slot``) is replaced.
    func schedule(_ timer: RelayTimer, at deadline: NIODeadline, for relay: Relay<Self>)
    /// Disarms `timer`'s slot; nothing when it is not armed (or already fired).
    func cancel(_ timer: RelayTimer)
    /// Fires `timer` on the transport's next turn, once, without a slot (not cancellable): work that
    /// yields to other connections on the same thread (``TranscodeFlow/Reason/workPerRead``).
    func fireSoon(_ timer: RelayTimer, for relay: Relay<Self>)
}

/// The session's one-shot timers, one slot each per connection: instead of closures, the transport
/// calls back ``Relay/timerFired(_:)`` with the timer, so a transport keeps deadlines, not code (a
/// timer wheel can hold them as fields of a connection slot).
enum RelayTimer: Hashable, Sendable {
    /// No frame either way for the idle timeout (re-armed for the rest of the period on activity).
    case idle
    /// The close handshake's timeout toward a leg (``RelayCloseState/Action/startCloseTimer(_:)``).
    case close(Side)
    /// The held offender's violation grace (one per connection; the side is the offender).
    case grace(Side)
    /// The frame deadline of messages from a leg (`timeouts.frame`).
    case frameDeadline(Side)
    /// The keep-alive check of a leg.
    case keepAlive(Side)
    /// `limits.max_lifetime`.
    case lifetime
    /// `auth.jwt.close_on_expiry`.
    case expiry
    /// A throttled leg's tokens are back (``Relay/resume(_:)``).
    case throttleResume(Side)
    /// A paused transcoding goes on (``Relay/resumeTranscoding(_:)``).
    case transcodeResume(Side)
    /// The live counters' flush (issue #14).
    case trafficFlush

    static let slotCount = 15

    /// Where the timer is kept: one slot per value, except ``grace(_:)`` (one per connection).
    var slot: Int {
        switch self {
        case .idle: 0
        case .grace: 1
        case .lifetime: 2
        case .expiry: 3
        case .trafficFlush: 4
        case .close(let side): side == .client ? 5 : 6
        case .frameDeadline(let side): side == .client ? 7 : 8
        case .keepAlive(let side): side == .client ? 9 : 10
        case .throttleResume(let side): side == .client ? 11 : 12
        case .transcodeResume(let side): side == .client ? 13 : 14
        }
    }
}

extension Relay {
    /// A timer armed with ``RelayTransport/schedule(_:at:for:)`` or ``RelayTransport/fireSoon(_:for:)``
    /// fired: the one entry point for all of them.
    func timerFired(_ timer: RelayTimer) {
        switch timer {
        case .idle: self.idleCheck()
        case .close(let side): self.perform(self.closeState.closeTimerFired(side, boundary: self.boundaries))
        case .grace(let side): self.perform(self.closeState.graceExpired(side, boundary: self.boundaries))
        case .frameDeadline(let side): self.frameDeadlineFired(side)
        case .keepAlive(let side): self.keepAliveTimerFired(side)
        case .lifetime: self.lifetimeReached()
        case .expiry: self.tokenExpired()
        case .throttleResume(let side): self.resume(side)
        case .transcodeResume(let side): self.resumeTranscoding(side)
        case .trafficFlush: self.trafficTimerFired()
        }
    }

    /// Arms `timer` after `delay` from the transport's clock.
    func schedule(_ timer: RelayTimer, in delay: TimeAmount) {
        self.schedule(timer, at: self.transport.now + delay)
    }

    /// Nothing is armed once the session finished: the read that completes the close handshake ends
    /// with its parser past the Close, which the frame deadline took for an open message, and that
    /// timer held the finished session (both pipelines, a slot in the loop's queue) for `timeouts.frame`.
    func schedule(_ timer: RelayTimer, at deadline: NIODeadline) {
        guard !self.finished else { return }
        self.transport.schedule(timer, at: deadline, for: self)
    }
}
