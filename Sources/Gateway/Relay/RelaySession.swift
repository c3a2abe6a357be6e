import Frames
import NIOCore
import NIOPosix

/// One relayed WebSocket connection after both handshakes: the client leg and the upstream leg, on the
/// same event loop, with no locks (DESIGN §3).
///
/// Client → upstream: frames are parsed (validated), unmasked and remasked with a fresh key in place,
/// and forwarded cut-through: the header as soon as it is parsed (rewritten in place in the read buffer
/// when it arrived whole), the payload in the chunks it arrives in. Upstream → client: the same without
/// masking. Control frames are relayed; the close handshake follows ``RelayCloseState``. When a leg is
/// not writable, the other leg is not read (backpressure).
final class RelaySession {
    struct Stats {
        var messages = 0
        var bytes = 0
    }

    let eventLoop: any EventLoop
    private var contexts = PerSide<ChannelHandlerContext?>(nil)
    private var clientParser: FrameParser
    private var upstreamParser: FrameParser
    private var closeState = RelayCloseState()
    private var heldRead = PerSide(false)
    /// Legs whose input is discarded (after their Close or a violation). They are still read, so that
    /// their TCP close is seen.
    private var discarding = PerSide(false)
    private var closeTimer: Scheduled<Void>?
    private let closeTimeout: TimeAmount
    private(set) var stats = PerSide(Stats())
    private var finished = false
    /// Called once when both connections are closed, with who closed and the code.
    var onFinish: ((RelayCloseState.Outcome?, _ stats: PerSide<Stats>) -> Void)?

    /// No frame in either direction for this long closes both legs with 1001 (DESIGN §7: 120 s).
    private let idleTimeout: TimeAmount
    private var lastActivity = NIODeadline.now()
    private var idleTimer: Scheduled<Void>?
    /// Rate limits, keep-alive and maximum lifetime (issue #5; the extension at the end of this file).
    private var policy: RelayPolicyState

    init(
        eventLoop: any EventLoop,
        limits: GatewayConfiguration.Limits,
        closeTimeout: TimeAmount,
        idleTimeout: TimeAmount,
        policy: RelayPolicy = RelayPolicy()
    ) {
        self.eventLoop = eventLoop
        self.policy = RelayPolicyState(policy, now: eventLoop.now)
        self.lastActivity = eventLoop.now
        self.idleTimeout = idleTimeout
        let configuration = FrameParser.Configuration {
            $0.maxFrameSize = limits.maxFrameSize
            $0.maxMessageSize = limits.maxMessageSize
            $0.maxFragmentsPerMessage = limits.maxFragments
        }
        self.clientParser = FrameParser(role: .server, configuration: configuration)
        self.upstreamParser = FrameParser(role: .client, configuration: configuration)
        self.closeTimeout = closeTimeout
    }

    // MARK: Events from the handlers

    func attach(_ side: Side, context: ChannelHandlerContext) {
        self.contexts[side] = context
        if self.idleTimer == nil { self.scheduleIdleCheck(in: self.idleTimeout) }
        self.policyAttached(side)
    }

    /// One timer per connection, re-armed for the rest of the period when there was activity, instead
    /// of a handler that wraps every write in a promise (NIO's `IdleStateHandler` did: 7 of 13 mallocs
    /// per relayed message).
    private func scheduleIdleCheck(in delay: TimeAmount) {
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
        self.policy.keepAlive[side]?.heard(at: now)
        guard !self.discarding[side] else {
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return
        }
        if self.stashIfThrottled(side, &buffer) { return }
        let destination = side.other
        do {
            while true {
                let before = buffer.readerIndex
                let event: FrameParser.Event?
                switch side {
                case .client: event = try self.clientParser.next(&buffer)
                case .upstream: event = try self.upstreamParser.next(&buffer)
                }
                guard let event else { break }
                switch event {
                case .header(let header):
                    guard self.admit(.header(header), from: side, rest: &buffer) else { return }
                    self.forwardHeader(header, from: side, in: &buffer, headerStart: before)
                case .payload(let payload):
                    self.stats[side].bytes += payload.readableBytes
                    self.unfinishedPayload[side] -= payload.readableBytes
                    if self.closeState.mayWrite(to: destination) {
                        self.contexts[destination]?.write(NIOAny(payload), promise: nil)
                    }
                case .frameEnd:
                    if self.currentFin[side] { self.stats[side].messages += 1 }
                    if self.policy.keepAlive[destination]?.state == .pingOwed { self.keepAliveFrameBoundary(destination) }
                case .control(let frame):
                    if frame.opcode == .pong, self.consumeKeepAlivePong(frame, from: side) {
                        // The gateway's own pong is not application traffic: a read that held only it
                        // does not postpone the idle timeout.
                        if before == readStart && buffer.readableBytes == 0 { self.lastActivity = previousActivity }
                        continue
                    }
                    guard self.admit(.control(frame), from: side, rest: &buffer) else { return }
                    self.control(frame, from: side)
                    if self.discarding[side] { return }
                }
            }
        } catch {
            self.perform(self.closeState.violation(by: side, error: error))
        }
    }

    private var currentFin = PerSide(false)
    /// Payload bytes of the frame from `side` whose header was forwarded and that are still to come:
    /// while it is not zero, nothing else may be written in that direction.
    private var unfinishedPayload = PerSide(0)

    /// Forwards a data frame header. Toward the upstream it gets a fresh masking key (RFC 6455 §5.3,
    /// §10.3) and the parser remasks the payload with it. When the header arrived whole and minimally
    /// encoded, its bytes are rewritten in place and forwarded as a slice of the read buffer (no
    /// allocation); otherwise it is encoded into a small buffer.
    private func forwardHeader(_ header: FrameHeader, from side: Side, in buffer: inout ByteBuffer, headerStart: Int) {
        self.currentFin[side] = header.fin
        var outgoing = header
        if side == .client {
            let key = RelaySession.maskingKeys.nextKey()
            outgoing.maskingKey = key
            self.clientParser.remaskPayload(with: key)
        }
        guard self.closeState.mayWrite(to: side.other), let destination = self.contexts[side.other] else { return }
        self.unfinishedPayload[side] = header.payloadLength
        let size = outgoing.encodedSize
        if buffer.readerIndex - headerStart == size {
            // ByteBuffer only hands out readable bytes: step back over the header, take it, step on.
            buffer.moveReaderIndex(to: headerStart)
            if let key = outgoing.maskingKey {
                buffer.setInteger(key.packed, at: headerStart + size - 4, endianness: .host)
            }
            destination.write(NIOAny(buffer.readSlice(length: size)!), promise: nil)
        } else {
            var bytes = destination.channel.allocator.buffer(capacity: size)
            outgoing.write(to: &bytes)
            destination.write(NIOAny(bytes), promise: nil)
        }
    }

    private func control(_ frame: ControlFrame, from side: Side) {
        switch frame.opcode {
        case .close:
            self.perform(self.closeState.closeReceived(from: side, code: frame.closeCode), relaying: frame)
        default:
            guard self.closeState.mayWrite(to: side.other) else { return }
            self.writeControl(opcode: frame.opcode, payload: frame.payload, to: side.other)
        }
    }

    /// Writes a whole control frame, masked toward the upstream.
    private func writeControl(opcode: Opcode, payload: ByteBuffer, to side: Side) {
        guard let context = self.contexts[side] else { return }
        var encoder = Self.encoder(toward: side)
        var bytes = context.channel.allocator.buffer(capacity: 14 + payload.readableBytes)
        encoder.writeFrame(opcode: opcode, payload: payload, to: &bytes)
        context.write(NIOAny(bytes), promise: nil)
    }

    func readComplete(from side: Side) {
        self.contexts[side.other]?.flush()
    }

    /// The outbound `read` from `side`'s pipeline: held while the other leg cannot take more.
    func shouldRead(_ side: Side) -> Bool {
        if self.policy.throttled[side] != nil {
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
        if self.heldRead[source], self.policy.throttled[source] == nil, let sourceContext = self.contexts[source] {
            self.heldRead[source] = false
            sourceContext.read()
        }
    }

    func inactive(_ side: Side) {
        self.perform(self.closeState.tcpClosed(side))
    }

    func gatewayClose(_ code: CloseCode, reason: String) {
        self.perform(self.closeState.gatewayClose(code, reason: reason))
    }

    // MARK: Actions

    private func perform(_ actions: [RelayCloseState.Action], relaying frame: ControlFrame? = nil) {
        for action in actions {
            switch action {
            case .stopReading(let side):
                self.discarding[side] = true
            case .relayClose(let side):
                self.writeClose(to: side) { encoder, bytes in
                    encoder.writeFrame(opcode: .close, payload: frame?.payload ?? ByteBuffer(), to: &bytes)
                }
            case .sendClose(let side, let code, let reason):
                self.writeClose(to: side) { encoder, bytes in
                    encoder.writeClose(code: code, reason: reason, to: &bytes)
                }
            case .startCloseTimer:
                let session = NIOLoopBound(self, eventLoop: self.eventLoop)
                self.closeTimer = self.eventLoop.scheduleTask(in: self.closeTimeout) {
                    session.value.perform(session.value.closeState.closeTimerFired())
                }
            case .closeLeg(let side):
                self.closeConnection(side)
            case .finish:
                self.closeTimer?.cancel()
                self.closeConnection(.client)
                self.closeConnection(.upstream)
                self.finish()
            }
        }
    }

    /// Flushes what was written to `side` and closes its connection.
    private func closeConnection(_ side: Side) {
        guard let context = self.contexts[side] else { return }
        context.flush()
        context.close(promise: nil)
    }

    /// The encoder for frames the gateway writes toward `side`: masked with fresh keys toward the
    /// upstream (the gateway is its client), unmasked toward the client.
    private static func encoder(toward side: Side) -> FrameEncoder {
        side == .upstream ? FrameEncoder(role: .client, keys: RelaySession.maskingKeys) : FrameEncoder(role: .server)
    }

    /// Writes a Close to `side` if the stream toward it is between frames; otherwise closes its TCP
    /// connection (a Close is never written inside a half-relayed frame, DESIGN §3).
    private func writeClose(to side: Side, _ write: (inout FrameEncoder, inout ByteBuffer) -> Void) {
        guard let context = self.contexts[side] else { return }
        if self.unfinishedPayload[side.other] > 0 {
            context.close(promise: nil)
            self.perform(self.closeState.closeImpossible(side))
            return
        }
        var encoder = Self.encoder(toward: side)
        var bytes = context.channel.allocator.buffer(capacity: 14 + 125)
        write(&encoder, &bytes)
        context.writeAndFlush(NIOAny(bytes), promise: nil)
    }

    private func finish() {
        guard !self.finished else { return }
        self.finished = true
        self.idleTimer?.cancel()
        self.policyFinished()
        self.onFinish?(self.closeState.outcome, self.stats)
        self.onFinish = nil
    }

    /// Masking keys from one generator per event-loop thread (256 bytes each), so there is no system
    /// call per frame and no per-connection key buffer.
    static var maskingKeys: MaskingKeyGenerator {
        if let generator = threadKeys.currentValue { return generator }
        let generator = MaskingKeyGenerator()
        threadKeys.currentValue = generator
        return generator
    }

    /// Each thread sees only its own generator, so sharing the variable across threads is safe.
    nonisolated(unsafe) private static let threadKeys = ThreadSpecificVariable<MaskingKeyGenerator>()
}

// MARK: - Policies (issue #5 C–D): rate limits, keep-alive, maximum lifetime

extension RelaySession {
    /// Starts the keep-alive of `side` and, with the first leg, the lifetime timer.
    fileprivate func policyAttached(_ side: Side) {
        let now = self.eventLoop.now
        if let interval = self.policy.policy.pingInterval {
            // The nonce comes from the CSPRNG-fed masking-key generator: peers cannot guess it.
            let nonce = UInt64(RelaySession.maskingKeys.nextKey().packed) << 32 | UInt64(RelaySession.maskingKeys.nextKey().packed)
            self.policy.keepAlive[side] = KeepAlive(interval: interval, deadline: self.policy.policy.pongDeadline, nonce: nonce, now: now)
            self.scheduleKeepAlive(side, at: now + interval)
        }
        if let lifetime = self.policy.policy.maxLifetime, self.policy.lifetimeTimer == nil {
            let session = NIOLoopBound(self, eventLoop: self.eventLoop)
            self.policy.lifetimeTimer = self.eventLoop.scheduleTask(in: lifetime) {
                let session = session.value
                guard !session.finished else { return }
                session.policy.count("wsgate_max_lifetime_closes_total", [])
                session.gatewayClose(.goingAway, reason: "maximum lifetime")
            }
        }
    }

    fileprivate func policyFinished() {
        self.policy.lifetimeTimer?.cancel()
        for side in [Side.client, .upstream] {
            self.policy.keepAliveTimers[side]?.cancel()
            self.policy.keepAlive[side]?.stop()
            self.policy.throttled[side]?.timer?.cancel()
            self.policy.throttled[side] = nil
        }
    }

    // MARK: Rate limits

    /// Asks `side`'s rate limiter whether `event` may be relayed now. On `throttle` the event and the
    /// rest of the buffer are held and `side` is no longer read until a timer on the event loop resumes
    /// it (lossless); on `close` the offender gets 1008 through the close state machine (at a frame
    /// boundary: the frame's header was not forwarded). Returns whether to go on.
    fileprivate func admit(_ event: RelayPolicyState.Throttled.Pending, from side: Side, rest buffer: inout ByteBuffer) -> Bool {
        guard self.policy.limiters[side] != nil else { return true }
        let now = self.eventLoop.now
        let verdict: RateLimiter.Verdict
        switch event {
        case .header(let header):
            let startsMessage = header.opcode != .continuation
            verdict = self.policy.limiters[side]!.dataFrame(startsMessage: startsMessage, payloadLength: header.payloadLength, now: now)
        case .control(let frame):
            // Close frames are not limited: a peer's Close is always honoured.
            guard frame.opcode != .close else { return true }
            verdict = self.policy.limiters[side]!.controlFrame(now: now)
        }
        switch verdict {
        case .pass:
            return true
        case .throttle(let until, let limit):
            self.policy.count("wsgate_rate_limit_decisions_total", [("side", side.rawValue), ("limit", limit.rawValue), ("action", "throttle")])
            let stash = buffer.readSlice(length: buffer.readableBytes)!
            self.policy.throttled[side] = .init(pending: event, stash: stash, timer: self.scheduleResume(side, at: until))
            return false
        case .close(let limit):
            self.policy.count("wsgate_rate_limit_decisions_total", [("side", side.rawValue), ("limit", limit.rawValue), ("action", "close")])
            buffer.moveReaderIndex(to: buffer.writerIndex)
            self.perform(self.closeState.policyViolation(by: side, code: .policyViolation, reason: "rate limit: \(limit.rawValue)"))
            return false
        }
    }

    /// While `side` is throttled, what it still sends (reads already under way) is appended to the held
    /// bytes: at most what NIO reads before the held `read()` takes effect.
    fileprivate func stashIfThrottled(_ side: Side, _ buffer: inout ByteBuffer) -> Bool {
        guard self.policy.throttled[side] != nil else { return false }
        self.policy.throttled[side]!.stash.writeBuffer(&buffer)
        return true
    }

    private func scheduleResume(_ side: Side, at deadline: NIODeadline) -> Scheduled<Void> {
        let session = NIOLoopBound(self, eventLoop: self.eventLoop)
        return self.eventLoop.scheduleTask(deadline: deadline) { session.value.resume(side) }
    }

    /// Tokens are back: relay the held event, then the held bytes, then read `side` again.
    private func resume(_ side: Side) {
        guard !self.finished, let throttled = self.policy.throttled[side] else { return }
        self.policy.throttled[side] = nil
        var stash = throttled.stash
        if !self.discarding[side] {
            guard self.admit(throttled.pending, from: side, rest: &stash) else {
                if self.policy.throttled[side] != nil {
                    // Still short (cannot happen with exact arithmetic; kept for safety): keep waiting.
                    return
                }
                return self.readComplete(from: side)
            }
            switch throttled.pending {
            case .header(let header):
                var nothing = ByteBuffer()
                // headerStart -1: the header is encoded afresh (the read buffer it came in is gone).
                self.forwardHeader(header, from: side, in: &nothing, headerStart: -1)
            case .control(let frame):
                self.control(frame, from: side)
            }
        }
        if stash.readableBytes > 0 { self.read(from: side, &stash) }
        self.readComplete(from: side)
        if self.policy.throttled[side] == nil, self.heldRead[side], let context = self.contexts[side], self.shouldRead(side) {
            self.heldRead[side] = false
            context.read()
        }
    }

    // MARK: Keep-alive

    private func scheduleKeepAlive(_ side: Side, at deadline: NIODeadline) {
        let session = NIOLoopBound(self, eventLoop: self.eventLoop)
        self.policy.keepAliveTimers[side] = self.eventLoop.scheduleTask(deadline: deadline) {
            session.value.keepAliveTimerFired(side)
        }
    }

    private func keepAliveTimerFired(_ side: Side) {
        guard !self.finished, self.policy.keepAlive[side] != nil else { return }
        let midFrame = self.unfinishedPayload[side.other] > 0
        let action = self.policy.keepAlive[side]!.timerFired(now: self.eventLoop.now, midFrame: midFrame)
        self.performKeepAlive(action, side)
        if midFrame, self.policy.keepAlive[side]?.state == .pingOwed {
            // Poll: the frame toward the leg may stall (its reader is gone); idle then ends it.
            self.scheduleKeepAlive(side, at: self.eventLoop.now + self.policy.policy.pongDeadline)
        }
    }

    fileprivate func keepAliveFrameBoundary(_ side: Side) {
        guard let action = self.policy.keepAlive[side]?.frameBoundary(now: self.eventLoop.now) else { return }
        self.performKeepAlive(action, side)
    }

    private func performKeepAlive(_ action: KeepAlive.Action, _ side: Side) {
        switch action {
        case .none:
            break
        case .checkAt(let deadline):
            self.scheduleKeepAlive(side, at: deadline)
        case .sendPing(let payload, let checkAt):
            // No pings once a Close went either way on this leg: the close timeout governs then.
            guard self.closeState.mayWrite(to: side), !self.closeState.legs[side].closeReceived else {
                self.policy.keepAlive[side]?.stop()
                return
            }
            self.writeControl(opcode: .ping, payload: ByteBuffer(bytes: payload), to: side)
            self.contexts[side]?.flush()
            self.scheduleKeepAlive(side, at: checkAt)
        case .dead:
            // A close handshake under way on this leg is bounded by the close timeout instead.
            guard self.closeState.mayWrite(to: side), !self.closeState.legs[side].closeReceived else { return }
            self.policy.count("wsgate_keepalive_timeouts_total", [("side", side.rawValue)])
            self.perform(self.closeState.keepAliveExpired(side))
        }
    }

    /// Whether `frame` (a pong from `side`) answers one of the gateway's pings: then it is consumed.
    fileprivate func consumeKeepAlivePong(_ frame: ControlFrame, from side: Side) -> Bool {
        self.policy.keepAlive[side]?.pongReceived(frame.payload, now: self.eventLoop.now) ?? false
    }
}
