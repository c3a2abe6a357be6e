import Frames
import NIOCore

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
///
/// The session talks to its legs only through its ``RelayTransport`` (sockets, writability, the clock
/// and timers are below it): ``RelaySession`` is the gateway's, over NIO (``NIORelayTransport``); the
/// tests also run it over an in-memory transport with a virtual clock.
final class Relay<Transport: RelayTransport> {
    typealias Stats = RelayStats
    typealias LegState = RelayLegState

    /// The legs' I/O, the clock and the timers. Held concretely: calls on it are direct.
    let transport: Transport
    /// Shared by every session on this event loop's thread.
    let resources: RelayResources
    var clientParser: FrameParser
    var upstreamParser: FrameParser
    var closeState = RelayCloseState()
    var heldRead = PerSide(false)
    /// Legs whose input is discarded (after their Close or a violation). They are still read, so that
    /// their TCP close is seen.
    var discarding = PerSide(false)
    let closeTimeout: TimeAmount
    /// How long an offender's Close is held while the other leg may still answer its earlier messages
    /// (``RelayCloseState``, DESIGN-NOTES "Close, per leg"): ``defaultViolationGrace``, never more than
    /// the close timeout.
    let violationGrace: TimeAmount
    /// 500 ms: an upstream answers what it already received within a round trip (a few ms in a data
    /// centre, under 300 ms across the planet), while an offender next to an upstream that only sinks
    /// data waits half a second instead of the close timeout (10 s).
    static var defaultViolationGrace: TimeAmount { RelayStats.defaultViolationGrace }
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
    var lastActivity: NIODeadline
    /// The idle timer was armed (with the first leg).
    var idleArmed = false
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
        transport: Transport,
        limits: GatewayConfiguration.Limits,
        closeTimeout: TimeAmount,
        idleTimeout: TimeAmount,
        policy: RelayPolicy = RelayPolicy(),
        compression: RelayCompression = .none,
        violationGrace: TimeAmount = RelayStats.defaultViolationGrace,
        resources: RelayResources = .current
    ) {
        self.transport = transport
        self.resources = resources
        self.policy = RelayPolicyState(policy)
        let now = transport.now
        self.directions = PerSide(
            client: RelayDirection(limiter: policy.rateLimits.map { RateLimiter($0.client, now: now) }),
            upstream: RelayDirection(limiter: policy.rateLimits.map { RateLimiter($0.upstream, now: now) })
        )
        self.lastActivity = now
        self.activityBeforeRead = now
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

    // MARK: Events from the transport

    /// `side`'s leg is attached to the transport (NIO: its handler was added): its timers start.
    func attached(_ side: Side) {
        if !self.idleArmed {
            self.idleArmed = true
            self.schedule(.idle, in: self.idleTimeout)
        }
        self.policyAttached(side)
    }

    /// One timer per connection, re-armed for the rest of the period when there was activity, instead
    /// of a handler that wraps every write in a promise (NIO's `IdleStateHandler` did: 7 of 13 mallocs
    /// per relayed message).
    func idleCheck() {
        guard !self.finished else { return }
        let quiet = self.transport.now - self.lastActivity
        if quiet >= self.idleTimeout {
            self.gatewayClose(.goingAway, reason: "idle timeout")
        } else {
            self.schedule(.idle, in: self.idleTimeout - quiet)
        }
    }

    func read(from side: Side, _ buffer: inout ByteBuffer) {
        let previousActivity = self.lastActivity
        let readStart = buffer.readerIndex
        // The transport's clock (virtual time on an `EmbeddedEventLoop` or the in-memory transport, so
        // idle and keep-alive tests are exact).
        let now = self.transport.now
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
        guard self.transport.isAttached(side) else { return }
        var encoder = self.encoder(toward: side)
        var bytes = self.transport.buffer(capacity: 14 + payload.readableBytes)
        encoder.writeFrame(opcode: opcode, payload: payload, to: &bytes)
        self.transport.write(bytes, to: side)
    }

    func readComplete(from side: Side) {
        self.flow.inflatedThisRead[side] = 0  // issue #10 item 6: the inflation share is per read
        self.trafficRead()  // issue #14: live counters
        self.transport.flush(side.other)
    }

    /// The outbound `read` from `side`'s pipeline: held while the other leg cannot take more.
    func shouldRead(_ side: Side) -> Bool {
        if self.direction(side, { $0.throttled != nil }) || self.flow.paused[side] != nil {
            self.heldRead[side] = true
            return false
        }
        if self.transport.isAttached(side.other), !self.transport.isWritable(side.other) {
            self.heldRead[side] = true
            return false
        }
        return true
    }

    func writabilityChanged(_ side: Side) {
        guard self.transport.isWritable(side) else { return }
        let source = side.other
        // Issue #10 item 6: transcoding toward `side` stopped for its watermark goes on first.
        if self.flow.paused[source]?.reason == .writability { return self.resumeTranscoding(source) }
        if self.heldRead[source], self.direction(source, { $0.throttled == nil }), self.flow.paused[source] == nil,
            self.transport.isAttached(source)
        {
            self.heldRead[source] = false
            self.transport.read(source)
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
        self.transport.cancel(.idle)
        self.transport.cancel(.close(.client))
        self.transport.cancel(.close(.upstream))
        self.transport.cancel(.grace(.client))
        self.transport.cancel(.frameDeadline(.client))
        self.transport.cancel(.frameDeadline(.upstream))
        self.policyFinished()
        self.compressionFinished()
        self.trafficFinished()
        self.tap = nil
        self.onFinish?(self.closeState.outcome, self.stats)
        self.onFinish = nil
    }
}

/// What a session counts per direction.
struct RelayStats: Equatable {
    var messages = 0
    var bytes = 0

    static let defaultViolationGrace = TimeAmount.milliseconds(500)
}

/// The relay of the gateway: over NIO's channels.
typealias RelaySession = Relay<NIORelayTransport>

extension Relay where Transport == NIORelayTransport {
    convenience init(
        eventLoop: any EventLoop,
        limits: GatewayConfiguration.Limits,
        closeTimeout: TimeAmount,
        idleTimeout: TimeAmount,
        policy: RelayPolicy = RelayPolicy(),
        compression: RelayCompression = .none,
        violationGrace: TimeAmount = RelayStats.defaultViolationGrace,
        resources: RelayResources = .current
    ) {
        self.init(
            transport: NIORelayTransport(eventLoop: eventLoop),
            limits: limits,
            closeTimeout: closeTimeout,
            idleTimeout: idleTimeout,
            policy: policy,
            compression: compression,
            violationGrace: violationGrace,
            resources: resources
        )
    }

    var eventLoop: any EventLoop { self.transport.eventLoop }
    var contexts: PerSide<ChannelHandlerContext?> { self.transport.contexts }

    /// `side`'s handler was added to its pipeline.
    func attach(_ side: Side, context: ChannelHandlerContext) {
        self.transport.attach(side, context: context)
        self.attached(side)
    }

    /// `side`'s handler left its pipeline (its channel closed): the session lets go of its context.
    func detach(_ side: Side) {
        self.transport.detach(side)
    }
}
