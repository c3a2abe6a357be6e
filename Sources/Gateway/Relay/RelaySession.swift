import Frames
import NIOCore
import NIOPosix

/// One relayed WebSocket connection after both handshakes: the client leg and the upstream leg, on the
/// same event loop, with no locks (DESIGN §3).
///
/// Cut-through: a frame's header is forwarded as soon as it is parsed, its payload in the chunks it
/// arrives in, and everything one read yields goes out as one write, through the one read loop of
/// `RelaySession+ReadLoop.swift` for both directions. Client → upstream: frames are validated,
/// unmasked and remasked with a fresh key while they are copied to an output buffer. Upstream → client:
/// frames are validated and forwarded as slices of the read buffer. Control frames are relayed; each
/// leg's close handshake follows ``RelayCloseState``. When a leg is not writable, the other leg is not
/// read (backpressure). Policies are in `RelaySession+Policy.swift`, compression in
/// `RelaySession+Compression.swift`, the close handshakes' actions in `RelaySession+Actions.swift`, the
/// frame deadline and drain in their own files.
final class RelaySession {
    struct Stats {
        var messages = 0
        var bytes = 0
    }

    let eventLoop: any EventLoop
    /// Shared by every session on this event loop's thread.
    let resources: RelayResources
    private(set) var contexts = PerSide<ChannelHandlerContext?>(nil)
    var clientParser: FrameParser
    var upstreamParser: FrameParser
    var closeState = RelayCloseState()
    var heldRead = PerSide(false)
    /// Legs whose input is discarded (after their Close or a violation). They are still read, so that
    /// their TCP close is seen.
    var discarding = PerSide(false)
    var closeTimers = PerSide<Scheduled<Void>?>(nil)
    let closeTimeout: TimeAmount
    /// How long an offender's Close is held while the other leg may still answer its earlier messages
    /// (``RelayCloseState``, DESIGN-NOTES "Close, per leg"): ``defaultViolationGrace``, never more than
    /// the close timeout.
    let violationGrace: TimeAmount
    var graceTimer: Scheduled<Void>?
    /// 500 ms: an upstream answers what it already received within a round trip (a few ms in a data
    /// centre, under 300 ms across the planet), while an offender next to an upstream that only sinks
    /// data waits half a second instead of the close timeout (10 s).
    static let defaultViolationGrace = TimeAmount.milliseconds(500)
    var stats: PerSide<Stats> { PerSide(client: self.directions.client.leg.stats, upstream: self.directions.upstream.leg.stats) }
    private(set) var finished = false
    /// Metrics and drain (issue #6, `RelaySession+Operations.swift`).
    var operations = RelayOperations()
    /// Issue #14: the taps watching this connection (`nil`: none, the relay's one check per frame), what
    /// they are told about it, and the live counters (`RelaySession+Observation.swift`).
    var tap: RelayTap? {
        didSet { if oldValue !== self.tap { self.tapInflation() } }
    }
    var tapInfo: LiveConnectionInfo?
    var traffic: RelayTraffic?
    /// Issue #15: whether reads go through the frame parser's batches (``readFrames(from:_:parser:)``).
    /// Only tests (the differential against the per-event path) and benchmarks turn it off.
    var batchesFrames = true
    /// Called once when both connections are closed, with who closed and the code.
    var onFinish: ((RelayCloseState.Outcome?, _ stats: PerSide<Stats>) -> Void)?

    /// No frame in either direction for this long closes both legs with 1001 (DESIGN §7: 120 s).
    let idleTimeout: TimeAmount
    var lastActivity = NIODeadline.now()
    var idleTimer: Scheduled<Void>?
    /// Where the current read started and the activity time before it: a read that holds only the
    /// gateway's own keep-alive pong does not postpone the idle timeout.
    var readStart = 0
    var activityBeforeRead: NIODeadline
    /// Rate limits, keep-alive and maximum lifetime (issue #5; the extension at the end of this file).
    var policy: RelayPolicyState
    /// The key and payload offset of a verbatim compressed frame from the client, masked by the relay.
    var verbatimMask: (key: MaskingKey, offset: Int)?
    /// Issue #10 item 6: transcoding stops between frames for backpressure, work per read and rate.
    var flow: TranscodeFlow
    /// Issue #10 item 7: this connection's share of `limits.compression_memory`, given back when it ends.
    var compressionReservation: CompressionMemoryBudget.Reservation?

    init(
        eventLoop: any EventLoop,
        limits: GatewayConfiguration.Limits,
        closeTimeout: TimeAmount,
        idleTimeout: TimeAmount,
        policy: RelayPolicy = RelayPolicy(),
        compression: RelayCompression = .none,
        violationGrace: TimeAmount = RelaySession.defaultViolationGrace,
        resources: RelayResources = .current
    ) {
        self.eventLoop = eventLoop
        self.resources = resources
        self.policy = RelayPolicyState(policy)
        let now = eventLoop.now
        self.directions = PerSide(
            client: RelayDirection(limiter: policy.rateLimits.map { RateLimiter($0.client, now: now) }),
            upstream: RelayDirection(limiter: policy.rateLimits.map { RateLimiter($0.upstream, now: now) })
        )
        self.lastActivity = eventLoop.now
        self.activityBeforeRead = eventLoop.now
        self.idleTimeout = idleTimeout
        let configuration = FrameParser.Configuration {
            $0.maxFrameSize = limits.maxFrameSize
            $0.maxMessageSize = limits.maxMessageSize
            $0.maxFragmentsPerMessage = limits.maxFragments
        }
        self.clientParser = FrameParser(role: .server, configuration: configuration)
        self.upstreamParser = FrameParser(role: .client, configuration: configuration)
        self.closeTimeout = closeTimeout
        self.violationGrace = min(violationGrace, closeTimeout)
        self.flow = TranscodeFlow(inflationPerRead: limits.bufferHighWatermark)
        self.compressionAttached(compression, limits: limits)
    }

    // MARK: Events from the handlers

    func attach(_ side: Side, context: ChannelHandlerContext) {
        self.contexts[side] = context
        if self.idleTimer == nil { self.scheduleIdleCheck(in: self.idleTimeout) }
        self.policyAttached(side)
    }

    /// `side`'s handler left its pipeline (its channel closed): the session lets go of its context.
    func detach(_ side: Side) {
        self.contexts[side] = nil
    }

    /// One timer per connection, re-armed for the rest of the period when there was activity, instead
    /// of a handler that wraps every write in a promise (NIO's `IdleStateHandler` did: 7 of 13 mallocs
    /// per relayed message).
    func scheduleIdleCheck(in delay: TimeAmount) {
        let session = NIOLoopBound(self, eventLoop: self.eventLoop)
        self.idleTimer = self.eventLoop.scheduleTask(in: delay) {
            let session = session.value
            guard !session.finished else { return }
            let quiet = session.eventLoop.now - session.lastActivity
            if quiet >= session.idleTimeout {
                session.gatewayClose(.goingAway, reason: "idle timeout")
            } else {
                session.scheduleIdleCheck(in: session.idleTimeout - quiet)
            }
        }
    }

    func read(from side: Side, _ buffer: inout ByteBuffer) {
        let previousActivity = self.lastActivity
        let readStart = buffer.readerIndex
        // The event loop's clock (virtual time on an `EmbeddedEventLoop`, so idle and keep-alive tests
        // are exact).
        let now = self.eventLoop.now
        self.lastActivity = now
        self.direction(side) { $0.keepAlive?.heard(at: now) }
        guard !self.discarding[side] else {
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return
        }
        if self.stashIfThrottled(side, &buffer) { return }
        if self.stashIfTranscodePaused(side, &buffer) { return }  // issue #10 item 6
        self.readStart = readStart
        self.activityBeforeRead = previousActivity
        switch side {
        case .client: self.readFrames(from: .client, &buffer, parser: &self.clientParser)
        case .upstream: self.readFrames(from: .upstream, &buffer, parser: &self.upstreamParser)
        }
        if self.policy.policy.frameTimeout != nil {
            let idle = side == .client ? self.clientParser.isBetweenMessages : self.upstreamParser.isBetweenMessages
            self.frameDeadlineAfterRead(from: side, parserIdle: idle, now: now)
        }
    }

    /// Per direction, by source side: everything but the parser (``RelayDirection``). By side only through
    /// ``direction(_:_:)``, never `directions[side]`.
    var directions: PerSide<RelayDirection>

    /// The direction from `side`, in place. `directions[side].x` on this class property copies the whole
    /// ``RelayDirection`` (400 bytes, with a retain and release of every reference in it) out, and for a
    /// write back in; with coroutine accessors it also copied both directions into a malloc'd frame.
    /// On the per-frame path that was 11 % of stream-32's CPU and several mallocs per message (perf,
    /// BENCHMARKS.md). Going through `inout` reads and writes only the field. The body must not reach
    /// `self.directions` itself (an overlapping access).
    @inline(__always)
    func direction<Result>(_ side: Side, _ body: (inout RelayDirection) -> Result) -> Result {
        switch side {
        case .client: body(&self.directions.client)
        case .upstream: body(&self.directions.upstream)
        }
    }

    func control(_ frame: ControlFrame, from side: Side) {
        switch frame.opcode {
        case .close:
            self.operations.metrics?.close(side: side, code: frame.closeCode, byPeer: true)
            self.tapClose(leg: side, code: frame.closeCode, reason: frame.closeReason, by: side.rawValue)
            self.perform(self.closeState.closeReceived(from: side, code: frame.closeCode, payload: frame.payload, boundary: self.boundaries))
        default:
            guard self.closeState.mayWrite(to: side.other) else { return }
            self.writeControl(opcode: frame.opcode, payload: frame.payload, to: side.other)
        }
    }

    /// Writes a whole control frame, masked toward the upstream.
    func writeControl(opcode: Opcode, payload: ByteBuffer, to side: Side) {
        guard let context = self.contexts[side] else { return }
        var encoder = self.encoder(toward: side)
        var bytes = context.channel.allocator.buffer(capacity: 14 + payload.readableBytes)
        encoder.writeFrame(opcode: opcode, payload: payload, to: &bytes)
        context.write(NIOAny(bytes), promise: nil)
    }

    func readComplete(from side: Side) {
        self.flow.inflatedThisRead[side] = 0  // issue #10 item 6: the inflation share is per read
        self.trafficRead()  // issue #14: live counters
        self.contexts[side.other]?.flush()
    }

    /// The outbound `read` from `side`'s pipeline: held while the other leg cannot take more.
    func shouldRead(_ side: Side) -> Bool {
        if self.direction(side, { $0.throttled != nil }) || self.flow.paused[side] != nil {
            self.heldRead[side] = true
            return false
        }
        if let other = self.contexts[side.other], !other.channel.isWritable {
            self.heldRead[side] = true
            return false
        }
        return true
    }

    func writabilityChanged(_ side: Side) {
        guard let context = self.contexts[side], context.channel.isWritable else { return }
        let source = side.other
        // Issue #10 item 6: transcoding toward `side` stopped for its watermark goes on first.
        if self.flow.paused[source]?.reason == .writability { return self.resumeTranscoding(source) }
        if self.heldRead[source], self.direction(source, { $0.throttled == nil }), self.flow.paused[source] == nil,
            let sourceContext = self.contexts[source]
        {
            self.heldRead[source] = false
            sourceContext.read()
        }
    }

    func inactive(_ side: Side) {
        if self.closeState.legs[side].isOpen && !self.operations.forceClosed {
            self.operations.metrics?.close(side: side, code: .abnormalClosure, byPeer: true)
            self.tapClose(leg: side, code: .abnormalClosure, reason: "", by: side.rawValue)
        }
        self.perform(self.closeState.tcpClosed(side, boundary: self.boundaries))
    }

    func gatewayClose(_ code: CloseCode, reason: String, timed: Bool = true) {
        self.perform(self.closeState.gatewayClose(code, reason: reason, boundary: self.boundaries, timed: timed))
    }

    /// Per leg, whether the direction toward it is between frames (no forwarded frame is half written):
    /// only then may a Close be written to it.
    var boundaries: PerSide<Bool> {
        PerSide(client: self.directions.upstream.leg.unfinishedPayload <= 0, upstream: self.directions.client.leg.unfinishedPayload <= 0)
    }

    func finish() {
        guard !self.finished else { return }
        self.finished = true
        self.idleTimer?.cancel()
        self.closeTimers.client?.cancel()
        self.closeTimers.upstream?.cancel()
        self.graceTimer?.cancel()
        self.directions.client.frameTimer?.cancel()
        self.directions.upstream.frameTimer?.cancel()
        self.policyFinished()
        self.compressionFinished()
        self.trafficFinished()
        self.tap = nil
        self.onFinish?(self.closeState.outcome, self.stats)
        self.onFinish = nil
    }
}
