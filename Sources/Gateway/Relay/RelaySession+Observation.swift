import CoreMetrics
import Frames
import NIOCore

/// The live figures' counters of one connection (issue #14 §1): the relay adds to its own
/// ``RelaySession/Stats`` per frame as always, and the difference since the last flush goes to the
/// Prometheus counters at most a second after the read that moved it (one timer per active connection,
/// armed by the first read batch after a flush), and at the end. Nothing is counted twice: the end
/// only flushes what is left.
struct RelayTraffic {
    let messages: PerSide<Counter>
    let bytes: PerSide<Counter>
    var flushed = PerSide(RelayStats())
    /// The flush timer (``RelayTimer/trafficFlush``) is armed.
    var timerArmed = false

    /// How long relayed traffic may wait before it shows in `/metrics`.
    static let flushInterval = TimeAmount.seconds(1)
}

extension Relay {
    // MARK: Live counters

    /// After a read batch (``readComplete(from:)``): the read's tap events are offered (one lock per
    /// subscriber per read, ``RelayTap/flush()``), and the flush timer is armed if it is not already.
    @inline(__always)
    func trafficRead() {
        if let tap = self.tap { tap.flush() }
        guard self.traffic != nil, !self.traffic!.timerArmed, !self.finished else { return }
        self.traffic!.timerArmed = true
        self.schedule(.trafficFlush, in: RelayTraffic.flushInterval)
    }

    func trafficTimerFired() {
        self.traffic?.timerArmed = false
        self.flushTraffic()
    }

    /// Adds what was relayed since the last flush to the counters.
    func flushTraffic() {
        guard var traffic = self.traffic else { return }
        let stats = self.stats
        for side in [Side.client, .upstream] {
            let messages = stats[side].messages - traffic.flushed[side].messages
            let bytes = stats[side].bytes - traffic.flushed[side].bytes
            if messages > 0 { traffic.messages[side].increment(by: Int64(messages)) }
            if bytes > 0 { traffic.bytes[side].increment(by: Int64(bytes)) }
        }
        traffic.flushed = stats
        self.traffic = traffic
    }

    /// At the end: the rest is flushed and the timer stopped.
    func trafficFinished() {
        self.tap?.flush()
        self.transport.cancel(.trafficFlush)
        self.traffic?.timerArmed = false
        self.flushTraffic()
    }

    // MARK: Live table

    /// What `/connections` shows of this connection now (read on its event loop).
    var liveFigures: LiveConnectionFigures {
        let stats = self.stats
        let state: LiveConnectionFigures.State =
            self.operations.draining
            ? .draining : (self.closeState.legs.client.isOpen && self.closeState.legs.upstream.isOpen ? .open : .closing)
        return LiveConnectionFigures(
            clientToUpstream: (stats.client.messages, stats.client.bytes),
            upstreamToClient: (stats.upstream.messages, stats.upstream.bytes),
            state: state
        )
    }

    // MARK: Tap (issue #14 §2)

    /// Recomputes which taps watch this connection (``TapHub``); `nil` when none does. `attached`: a tap
    /// was just added while this connection relays, so each subscriber new to it is sent an `open` from
    /// the live table first (``TapOpen/attachedLive``), and its frames can be labelled.
    func retap(_ hub: TapHub, attached: Bool = false) {
        guard !self.finished, let info = self.tapInfo else { return }
        let subscribers = hub.subscribers(matching: info)
        let previous = self.tap?.subscribers ?? []
        if subscribers.isEmpty {
            self.tap?.flush()
            self.tap = nil
        } else if let tap = self.tap {
            tap.replaceSubscribers(subscribers)
        } else {
            self.tap = RelayTap(info: info, subscribers: subscribers)
        }
        guard attached else { return }
        let known = Set(previous.map(ObjectIdentifier.init))
        let joined = subscribers.filter { !known.contains(ObjectIdentifier($0)) }
        guard !joined.isEmpty else { return }
        let open = TapOpen(live: info, redaction: hub.redaction, now: self.transport.now)
        for subscriber in joined { subscriber.offer(.open(open)) }
    }

    /// Issue #14 §2: while a tap watches, each direction's inflater (transcoding or only validating a
    /// verbatim message: the relay inflates every compressed message either way) also shows the tap
    /// what it inflated, so no second inflater and no extra memory; nothing relayed changes. Called when
    /// the tap or the compression changes.
    func tapInflation() {
        for side in [Side.client, .upstream] {
            guard let transcoder = self.direction(side, { $0.transcoder }) else { continue }
            if let tap = self.tap {
                tap.inflates[side] = true
                transcoder.inflationObserver = { [weak tap] chunk in tap?.inflated(chunk, from: side) }
            } else {
                transcoder.inflationObserver = nil
            }
        }
    }

    /// A Close frame from `side`, a Close the gateway sent to `side`, or `side`'s TCP lost.
    func tapClose(leg: Side, code: CloseCode?, reason: String, by: String) {
        guard let tap = self.tap else { return }
        let close = TapClose(connection: tap.info.id, time: tap.eventTime(), code: code.map { Int($0.rawValue) }, reason: reason, by: by, leg: leg)
        tap.emit(.close(close))
    }
}

extension RelayTap {
    // Per tapped frame: the capture is changed in place (`modify`, no copy of its arrays), the clock is
    // read once per read (``eventTime()``), and the event is queued for the read's one offer (``queue(_:)``).

    /// A data frame's header from `side`, as parsed.
    func begin(_ header: FrameHeader, from side: Side) {
        self.captures.modify(side) { capture in
            let rsv1 = header.reservedBits.contains(.rsv1)
            capture.header = FrameHeaderSummary(
                opcode: header.opcode,
                fin: header.fin,
                rsv1: rsv1,
                length: header.payloadLength,
                maskingKey: header.maskingKey
            )
            if header.opcode != .continuation {
                capture.messageOpcode = header.opcode
                capture.messageCompressed = rsv1
            }
            capture.payload = []
            capture.offset = 0
            capture.inflated = []
            capture.inflatedLength = 0
        }
    }

    /// `count` payload bytes of the current frame from `side`, the last `count` bytes read from
    /// `buffer` (the source's bytes, masked as they came: the copying read loop never writes to them,
    /// and the in-place one only reads server frames, which are not masked). Copied up to the bound,
    /// unmasked.
    func payload(from side: Side, _ buffer: ByteBuffer, count: Int) {
        let limit = self.captureLimit
        let inflates = self.inflates[side]
        self.captures.modify(side) { capture in
            defer { capture.offset += count }
            // Shown inflated instead (``inflated(_:from:)``), or nothing more to copy (`payload=none`).
            let wanted = capture.messageCompressed && inflates ? 0 : min(count, limit - capture.payload.count)
            guard wanted > 0 else { return }
            let start = capture.payload.count
            // The chunk is before the reader index, where `ByteBuffer`'s readers do not go.
            let first = buffer.readerIndex - count
            buffer.withVeryUnsafeBytes { capture.payload += UnsafeRawBufferPointer(rebasing: $0[first..<(first + wanted)]) }
            if let key = capture.header?.maskingKey {
                for index in 0..<wanted {
                    capture.payload[start + index] ^= key[(capture.offset + index) & 3]
                }
            }
        }
    }

    /// Bytes the relay just inflated from `side`'s current compressed message: copied up to the bound.
    func inflated(_ chunk: ByteBuffer, from side: Side) {
        guard self.captures[side].header != nil else { return }
        let limit = self.captureLimit
        self.captures.modify(side) { capture in
            capture.inflatedLength += chunk.readableBytes
            let wanted = min(chunk.readableBytes, limit - capture.inflated.count)
            if wanted > 0 { capture.inflated += chunk.readableBytesView.prefix(wanted) }
        }
    }

    /// The current frame from `side` ended (after the relay's inflater saw all of it): one `frame` event.
    func end(from side: Side) {
        let inflates = self.inflates[side]
        let id = self.info.id
        let time = self.eventTime()
        let frame = self.captures.modify(side) { capture -> TapFrame? in
            guard let header = capture.header else { return nil }
            // A tap attached mid-message did not see RSV1, but the relay's inflater (which did) still shows
            // it the message's inflated bytes: those frames are compressed too.
            let inflated = inflates && (capture.messageCompressed || capture.inflatedLength > 0)
            let frame = TapFrame(
                connection: id,
                time: time,
                from: side,
                opcode: header.opcode,
                messageOpcode: capture.messageOpcode,
                fin: header.fin,
                rsv1: header.rsv1,
                length: header.length,
                payload: inflated ? capture.inflated : capture.payload,
                compressed: capture.messageCompressed || inflated,
                inflatedLength: inflated ? capture.inflatedLength : nil
            )
            capture.header = nil
            capture.payload = []
            capture.inflated = []
            capture.inflatedLength = 0
            return frame
        }
        if let frame { self.queue(.frame(frame)) }
    }

    /// A whole control frame from `side` (its payload already unmasked).
    func control(_ frame: ControlFrame, from side: Side) {
        let length = frame.payload.readableBytes
        let payload = self.captureLimit > 0 && length > 0 ? Array(frame.payload.readableBytesView.prefix(self.captureLimit)) : []
        let event = TapFrame(
            connection: self.info.id,
            time: self.eventTime(),
            from: side,
            opcode: frame.opcode,
            messageOpcode: frame.opcode,
            fin: true,
            rsv1: false,
            length: length,
            payload: payload,
            compressed: false
        )
        self.queue(.frame(event))
    }
}
