import Frames
import NIOCore
import NIOPosix

/// One relayed WebSocket connection after both handshakes: the client leg and the upstream leg, on the
/// same event loop, with no locks (DESIGN §3).
///
/// Cut-through: a frame's header is forwarded as soon as it is parsed, its payload in the chunks it
/// arrives in, and everything one read yields goes out as one write (``readFromClient(_:parser:)``,
/// ``readFromUpstream(_:parser:)``). The read buffer is never written to. Client → upstream: frames
/// are validated, unmasked and remasked with a fresh key while they are copied to an output buffer.
/// Upstream → client: frames are validated and forwarded as slices of the read buffer. Control frames
/// are relayed; the close handshake follows ``RelayCloseState``. When a leg is not writable, the other
/// leg is not read (backpressure).
final class RelaySession {
    struct Stats {
        var messages = 0
        var bytes = 0
    }

    let eventLoop: any EventLoop
    /// Shared by every session on this event loop's thread.
    private let resources: RelayResources
    private(set) var contexts = PerSide<ChannelHandlerContext?>(nil)
    private var clientParser: FrameParser
    private var upstreamParser: FrameParser
    private var closeState = RelayCloseState()
    private var heldRead = PerSide(false)
    /// Legs whose input is discarded (after their Close or a violation). They are still read, so that
    /// their TCP close is seen.
    private var discarding = PerSide(false)
    private var closeTimer: Scheduled<Void>?
    private let closeTimeout: TimeAmount
    var stats: PerSide<Stats> { PerSide(client: self.legs.client.stats, upstream: self.legs.upstream.stats) }
    private(set) var finished = false
    /// Metrics and drain (issue #6, `RelaySession+Operations.swift`).
    var operations = RelayOperations()
    /// Called once when both connections are closed, with who closed and the code.
    var onFinish: ((RelayCloseState.Outcome?, _ stats: PerSide<Stats>) -> Void)?

    /// No frame in either direction for this long closes both legs with 1001 (DESIGN §7: 120 s).
    private let idleTimeout: TimeAmount
    private var lastActivity = NIODeadline.now()
    private var idleTimer: Scheduled<Void>?
    /// Where the current read started and the activity time before it: a read that holds only the
    /// gateway's own keep-alive pong does not postpone the idle timeout.
    private var readStart = 0
    private var activityBeforeRead: NIODeadline
    /// Rate limits, keep-alive and maximum lifetime (issue #5; the extension at the end of this file).
    private var policy: RelayPolicyState
    /// permessage-deflate per direction, by source side; nil: the plain loops (the extension at the end).
    private var transcoders = PerSide<MessageTranscoder?>(nil)
    /// The key and payload offset of a verbatim compressed frame from the client, masked by the relay.
    private var verbatimMask: (key: MaskingKey, offset: Int)?

    init(
        eventLoop: any EventLoop,
        limits: GatewayConfiguration.Limits,
        closeTimeout: TimeAmount,
        idleTimeout: TimeAmount,
        policy: RelayPolicy = RelayPolicy(),
        compression: RelayCompression = .none
    ) {
        self.eventLoop = eventLoop
        self.resources = RelayResources.current
        self.policy = RelayPolicyState(policy, now: eventLoop.now)
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
        self.readStart = readStart
        self.activityBeforeRead = previousActivity
        // The parser is passed `inout` for the whole read: one exclusivity check per read instead of
        // one per event on a class property. Nothing the loop calls touches the parsers.
        switch side {
        case .client where self.transcoders.client != nil: self.readCompressed(from: .client, &buffer, parser: &self.clientParser)
        case .upstream where self.transcoders.upstream != nil: self.readCompressed(from: .upstream, &buffer, parser: &self.upstreamParser)
        case .client: self.readFromClient(&buffer, parser: &self.clientParser)
        case .upstream: self.readFromUpstream(&buffer, parser: &self.upstreamParser)
        }
    }

    /// Per-leg relay state, read into a local for the length of a read and stored back before anything
    /// that looks at it (the close handshake) runs.
    struct LegState {
        /// FIN of the current data frame.
        var fin = false
        /// Payload bytes of the frame whose header was forwarded that are still to come: while it is not
        /// zero, nothing else may be written in that direction.
        var unfinishedPayload = 0
        var stats = Stats()
    }

    private(set) var legs = PerSide(LegState())

    /// Client → upstream. Each frame needs a fresh masking key, so its bytes cannot be forwarded as they
    /// came: the parser copies each payload chunk, unmasked, validated and remasked in the same pass, into
    /// one output buffer per read, behind the re-encoded headers; the read buffer is only read (writing
    /// to it would copy it: NIO's receive pool shares it). The output is written once per read.
    private func readFromClient(_ buffer: inout ByteBuffer, parser: inout FrameParser) {
        var leg = self.legs.client
        let destination = self.contexts.upstream
        var forwarding = destination != nil && self.closeState.mayWrite(to: .upstream)
        // A read's output is at most its input plus one header completed from a previous read's bytes.
        var output = self.resources.takeOutputBuffer(minimumWritableBytes: buffer.readableBytes + 14)
        defer { self.resources.returnOutputBuffer(output) }
        do {
            while true {
                let before = buffer.readerIndex
                guard let event = try parser.next(&buffer, copyingPayloadTo: &output) else { break }
                switch event {
                case .header(let header):
                    if self.policy.limiters.client != nil, let verdict = self.rateVerdict(.header(header), from: .client) {
                        // Held or refused: what came before goes first; the header is not forwarded.
                        if forwarding { Self.send(&output, to: destination) }
                        self.legs.client = leg
                        self.enforce(verdict, on: .header(header), from: .client, rest: &buffer)
                        return
                    }
                    leg.fin = header.fin
                    // RFC 6455 §5.3, §10.3: a fresh, unpredictable key for every frame the gateway sends.
                    let key = self.resources.maskingKeys.nextKey()
                    parser.remaskPayload(with: key)
                    if forwarding {
                        var outgoing = header
                        outgoing.maskingKey = key
                        outgoing.write(to: &output)
                        leg.unfinishedPayload = header.payloadLength
                    }
                case .payload(let count):
                    leg.stats.bytes += count
                    if forwarding {
                        leg.unfinishedPayload -= count
                    } else {
                        output.moveWriterIndex(to: output.writerIndex - count)
                    }
                case .frameEnd:
                    if leg.fin { leg.stats.messages += 1 }
                    if self.hasFrameBoundaryWork(toward: .upstream) {
                        // What came before goes first.
                        if forwarding { Self.send(&output, to: destination) }
                        self.legs.client = leg
                        self.atFrameBoundary(toward: .upstream)
                        leg = self.legs.client
                        forwarding = forwarding && self.closeState.mayWrite(to: .upstream)
                    }
                case .control(let frame) where frame.opcode != .close:
                    if frame.opcode == .pong, self.consumeKeepAlivePong(frame, from: .client) {
                        self.keepAlivePongConsumed(eventStart: before, rest: buffer)
                        continue
                    }
                    if self.policy.limiters.client != nil, let verdict = self.rateVerdict(.control(frame), from: .client) {
                        if forwarding { Self.send(&output, to: destination) }
                        self.legs.client = leg
                        self.enforce(verdict, on: .control(frame), from: .client, rest: &buffer)
                        return
                    }
                    if forwarding {
                        var encoder = FrameEncoder(role: .client, keys: self.resources.maskingKeys)
                        encoder.writeFrame(opcode: frame.opcode, payload: frame.payload, to: &output)
                    }
                case .control(let frame):
                    // What came before the Close goes first; the Close is the handshake's business.
                    Self.send(&output, to: destination)
                    self.legs.client = leg
                    self.control(frame, from: .client)
                    leg = self.legs.client
                    if self.discarding.client { return }
                    forwarding = self.closeState.mayWrite(to: .upstream)
                }
            }
            if forwarding { Self.send(&output, to: destination) }
            self.legs.client = leg
        } catch {
            // Frames before the violation are owed to the upstream before any Close.
            if forwarding { Self.send(&output, to: destination) }
            self.legs.client = leg
            self.operations.metrics?.protocolViolation(side: .client, error)
            self.perform(self.closeState.violation(by: .client, error: error))
        }
    }

    /// Upstream → client. Frames from the upstream are not masked and keep their bytes, so everything
    /// parsed is forwarded as it came, as slices of the read buffer: one per read, unless a header or a
    /// control frame arrived split across reads (it is re-encoded) or a Close interrupts. Validation
    /// only reads the buffer, so it is never copied.
    private func readFromUpstream(_ buffer: inout ByteBuffer, parser: inout FrameParser) {
        var leg = self.legs.upstream
        let destination = self.contexts.client
        var forwarding = destination != nil && self.closeState.mayWrite(to: .client)
        // Bytes from `runStart` up to the end of the last event are forwarded verbatim.
        var runStart = buffer.readerIndex
        var eventEnd = buffer.readerIndex
        do {
            while let event = try parser.nextInPlace(&buffer) {
                switch event {
                case .header(let header):
                    if self.policy.limiters.upstream != nil, let verdict = self.rateVerdict(.header(header), from: .upstream) {
                        // Held or refused: what came before goes first; the header is not forwarded.
                        if forwarding { Self.send(&buffer, from: runStart, to: eventEnd, to: destination) }
                        self.legs.upstream = leg
                        self.enforce(verdict, on: .header(header), from: .upstream, rest: &buffer)
                        return
                    }
                    leg.fin = header.fin
                    if forwarding {
                        leg.unfinishedPayload = header.payloadLength
                        if buffer.readerIndex - eventEnd != header.encodedSize {
                            // Split across reads (or not minimally encoded): the header is written anew.
                            Self.send(&buffer, from: runStart, to: eventEnd, to: destination)
                            var bytes = destination!.channel.allocator.buffer(capacity: header.encodedSize)
                            header.write(to: &bytes)
                            destination!.write(NIOAny(bytes), promise: nil)
                            runStart = buffer.readerIndex
                        }
                    }
                case .payload(let count):
                    leg.stats.bytes += count
                    if forwarding { leg.unfinishedPayload -= count }
                case .frameEnd:
                    if leg.fin { leg.stats.messages += 1 }
                    if self.hasFrameBoundaryWork(toward: .client) {
                        // The frame's bytes go first.
                        if forwarding { Self.send(&buffer, from: runStart, to: buffer.readerIndex, to: destination) }
                        runStart = buffer.readerIndex
                        self.legs.upstream = leg
                        self.atFrameBoundary(toward: .client)
                        leg = self.legs.upstream
                        forwarding = forwarding && self.closeState.mayWrite(to: .client)
                    }
                case .control(let frame) where frame.opcode != .close:
                    if frame.opcode == .pong, self.consumeKeepAlivePong(frame, from: .upstream) {
                        // Consumed: its bytes are cut out of the verbatim run.
                        if forwarding { Self.send(&buffer, from: runStart, to: eventEnd, to: destination) }
                        runStart = buffer.readerIndex
                        self.keepAlivePongConsumed(eventStart: eventEnd, rest: buffer)
                        eventEnd = buffer.readerIndex
                        continue
                    }
                    if self.policy.limiters.upstream != nil, let verdict = self.rateVerdict(.control(frame), from: .upstream) {
                        if forwarding { Self.send(&buffer, from: runStart, to: eventEnd, to: destination) }
                        self.legs.upstream = leg
                        self.enforce(verdict, on: .control(frame), from: .upstream, rest: &buffer)
                        return
                    }
                    if buffer.readerIndex - eventEnd != 2 + frame.payload.readableBytes {
                        // It arrived split: its bytes are not all in this buffer.
                        if forwarding { Self.send(&buffer, from: runStart, to: eventEnd, to: destination) }
                        runStart = buffer.readerIndex
                        if forwarding { self.writeControl(opcode: frame.opcode, payload: frame.payload, to: .client) }
                    }
                case .control(let frame):
                    if forwarding { Self.send(&buffer, from: runStart, to: eventEnd, to: destination) }
                    runStart = buffer.readerIndex
                    self.legs.upstream = leg
                    self.control(frame, from: .upstream)
                    leg = self.legs.upstream
                    if self.discarding.upstream { return }
                    forwarding = self.closeState.mayWrite(to: .client)
                }
                eventEnd = buffer.readerIndex
            }
        } catch {
            // Falls through: the frames before the violation are owed to the client before any Close.
            if forwarding { Self.send(&buffer, from: runStart, to: eventEnd, to: destination) }
            self.legs.upstream = leg
            self.operations.metrics?.protocolViolation(side: .upstream, error)
            self.perform(self.closeState.violation(by: .upstream, error: error))
            return
        }
        // Bytes after `eventEnd` are the start of a header the parser keeps until the next read.
        if forwarding { Self.send(&buffer, from: runStart, to: eventEnd, to: destination) }
        self.legs.upstream = leg
    }

    /// Writes the readable bytes of `output` to `context`, once: afterwards they are no longer readable.
    private static func send(_ output: inout ByteBuffer, to context: ChannelHandlerContext?) {
        guard output.readableBytes > 0, let context else { return }
        context.write(NIOAny(output), promise: nil)
        output.moveReaderIndex(to: output.writerIndex)
    }

    /// Writes bytes `start..<end` of `buffer` (already consumed) to `context` as a slice.
    private static func send(_ buffer: inout ByteBuffer, from start: Int, to end: Int, to context: ChannelHandlerContext?) {
        guard end > start, let context else { return }
        // ByteBuffer only hands out readable bytes: step back over the run, take it, step on.
        let current = buffer.readerIndex
        buffer.moveReaderIndex(to: start)
        let slice = buffer.readSlice(length: end - start)!
        buffer.moveReaderIndex(to: current)
        context.write(NIOAny(slice), promise: nil)
    }

    private func control(_ frame: ControlFrame, from side: Side) {
        switch frame.opcode {
        case .close:
            self.operations.metrics?.close(side: side, code: frame.closeCode, byPeer: true)
            self.perform(self.closeState.closeReceived(from: side, code: frame.closeCode), relaying: frame)
        default:
            guard self.closeState.mayWrite(to: side.other) else { return }
            self.writeControl(opcode: frame.opcode, payload: frame.payload, to: side.other)
        }
    }

    /// Writes a whole control frame, masked toward the upstream.
    private func writeControl(opcode: Opcode, payload: ByteBuffer, to side: Side) {
        guard let context = self.contexts[side] else { return }
        var encoder = self.encoder(toward: side)
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
        if !self.closeState.legs[side].closeReceived && !self.closeState.legs[side].tcpCloseRequested
            && !self.operations.forceClosed
        {
            self.operations.metrics?.close(side: side, code: .abnormalClosure, byPeer: true)
        }
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
                self.operations.metrics?.close(side: side, code: code, byPeer: false)
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
    private func encoder(toward side: Side) -> FrameEncoder {
        side == .upstream ? FrameEncoder(role: .client, keys: self.resources.maskingKeys) : FrameEncoder(role: .server)
    }

    /// Writes a Close to `side` if the stream toward it is between frames; otherwise closes its TCP
    /// connection (a Close is never written inside a half-relayed frame, DESIGN §3).
    private func writeClose(to side: Side, _ write: (inout FrameEncoder, inout ByteBuffer) -> Void) {
        guard let context = self.contexts[side] else { return }
        if self.legs[side.other].unfinishedPayload > 0 {
            context.close(promise: nil)
            self.perform(self.closeState.closeImpossible(side))
            return
        }
        var encoder = self.encoder(toward: side)
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
}

// MARK: - Policies (issue #5 C–D): rate limits, keep-alive, maximum lifetime

extension RelaySession {
    /// Starts the keep-alive of `side` and, with the first leg, the lifetime timer.
    fileprivate func policyAttached(_ side: Side) {
        let now = self.eventLoop.now
        if let interval = self.policy.policy.pingInterval {
            // The nonce comes from the CSPRNG-fed masking-key generator: peers cannot guess it.
            let keys = self.resources.maskingKeys
            let nonce = UInt64(keys.nextKey().packed) << 32 | UInt64(keys.nextKey().packed)
            self.policy.keepAlive[side] = KeepAlive(interval: interval, deadline: self.policy.policy.pongDeadline, nonce: nonce, now: now)
            self.scheduleKeepAlive(side, at: now + interval)
        }
        if let lifetime = self.policy.policy.maxLifetime, self.policy.lifetimeTimer == nil {
            let session = NIOLoopBound(self, eventLoop: self.eventLoop)
            self.policy.lifetimeTimer = self.eventLoop.scheduleTask(in: lifetime) {
                let session = session.value
                guard !session.finished else { return }
                session.policy.countMaxLifetimeClose()
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

    /// Charges `event` from `side` to its rate limiter: `nil` when it may be relayed now, otherwise the
    /// verdict for ``enforce(_:on:from:rest:)``. Close frames are not limited: a peer's Close is always
    /// honoured.
    fileprivate func rateVerdict(_ event: RelayPolicyState.Throttled.Pending, from side: Side) -> RateLimiter.Verdict? {
        guard self.policy.limiters[side] != nil else { return nil }
        let now = self.eventLoop.now
        let verdict: RateLimiter.Verdict
        switch event {
        case .header(let header):
            let startsMessage = header.opcode != .continuation
            verdict = self.policy.limiters[side]!.dataFrame(startsMessage: startsMessage, payloadLength: header.payloadLength, now: now)
        case .control(let frame):
            guard frame.opcode != .close else { return nil }
            verdict = self.policy.limiters[side]!.controlFrame(now: now)
        }
        if case .pass = verdict { return nil }
        return verdict
    }

    /// Acts on a rate-limit verdict for `event`, whose bytes were parsed but not forwarded; `buffer` is
    /// the rest of the read. On `throttle` the event and the rest are held and `side` is no longer read
    /// until a timer on the event loop resumes it (lossless); on `close` the offender gets 1008 through
    /// the close state machine (at a frame boundary: the frame's header was not forwarded).
    fileprivate func enforce(_ verdict: RateLimiter.Verdict, on event: RelayPolicyState.Throttled.Pending, from side: Side, rest buffer: inout ByteBuffer) {
        switch verdict {
        case .pass:
            break
        case .throttle(let until, let limit):
            self.policy.countRateLimit(side, limit, .throttle)
            let stash = buffer.readSlice(length: buffer.readableBytes)!
            self.policy.throttled[side] = .init(pending: event, stash: stash, timer: self.scheduleResume(side, at: until))
        case .close(let limit):
            self.policy.countRateLimit(side, limit, .close)
            buffer.moveReaderIndex(to: buffer.writerIndex)
            self.perform(self.closeState.policyViolation(by: side, code: .policyViolation, reason: "rate limit: \(limit.rawValue)"))
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
            if let verdict = self.rateVerdict(throttled.pending, from: side) {
                // Still short (cannot happen with exact arithmetic; kept for safety): held again.
                self.enforce(verdict, on: throttled.pending, from: side, rest: &stash)
                if self.policy.throttled[side] != nil { return }
                return self.readComplete(from: side)
            }
            switch throttled.pending {
            case .header(let header):
                self.forwardHeldHeader(header, from: side)
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

    /// Forwards the header of a frame that was held by a throttle, encoded afresh (the read it came in
    /// is gone); toward the upstream with a fresh key, with which the parser remasks the payload.
    private func forwardHeldHeader(_ header: FrameHeader, from side: Side) {
        if self.transcoders[side] != nil { return self.forwardHeldHeaderCompressed(header, from: side) }
        var outgoing = header
        if side == .client {
            let key = self.resources.maskingKeys.nextKey()
            self.clientParser.remaskPayload(with: key)
            outgoing.maskingKey = key
        }
        self.legs[side].fin = header.fin
        guard self.closeState.mayWrite(to: side.other), let destination = self.contexts[side.other] else { return }
        self.legs[side].unfinishedPayload = header.payloadLength
        var bytes = destination.channel.allocator.buffer(capacity: outgoing.encodedSize)
        outgoing.write(to: &bytes)
        destination.write(NIOAny(bytes), promise: nil)
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
        let midFrame = self.legs[side.other].unfinishedPayload > 0
        let action = self.policy.keepAlive[side]!.timerFired(now: self.eventLoop.now, midFrame: midFrame)
        self.performKeepAlive(action, side)
        if midFrame, self.policy.keepAlive[side]?.state == .pingOwed {
            // Poll: the frame toward the leg may stall (its reader is gone); idle then ends it.
            self.scheduleKeepAlive(side, at: self.eventLoop.now + self.policy.policy.pongDeadline)
        }
    }

    /// Whether something waits for the end of the frame being relayed toward `destination`: a keep-alive
    /// ping owed to that leg, or a drain (`RelaySession+Operations`).
    fileprivate func hasFrameBoundaryWork(toward destination: Side) -> Bool {
        self.policy.keepAlive[destination]?.state == .pingOwed || self.operations.drainPending
    }

    /// A frame toward `destination` ended (what was relayed before it is written): the owed keep-alive
    /// ping goes out, then a pending drain's Close if no frame is half relayed either way.
    fileprivate func atFrameBoundary(toward destination: Side) {
        if self.policy.keepAlive[destination]?.state == .pingOwed { self.keepAliveFrameBoundary(destination) }
        if self.operations.drainPending { self.drainAtFrameBoundary() }
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
            self.policy.countKeepAliveTimeout(side)
            self.perform(self.closeState.keepAliveExpired(side))
        }
    }

    /// Whether `frame` (a pong from `side`) answers one of the gateway's pings: then it is consumed.
    fileprivate func consumeKeepAlivePong(_ frame: ControlFrame, from side: Side) -> Bool {
        self.policy.keepAlive[side]?.pongReceived(frame.payload, now: self.eventLoop.now) ?? false
    }

    /// The gateway's own pong is not application traffic: a read that held only it (it started the
    /// read at `eventStart` and nothing follows it) does not postpone the idle timeout.
    fileprivate func keepAlivePongConsumed(eventStart: Int, rest: ByteBuffer) {
        if eventStart == self.readStart && rest.readableBytes == 0 { self.lastActivity = self.activityBeforeRead }
    }
}

// MARK: - permessage-deflate (issue #5 A; the transcoder is in RelayCompression.swift)

extension RelaySession {
    /// Sets up what `compression` agreed: RSV1 is accepted only from a leg that negotiated, and each
    /// direction where a leg compresses gets a ``MessageTranscoder`` (its reads then go through
    /// ``readCompressed(from:_:parser:)``; other connections keep the plain loops untouched).
    fileprivate func compressionAttached(_ compression: RelayCompression, limits: GatewayConfiguration.Limits) {
        if compression.client != nil { self.clientParser.configuration.allowedReservedBits = .rsv1 }
        if compression.upstream != nil { self.upstreamParser.configuration.allowedReservedBits = .rsv1 }
        let allocator = ByteBufferAllocator()
        self.transcoders = PerSide(
            client: compression.transcoder(from: .client, maxMessageSize: limits.maxMessageSize, allocator: allocator),
            upstream: compression.transcoder(from: .upstream, maxMessageSize: limits.maxMessageSize, allocator: allocator)
        )
    }

    /// One read from `side` when compression is involved in its direction. Like the plain loops: frames
    /// forwarded as they are go into one output buffer per read (payload copied by the parser, remasked
    /// toward the upstream); rate limits, keep-alive pongs and frame boundaries are handled the same way.
    /// In addition, per message (``MessageTranscoder``): a transcoded message's frames are not forwarded
    /// but rewritten as new frames, and a verbatim compressed message is also inflated to validate it —
    /// from the client its payload is copied plain and masked here with the forwarded header's key.
    fileprivate func readCompressed(from side: Side, _ buffer: inout ByteBuffer, parser: inout FrameParser) {
        let transcoder = self.transcoders[side]!
        let destinationSide = side.other
        var leg = self.legs[side]
        let destination = self.contexts[destinationSide]
        var forwarding = destination != nil && self.closeState.mayWrite(to: destinationSide)
        var output = self.resources.takeOutputBuffer(minimumWritableBytes: buffer.readableBytes + 14)
        defer { self.resources.returnOutputBuffer(output) }
        // A transcoded frame goes out whole, after what is already in `output`.
        let emit: (ByteBuffer) -> Void = { frame in
            guard forwarding, let destination else { return }
            Self.send(&output, to: destination)
            destination.write(NIOAny(frame), promise: nil)
        }
        do {
            while true {
                let before = buffer.readerIndex
                let start = output.writerIndex
                guard let event = try parser.next(&buffer, copyingPayloadTo: &output) else { break }
                switch event {
                case .header(let header):
                    if self.policy.limiters[side] != nil, let verdict = self.rateVerdict(.header(header), from: side) {
                        if forwarding { Self.send(&output, to: destination) }
                        self.legs[side] = leg
                        self.enforce(verdict, on: .header(header), from: side, rest: &buffer)
                        return
                    }
                    leg.fin = header.fin
                    if try transcoder.header(header) { continue }  // rewritten as new frames
                    var outgoing = header
                    if side == .client {
                        let key = self.resources.maskingKeys.nextKey()
                        outgoing.maskingKey = key
                        if transcoder.isInspecting {
                            self.verbatimMask = (key, 0)  // payload copied plain, masked below
                        } else {
                            parser.remaskPayload(with: key)
                        }
                    }
                    if forwarding {
                        outgoing.write(to: &output)
                        leg.unfinishedPayload = header.payloadLength
                    }
                case .payload(let count):
                    leg.stats.bytes += count
                    if transcoder.isInspecting {
                        try self.inspectVerbatim(count, at: start, in: &output, transcoder, from: side)
                    } else if transcoder.handlesPayload {
                        // Taken back out of `output`: the transcoder writes new frames.
                        let plain = output.getSlice(at: start, length: count)!
                        output.moveWriterIndex(to: output.writerIndex - count)
                        try transcoder.payload(plain, emit: emit)
                        continue
                    }
                    if forwarding {
                        leg.unfinishedPayload -= count
                    } else {
                        output.moveWriterIndex(to: output.writerIndex - count)
                    }
                case .frameEnd:
                    if leg.fin { leg.stats.messages += 1 }
                    try transcoder.frameEnd(fin: leg.fin, emit: emit)
                    if self.hasFrameBoundaryWork(toward: destinationSide) {
                        // As in the plain loops: what came before goes first.
                        if forwarding { Self.send(&output, to: destination) }
                        self.legs[side] = leg
                        self.atFrameBoundary(toward: destinationSide)
                        leg = self.legs[side]
                        forwarding = forwarding && self.closeState.mayWrite(to: destinationSide)
                    }
                case .control(let frame) where frame.opcode != .close:
                    if frame.opcode == .pong, self.consumeKeepAlivePong(frame, from: side) {
                        self.keepAlivePongConsumed(eventStart: before, rest: buffer)
                        continue
                    }
                    if self.policy.limiters[side] != nil, let verdict = self.rateVerdict(.control(frame), from: side) {
                        if forwarding { Self.send(&output, to: destination) }
                        self.legs[side] = leg
                        self.enforce(verdict, on: .control(frame), from: side, rest: &buffer)
                        return
                    }
                    if forwarding {
                        var encoder = self.encoder(toward: destinationSide)
                        encoder.writeFrame(opcode: frame.opcode, payload: frame.payload, to: &output)
                    }
                case .control(let frame):
                    Self.send(&output, to: destination)
                    self.legs[side] = leg
                    self.control(frame, from: side)
                    leg = self.legs[side]
                    if self.discarding[side] { return }
                    forwarding = self.closeState.mayWrite(to: destinationSide)
                }
            }
            if forwarding { Self.send(&output, to: destination) }
            self.legs[side] = leg
        } catch {
            if forwarding { Self.send(&output, to: destination) }
            self.legs[side] = leg
            self.operations.metrics?.protocolViolation(side: side, error)
            self.perform(self.closeState.violation(by: side, error: error))
        }
    }

    /// The `count` plain payload bytes of a verbatim compressed message that the parser just appended to
    /// `output` at `start`: inflated to validate them (size after inflation, UTF-8), then masked here
    /// toward the upstream with the forwarded header's key.
    private func inspectVerbatim(
        _ count: Int,
        at start: Int,
        in output: inout ByteBuffer,
        _ transcoder: MessageTranscoder,
        from side: Side
    ) throws(FramesError) {
        try transcoder.payload(output.getSlice(at: start, length: count)!) { _ in }
        guard side == .client, let (key, offset) = self.verbatimMask else { return }
        self.verbatimMask = (key, offset + count)
        let from = start - output.readerIndex
        output.withUnsafeMutableReadableBytes { raw in
            key.apply(to: UnsafeMutableRawBufferPointer(rebasing: raw[from..<(from + count)]), offset: offset)
        }
    }

    /// A frame held by a throttle, on a compressed direction: transcoded, or forwarded afresh.
    private func forwardHeldHeaderCompressed(_ header: FrameHeader, from side: Side) {
        let transcoder = self.transcoders[side]!
        self.legs[side].fin = header.fin
        do {
            if try transcoder.header(header) { return }
        } catch {
            self.operations.metrics?.protocolViolation(side: side, error)
            return self.perform(self.closeState.violation(by: side, error: error))
        }
        var outgoing = header
        if side == .client {
            let key = self.resources.maskingKeys.nextKey()
            outgoing.maskingKey = key
            if transcoder.isInspecting { self.verbatimMask = (key, 0) } else { self.clientParser.remaskPayload(with: key) }
        }
        guard self.closeState.mayWrite(to: side.other), let destination = self.contexts[side.other] else { return }
        self.legs[side].unfinishedPayload = header.payloadLength
        var bytes = destination.channel.allocator.buffer(capacity: outgoing.encodedSize)
        outgoing.write(to: &bytes)
        destination.write(NIOAny(bytes), promise: nil)
    }
}
