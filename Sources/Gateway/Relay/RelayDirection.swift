import Frames
import NIOCore

/// One direction of a relayed connection, by its source leg (issue #10): what the relay keeps for it
/// besides its parser — the state of the frame being relayed (``RelaySession/LegState``), the
/// permessage-deflate transcoder, the source leg's rate limiter and a frame a throttle holds, the
/// source leg's keep-alive, and the frame-deadline timer. The one read loop
/// (`RelaySession+ReadLoop.swift`) and the timers work on a `RelayDirection`, whichever way it goes.
///
/// The parsers stay beside it (`RelaySession.clientParser`, `.upstreamParser`): the read loop holds a
/// parser `inout` for a whole read while it calls back into the session, which reads and writes the
/// directions; with the parser inside, that would be an overlapping access to the same property.
struct RelayDirection {
    var leg = RelayLegState()
    /// permessage-deflate for this direction; `nil`: no compression (`RelaySession+Compression`).
    var transcoder: MessageTranscoder?
    /// The source leg's rate limits (`nil`: none).
    var limiter: RateLimiter?
    /// A frame from the source leg that a throttle holds back, with what was read after it.
    var throttled: RelayPolicyState.Throttled?
    /// The gateway's keep-alive toward the source leg (its timer: ``RelayTimer/keepAlive(_:)``).
    var keepAlive: KeepAlive?
    /// The frame deadline's timer (``RelayTimer/frameDeadline(_:)``, `RelaySession+FrameDeadline.swift`)
    /// is armed.
    var frameTimerArmed = false

    init(limiter: RateLimiter? = nil) {
        self.limiter = limiter.flatMap { $0.isActive ? $0 : nil }
    }
}

/// Per-leg relay state, read into a local for the length of a read and stored back before anything
/// that looks at it (the close handshake) runs.
struct RelayLegState {
    /// FIN of the current data frame.
    var fin = false
    /// Payload bytes of the frame whose header was forwarded that are still to come: while it is not
    /// zero, nothing else may be written in that direction.
    var unfinishedPayload = 0
    var stats = RelayStats()
    /// When the frame or fragmented message now arriving from this leg began (seen at the end of a
    /// read); `nil` between messages. Trickling does not move it (issue #10, behaviour 3).
    var frameStart: NIODeadline?
}
