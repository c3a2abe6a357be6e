import Frames
import NIOCore

// MARK: - Policies (issue #5 C–D): rate limits, keep-alive, maximum lifetime

extension Relay {
    /// Starts the keep-alive of `side` and, with the first leg, the lifetime timer.
    func policyAttached(_ side: Side) {
        let now = self.transport.now
        if let interval = self.policy.policy.pingInterval {
            // The nonce comes from the CSPRNG-fed masking-key generator: peers cannot guess it.
            let keys = self.resources.maskingKeys
            let nonce = UInt64(keys.nextKey().packed) << 32 | UInt64(keys.nextKey().packed)
            let keepAlive = KeepAlive(interval: interval, deadline: self.policy.policy.pongDeadline, nonce: nonce, now: now)
            self.direction(side) { $0.keepAlive = keepAlive }
            self.scheduleKeepAlive(side, at: now + interval)
        }
        if let lifetime = self.policy.policy.maxLifetime, !self.policy.lifetimeArmed {
            self.policy.lifetimeArmed = true
            self.schedule(.lifetime, in: lifetime)
        }
        self.expiryAttached()
    }

    func lifetimeReached() {
        guard !self.finished else { return }
        self.policy.countMaxLifetimeClose()
        self.gatewayClose(.goingAway, reason: "maximum lifetime")
    }

    func policyFinished() {
        self.transport.cancel(.lifetime)
        self.transport.cancel(.expiry)
        for side in [Side.client, .upstream] {
            self.transport.cancel(.keepAlive(side))
            let throttled = self.direction(side) { direction in
                direction.keepAlive?.stop()
                defer { direction.throttled = nil }
                return direction.throttled != nil
            }
            if throttled { self.transport.cancel(.throttleResume(side)) }
        }
    }

    // MARK: Rate limits

    /// Charges `event` from `side` to its rate limiter: `nil` when it may be relayed now, otherwise the
    /// verdict for ``enforce(_:on:from:rest:)``. Close frames are not limited: a peer's Close is always
    /// honoured.
    func rateVerdict(_ event: RelayPolicyState.Throttled.Pending, from side: Side) -> RateLimiter.Verdict? {
        if case .control(let frame) = event, frame.opcode == .close { return nil }
        let now = self.transport.now
        let verdict: RateLimiter.Verdict? = self.direction(side) { direction in
            guard direction.limiter != nil else { return nil }
            switch event {
            case .header(let header):
                let startsMessage = header.opcode != .continuation
                // Issue #10 item 6: a compressed message the gateway inflates is charged its inflated bytes
                // as they are produced (`admitInflated`, `chargeInspected`), not its wire bytes.
                let charged = direction.transcoder?.chargesInflatedBytes(header) == true ? 0 : header.payloadLength
                return direction.limiter!.dataFrame(startsMessage: startsMessage, payloadLength: charged, now: now)
            case .control:
                return direction.limiter!.controlFrame(now: now)
            }
        }
        if case .pass = verdict { return nil }
        return verdict
    }

    /// Acts on a rate-limit verdict for `event`, whose bytes were parsed but not forwarded; `buffer` is
    /// the rest of the read. On `throttle` the event and the rest are held and `side` is no longer read
    /// until a timer on the event loop resumes it (lossless); on `close` the offender gets 1008 through
    /// the close state machine (at a frame boundary: the frame's header was not forwarded).
    func enforce(_ verdict: RateLimiter.Verdict, on event: RelayPolicyState.Throttled.Pending, from side: Side, rest buffer: inout ByteBuffer) {
        switch verdict {
        case .pass:
            break
        case .throttle(let until, let limit):
            self.policy.countRateLimit(side, limit, .throttle)
            let stash = buffer.readSlice(length: buffer.readableBytes)!
            let throttled = RelayPolicyState.Throttled(pending: event, stash: stash)
            self.schedule(.throttleResume(side), at: until)
            self.direction(side) { $0.throttled = throttled }
        case .close(let limit):
            buffer.moveReaderIndex(to: buffer.writerIndex)
            self.closeForRateLimit(side, limit)
        }
    }

    /// A rate limit with `action: close` reached by `side`: counted, and 1008 to it (1001 to the other
    /// side) through the close state machine. The one place for the read loop and the transcoder.
    func closeForRateLimit(_ side: Side, _ limit: RateLimiter.Limit) {
        self.policy.countRateLimit(side, limit, .close)
        self.perform(
            self.closeState.policyViolation(
                by: side,
                code: .policyViolation,
                reason: "rate limit: \(limit.rawValue)",
                failed: true,
                boundary: self.boundaries
            )
        )
    }

    /// While `side` is throttled, what it still sends (reads already under way) is appended to the held
    /// bytes: at most what NIO reads before the held `read()` takes effect.
    func stashIfThrottled(_ side: Side, _ buffer: inout ByteBuffer) -> Bool {
        guard self.direction(side, { $0.throttled != nil }) else { return false }
        self.direction(side) { _ = $0.throttled!.stash.writeBuffer(&buffer) }
        return true
    }

    /// Tokens are back: relay the held event, then the held bytes, then read `side` again.
    func resume(_ side: Side) {
        guard !self.finished, let throttled = self.direction(side, { $0.throttled }) else { return }
        self.direction(side) { $0.throttled = nil }
        var stash = throttled.stash
        if !self.discarding[side] {
            if let verdict = self.rateVerdict(throttled.pending, from: side) {
                // Still short (cannot happen with exact arithmetic; kept for safety): held again.
                self.enforce(verdict, on: throttled.pending, from: side, rest: &stash)
                if self.direction(side, { $0.throttled != nil }) { return }
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
        if self.direction(side, { $0.throttled == nil }), self.heldRead[side], self.transport.isAttached(side), self.shouldRead(side) {
            self.heldRead[side] = false
            self.transport.read(side)
        }
    }

    /// Forwards the header of a frame that was held by a throttle, encoded afresh (the read it came in
    /// is gone), or hands it to the transcoder.
    func forwardHeldHeader(_ header: FrameHeader, from side: Side) {
        let transcoder = self.direction(side) { direction in
            direction.leg.fin = header.fin
            return direction.transcoder
        }
        do {
            if let transcoder, try transcoder.header(header) { return }
        } catch {
            self.operations.metrics?.protocolViolation(side: side, error)
            return self.perform(self.closeState.violation(by: side, error: error, boundary: self.boundaries))
        }
        let outgoing = self.outgoingHeader(header, from: side, transcoder, parser: &self.clientParser)
        guard self.closeState.mayWrite(to: side.other), self.transport.isAttached(side.other) else { return }
        self.direction(side) { $0.leg.unfinishedPayload = header.payloadLength }
        var bytes = self.transport.buffer(capacity: outgoing.encodedSize)
        outgoing.write(to: &bytes)
        self.transport.write(bytes, to: side.other)
    }

    // MARK: Keep-alive

    /// One keep-alive timer per leg: arming it replaces the one pending (before the boundary a poll
    /// could leave a second chain running beside it, whose firings the state machine ignored).
    func scheduleKeepAlive(_ side: Side, at deadline: NIODeadline) {
        self.schedule(.keepAlive(side), at: deadline)
    }

    func keepAliveTimerFired(_ side: Side) {
        guard !self.finished, self.direction(side, { $0.keepAlive != nil }) else { return }
        let midFrame = self.direction(side.other) { $0.leg.unfinishedPayload > 0 }
        let now = self.transport.now
        let action = self.direction(side) { $0.keepAlive!.timerFired(now: now, midFrame: midFrame) }
        self.performKeepAlive(action, side)
        if midFrame, self.direction(side, { $0.keepAlive?.state == .pingOwed }) {
            // Poll: the frame toward the leg may stall (its reader is gone); idle then ends it.
            self.scheduleKeepAlive(side, at: self.transport.now + self.policy.policy.pongDeadline)
        }
    }

    /// Whether something waits for the end of the frame being relayed toward `destination`: a keep-alive
    /// ping owed to that leg, or a Close owed to it (``RelayLegClose``).
    func hasFrameBoundaryWork(toward destination: Side) -> Bool {
        self.direction(destination, { $0.keepAlive?.state == .pingOwed }) || self.closeState.legs[destination].isOwed
    }

    /// A frame toward `destination` ended (what was relayed before it is written): the Close owed to
    /// that leg goes out, or else the owed keep-alive ping. Only this direction matters: the other
    /// direction's frames never hold it back (issue #10).
    func atFrameBoundary(toward destination: Side) {
        if self.closeState.legs[destination].isOwed { self.perform(self.closeState.frameBoundary(toward: destination, boundary: self.boundaries)) }
        if self.direction(destination, { $0.keepAlive?.state == .pingOwed }) { self.keepAliveFrameBoundary(destination) }
    }

    func keepAliveFrameBoundary(_ side: Side) {
        let now = self.transport.now
        guard let action = self.direction(side, { $0.keepAlive?.frameBoundary(now: now) }) else { return }
        self.performKeepAlive(action, side)
    }

    func performKeepAlive(_ action: KeepAlive.Action, _ side: Side) {
        switch action {
        case .none:
            break
        case .checkAt(let deadline):
            self.scheduleKeepAlive(side, at: deadline)
        case .sendPing(let payload, let checkAt):
            // No pings once a Close went either way on this leg: the close timeout governs then.
            guard self.closeState.legs[side].isOpen else {
                self.direction(side) { $0.keepAlive?.stop() }
                return
            }
            self.writeControl(opcode: .ping, payload: ByteBuffer(bytes: payload), to: side)
            self.transport.flush(side)
            self.scheduleKeepAlive(side, at: checkAt)
        case .dead:
            // A close handshake under way on this leg is bounded by the close timeout instead.
            guard self.closeState.legs[side].isOpen else { return }
            self.policy.countKeepAliveTimeout(side)
            self.perform(self.closeState.keepAliveExpired(side, boundary: self.boundaries))
        }
    }

    /// Whether `frame` (a pong from `side`) answers one of the gateway's pings: then it is consumed.
    func consumeKeepAlivePong(_ frame: ControlFrame, from side: Side) -> Bool {
        let now = self.transport.now
        return self.direction(side) { $0.keepAlive?.pongReceived(frame.payload, now: now) ?? false }
    }

    /// The gateway's own pong is not application traffic: a read that held only it (it started the
    /// read at `eventStart` and nothing follows it) does not postpone the idle timeout.
    func keepAlivePongConsumed(eventStart: Int, rest: ByteBuffer) {
        if eventStart == self.readStart && rest.readableBytes == 0 { self.lastActivity = self.activityBeforeRead }
    }
}
