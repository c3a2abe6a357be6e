import Frames
import NIOCore

// MARK: - permessage-deflate (issue #5 A; the transcoder is in RelayCompression.swift)

extension Relay {
    /// Sets up what `compression` agreed: RSV1 is accepted only from a leg that negotiated, and each
    /// direction where a leg compresses gets a ``MessageTranscoder`` (the read loop then copies
    /// that direction's payloads and hands them to it).
    func compressionAttached(_ compression: RelayCompression, limits: GatewayConfiguration.Limits) {
        if compression.client != nil { self.clientParser.configuration.allowedReservedBits = .rsv1 }
        if compression.upstream != nil { self.upstreamParser.configuration.allowedReservedBits = .rsv1 }
        let allocator = ByteBufferAllocator()
        for side in [Side.client, .upstream] {
            let transcoder = compression.transcoder(
                from: side,
                maxMessageSize: limits.maxMessageSize,
                maxFrameSize: limits.maxFrameSize,
                allocator: allocator
            )
            self.direction(side) { $0.transcoder = transcoder }
        }
        if self.tap != nil { self.tapInflation() }
        self.compressionReservation = compression.reservation
    }

    /// The `count` plain payload bytes of a verbatim compressed message that the parser just appended to
    /// `output` at `start`: inflated to validate them (size after inflation, UTF-8), then masked here
    /// toward the upstream with the forwarded header's key.
    func inspectVerbatim(
        _ count: Int,
        at start: Int,
        in output: inout ByteBuffer,
        _ transcoder: MessageTranscoder,
        from side: Side
    ) throws(FramesError) {
        _ = try transcoder.payload(output.getSlice(at: start, length: count)!) { _ in }  // no gate: never suspends
        guard side == .client, let (key, offset) = self.verbatimMask else { return }
        self.verbatimMask = (key, offset + count)
        let from = start - output.readerIndex
        output.withUnsafeMutableReadableBytes { raw in
            key.apply(to: UnsafeMutableRawBufferPointer(rebasing: raw[from..<(from + count)]), offset: offset)
        }
    }

    // MARK: Transcoding flow (issue #10 item 6)

    /// Asked before each inflated chunk of a transcoded message is forwarded: whether it may go now.
    /// No when the destination is above its high watermark, when this read already inflated its share,
    /// or when the `bytes` rate limit (counted after inflation) refuses it; the reason is kept for
    /// ``suspendTranscoding(_:rest:)``.
    func admitInflated(_ count: Int, from side: Side, forwarding: Bool) -> Bool {
        guard forwarding, self.transport.isAttached(side.other) else { return true }
        if !self.transport.isWritable(side.other) {
            self.flow.refusal[side] = .writability
            return false
        }
        if self.flow.inflatedThisRead[side] >= self.flow.inflationPerRead {
            self.flow.refusal[side] = .workPerRead
            return false
        }
        let now = self.transport.now
        if let verdict = self.direction(side, { $0.limiter?.inflatedBytes(count, now: now) }) {
            switch verdict {
            case .pass:
                break
            case .throttle(let until, _):
                self.flow.refusal[side] = .throttle(until: until)
                return false
            case .close(let limit):
                self.flow.refusal[side] = .close(limit)
                return false
            }
        }
        self.flow.inflatedThisRead[side] += count
        return true
    }

    /// Inflated bytes of a verbatim compressed message (or the last chunks of a transcoded one), charged
    /// to the `bytes` rate limit as a debt.
    func chargeInspected(_ count: Int, from side: Side) {
        guard count > 0, self.direction(side, { $0.limiter != nil }) else { return }
        let now = self.transport.now
        self.direction(side) { $0.limiter!.chargeInflatedBytes(count, now: now) }
    }

    /// The transcoder of `side` stopped between frames: the rest of the read is kept and `side` is not
    /// read until ``resumeTranscoding(_:)`` (on writability, on the next loop turn, or when the rate
    /// limit's tokens are back); a `close` rate limit ends it with 1008 instead.
    func suspendTranscoding(_ side: Side, rest buffer: inout ByteBuffer) {
        let reason = self.flow.refusal[side] ?? .workPerRead
        self.flow.refusal[side] = nil
        let pause = TranscodeFlow.Pause(stash: buffer.readSlice(length: buffer.readableBytes)!, reason: reason)
        switch reason {
        case .writability:
            break
        case .workPerRead:
            self.transport.fireSoon(.transcodeResume(side), for: self)
        case .throttle(let until):
            self.policy.countRateLimit(side, .bytes, .throttle)
            self.schedule(.transcodeResume(side), at: until)
        case .close(let limit):
            return self.closeForRateLimit(side, limit)
        }
        self.flow.paused[side] = pause
    }

    /// While `side`'s transcoding is paused, what it still sends is appended to the kept bytes.
    func stashIfTranscodePaused(_ side: Side, _ buffer: inout ByteBuffer) -> Bool {
        guard self.flow.paused[side] != nil else { return false }
        self.flow.paused.modify(side) { _ = $0!.stash.writeBuffer(&buffer) }
        return true
    }

    /// Continues a paused transcoding: the rest of the interrupted payload, then the kept bytes (always
    /// parsed, even when empty: the parser may owe the frame's end), then reads resume.
    func resumeTranscoding(_ side: Side) {
        guard !self.finished, let pause = self.flow.paused[side], let transcoder = self.direction(side, { $0.transcoder }) else { return }
        self.flow.paused[side] = nil
        if case .throttle = pause.reason { self.transport.cancel(.transcodeResume(side)) }
        var stash = pause.stash
        if !self.discarding[side] {
            let destination = side.other
            let forwarding = self.transport.isAttached(destination) && self.closeState.mayWrite(to: destination)
            self.flow.inflatedThisRead[side] = 0
            do throws(FramesError) {
                let gate = { (count: Int) in self.admitInflated(count, from: side, forwarding: forwarding) }
                let step = try transcoder.resume(gate: gate) { frame in
                    if forwarding { self.transport.write(frame, to: destination) }
                }
                if step == .suspended {
                    // Paused before the flush: a flush can make the destination writable at once, and
                    // its `writabilityChanged` must find the pause.
                    self.suspendTranscoding(side, rest: &stash)
                    self.transport.flush(destination)
                    return
                }
            } catch {
                self.transport.flush(destination)
                self.operations.metrics?.protocolViolation(side: side, error)
                return self.perform(self.closeState.violation(by: side, error: error, boundary: self.boundaries))
            }
            self.read(from: side, &stash)
        }
        self.readComplete(from: side)
        if self.flow.paused[side] == nil, self.direction(side, { $0.throttled == nil }), self.heldRead[side], self.transport.isAttached(side) {
            self.heldRead[side] = false
            self.transport.read(side)
        }
    }

    /// `side` is no longer relayed (its input is discarded): a paused transcoding is dropped and its
    /// reads resume, so that its Close and its TCP close are seen.
    func transcodingStopped(_ side: Side) {
        guard let pause = self.flow.paused[side] else { return }
        if case .throttle = pause.reason { self.transport.cancel(.transcodeResume(side)) }
        self.flow.paused[side] = nil
        if self.heldRead[side], self.direction(side, { $0.throttled == nil }), self.transport.isAttached(side) {
            self.heldRead[side] = false
            self.transport.read(side)
        }
    }

    /// The connection ended: pause timers stop, the memory reservation is given back, and messages sent
    /// uncompressed because compressing did not pay are counted (issue #10 item 5), per destination.
    func compressionFinished() {
        for side in [Side.client, .upstream] {
            if case .throttle = self.flow.paused[side]?.reason { self.transport.cancel(.transcodeResume(side)) }
            self.flow.paused[side] = nil
            if let count = self.direction(side, { $0.transcoder?.uncompressedMessages }), count > 0 {
                self.policy.policy.metrics?.uncompressedMessages(route: self.policy.policy.route, side: side.other, count: count)
            }
        }
        self.compressionReservation?.release()
        self.compressionReservation = nil
    }
}
