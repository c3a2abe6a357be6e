import Frames
import NIOCore

/// Where one read's relayed bytes collect before they are written, in one of two ways:
/// - *copying*: the parser copies each payload chunk (validated, and remasked toward the upstream) into
///   one output buffer per read, behind re-encoded headers. Toward the upstream every frame needs a fresh
///   masking key (RFC 6455 §10.3), and compressed directions rewrite or inspect messages, so their bytes
///   cannot go out as they came. The read buffer is never written to (NIO's receive pool shares it).
/// - *in place* (upstream → client, no compression): frames keep their bytes, so what was parsed goes out
///   as slices of the read buffer — one run per read, unless a header or control frame arrived split
///   across reads (it is re-encoded), a pong is consumed, or a Close interrupts.
struct RelayOutput {
    let copying: Bool
    /// Copying: the output buffer.
    var output: ByteBuffer
    /// In place: the start of the run of read-buffer bytes not yet written.
    var runStart: Int

    init(copying: Bool, buffer: ByteBuffer, resources: RelayResources) {
        self.copying = copying
        // A read's output is at most its input plus one header completed from a previous read's bytes.
        self.output = copying ? resources.takeOutputBuffer(minimumWritableBytes: buffer.readableBytes + 14) : RelayOutput.empty
        self.runStart = buffer.readerIndex
    }

    /// Shared, never written: the in-place mode holds it instead of an output buffer (no allocation).
    private static let empty = ByteBuffer()

    /// Writes what is pending up to `end` of `buffer` (in place; copying: all of the output) to `side`
    /// through `transport` (nothing when `side` is `nil`: the destination is not attached).
    @inline(__always)
    mutating func send<Transport: RelayTransport>(_ buffer: inout ByteBuffer, upTo end: Int, to side: Side?, _ transport: Transport) {
        guard let side else { return }
        if self.copying {
            guard self.output.readableBytes > 0 else { return }
            transport.write(self.output, to: side)
            self.output.moveReaderIndex(to: self.output.writerIndex)
        } else {
            guard end > self.runStart else { return }
            // ByteBuffer only hands out readable bytes: step back over the run, take it, step on.
            let current = buffer.readerIndex
            buffer.moveReaderIndex(to: self.runStart)
            let slice = buffer.readSlice(length: end - self.runStart)!
            buffer.moveReaderIndex(to: current)
            transport.write(slice, to: side)
            self.runStart = end
        }
    }

    /// In place: the bytes up to `index` are not forwarded (the run starts again there).
    mutating func skip(to index: Int) {
        self.runStart = index
    }

    func finish(_ resources: RelayResources) {
        if self.copying { resources.returnOutputBuffer(self.output) }
    }
}

extension Relay {
    /// The relay's one read loop (issue #10), for both directions, plain or compressed: cut-through, a
    /// frame's header forwarded as soon as it is parsed and its payload in the chunks it arrives in, all
    /// of one read written once (``RelayOutput``). Rate limits, keep-alive pongs, frame boundaries (owed
    /// pings and Closes), Close frames and violations are handled here the same way for both. With
    /// compression, per message (``MessageTranscoder``): a transcoded message's frames are not forwarded
    /// but rewritten as new frames, and a verbatim compressed message is also inflated to validate it.
    ///
    /// The parser is passed `inout` for the whole read: one exclusivity check per read instead of one per
    /// event on a class property. Nothing the loop calls touches the parsers.
    func readFrames(from side: Side, _ buffer: inout ByteBuffer, parser: inout FrameParser) {
        let destinationSide = side.other
        // Per read, not per frame: whether data frames and control frames are rate limited at all.
        let (transcoder, limitsData, limitsControl) = self.direction(side) {
            ($0.transcoder, $0.limiter?.limitsDataFrames == true, $0.limiter != nil)
        }
        var leg = self.direction(side) { $0.leg }
        // Issue #14: the taps watching (`nil` nearly always: one check per frame).
        let tap = self.tap
        // The destination as the read starts (`nil`: not attached), as its context was before the boundary.
        let destination: Side? = self.transport.isAttached(destinationSide) ? destinationSide : nil
        let transport = self.transport
        var forwarding = destination != nil && self.closeState.mayWrite(to: destinationSide)
        var out = RelayOutput(copying: side == .client || transcoder != nil, buffer: buffer, resources: self.resources)
        defer { out.finish(self.resources) }
        var before = buffer.readerIndex
        // Issue #15: whole one-frame messages go through the parser's batch (one loop per read) when
        // nothing per frame is needed: no tap, no transcoder, no data rate limit, forwarding, and nothing
        // owed at a frame boundary toward the destination (checked before each batch).
        let batching = self.batchesFrames && tap == nil && transcoder == nil && !limitsData
        do {
            while true {
                if batching, forwarding, parser.isBetweenMessages, !self.hasFrameBoundaryWork(toward: destinationSide) {
                    let batch =
                        out.copying
                        ? parser.nextBatch(&buffer, copyingTo: &out.output, maskingWith: self.resources.maskingKeys)
                        : parser.nextBatchInPlace(&buffer)
                    if batch.frames > 0 {
                        // As the frames' header, payload and end events would have left it.
                        leg.stats.messages += batch.frames
                        leg.stats.bytes += batch.payloadBytes
                        leg.fin = true
                        leg.unfinishedPayload = 0
                        leg.frameStart = nil
                    }
                }
                before = buffer.readerIndex
                let start = out.output.writerIndex
                let parsed = out.copying ? try parser.next(&buffer, copyingPayloadTo: &out.output) : try parser.nextInPlace(&buffer)
                guard let event = parsed else { break }
                switch event {
                case .header(let header):
                    if limitsData, let verdict = self.rateVerdict(.header(header), from: side) {
                        // Held or refused: what came before goes first; the header is not forwarded.
                        if forwarding { out.send(&buffer, upTo: before, to: destination, transport) }
                        self.direction(side) { $0.leg = leg }
                        return self.enforce(verdict, on: .header(header), from: side, rest: &buffer)
                    }
                    leg.fin = header.fin
                    if let tap { tap.begin(header, from: side) }
                    if let transcoder, try transcoder.header(header) { continue }  // rewritten as new frames
                    guard forwarding else {
                        if side == .client { _ = self.outgoingHeader(header, from: side, transcoder, parser: &parser) }
                        continue
                    }
                    leg.unfinishedPayload = header.payloadLength
                    if out.copying {
                        self.outgoingHeader(header, from: side, transcoder, parser: &parser).write(to: &out.output)
                    } else if buffer.readerIndex - before != header.encodedSize {
                        // Split across reads (or not minimally encoded): the header is written anew.
                        out.send(&buffer, upTo: before, to: destination, transport)
                        var bytes = transport.buffer(capacity: header.encodedSize)
                        header.write(to: &bytes)
                        transport.write(bytes, to: destinationSide)
                        out.skip(to: buffer.readerIndex)
                    }
                case .payload(let count):
                    leg.stats.bytes += count
                    if let tap { tap.payload(from: side, buffer, count: count) }
                    if let transcoder {
                        if transcoder.isInspecting {
                            let inflated = transcoder.inflatedBytes
                            try self.inspectVerbatim(count, at: start, in: &out.output, transcoder, from: side)
                            self.chargeInspected(transcoder.inflatedBytes - inflated, from: side)
                        } else if transcoder.handlesPayload {
                            // Taken back out of the output: the transcoder writes new frames.
                            let plain = out.output.getSlice(at: start, length: count)!
                            out.output.moveWriterIndex(to: start)
                            // Issue #10 item 6: it may stop between frames; the rest of the read waits. The gate is
                            // written inline (non-escaping): as a local closure it boxed `forwarding` on the heap at
                            // every read, compressed or not (2 allocations per rr-32 message).
                            let step = try transcoder.payload(plain, gate: { self.admitInflated($0, from: side, forwarding: forwarding) }) { frame in
                                guard forwarding, let destination else { return }
                                out.send(&buffer, upTo: before, to: destination, transport)
                                transport.write(frame, to: destination)
                            }
                            if step == .suspended {
                                if forwarding { out.send(&buffer, upTo: before, to: destination, transport) }
                                self.direction(side) { $0.leg = leg }
                                return self.suspendTranscoding(side, rest: &buffer)
                            }
                            continue
                        }
                    }
                    if forwarding {
                        leg.unfinishedPayload -= count
                    } else if out.copying {
                        out.output.moveWriterIndex(to: start)
                    }
                case .frameEnd:
                    if leg.fin {
                        leg.stats.messages += 1
                        leg.frameStart = nil
                    }
                    if let transcoder {
                        // Issue #10 item 6: the last inflated chunks of a message are charged, not gated.
                        let inflated = transcoder.isInspecting ? transcoder.inflatedBytes : 0
                        defer { if inflated > 0 { self.chargeInspected(transcoder.inflatedBytes - inflated, from: side) } }
                        try transcoder.frameEnd(fin: leg.fin, charge: { self.chargeInspected($0, from: side) }) { frame in
                            guard forwarding, let destination else { return }
                            out.send(&buffer, upTo: before, to: destination, transport)
                            transport.write(frame, to: destination)
                        }
                    }
                    // After the transcoder: a compressed message's last inflated bytes come at its end.
                    if let tap { tap.end(from: side) }
                    if self.hasFrameBoundaryWork(toward: destinationSide) {
                        // The frame's bytes go first.
                        if forwarding { out.send(&buffer, upTo: buffer.readerIndex, to: destination, transport) }
                        out.skip(to: buffer.readerIndex)
                        self.direction(side) { $0.leg = leg }
                        self.atFrameBoundary(toward: destinationSide)
                        leg = self.direction(side) { $0.leg }
                        forwarding = forwarding && self.closeState.mayWrite(to: destinationSide)
                    }
                case .control(let frame) where frame.opcode != .close:
                    if frame.opcode == .pong, self.consumeKeepAlivePong(frame, from: side) {
                        // Consumed: in place, its bytes are cut out of the run.
                        if forwarding { out.send(&buffer, upTo: before, to: destination, transport) }
                        out.skip(to: buffer.readerIndex)
                        self.keepAlivePongConsumed(eventStart: before, rest: buffer)
                        continue
                    }
                    if limitsControl, let verdict = self.rateVerdict(.control(frame), from: side) {
                        if forwarding { out.send(&buffer, upTo: before, to: destination, transport) }
                        self.direction(side) { $0.leg = leg }
                        return self.enforce(verdict, on: .control(frame), from: side, rest: &buffer)
                    }
                    if let tap { tap.control(frame, from: side) }
                    guard forwarding else { continue }
                    if out.copying {
                        var encoder = self.encoder(toward: destinationSide)
                        encoder.writeFrame(opcode: frame.opcode, payload: frame.payload, to: &out.output)
                    } else if buffer.readerIndex - before != 2 + frame.payload.readableBytes {
                        // It arrived split: its bytes are not all in this buffer.
                        out.send(&buffer, upTo: before, to: destination, transport)
                        out.skip(to: buffer.readerIndex)
                        self.writeControl(opcode: frame.opcode, payload: frame.payload, to: destinationSide)
                    }
                case .control(let frame):
                    if let tap { tap.control(frame, from: side) }
                    // What came before the Close goes first; the Close is the handshake's business.
                    if forwarding { out.send(&buffer, upTo: before, to: destination, transport) }
                    out.skip(to: buffer.readerIndex)
                    self.direction(side) { $0.leg = leg }
                    self.control(frame, from: side)
                    leg = self.direction(side) { $0.leg }
                    if self.discarding[side] { return }
                    forwarding = self.closeState.mayWrite(to: destinationSide)
                }
            }
            // In place, bytes after `before` are the start of a header the parser keeps until the next read.
            if forwarding { out.send(&buffer, upTo: before, to: destination, transport) }
            self.direction(side) { $0.leg = leg }
        } catch {
            // The frames before the violation are owed to the other side before any Close.
            if forwarding { out.send(&buffer, upTo: before, to: destination, transport) }
            self.direction(side) { $0.leg = leg }
            self.operations.metrics?.protocolViolation(side: side, error)
            self.perform(self.closeState.violation(by: side, error: error, boundary: self.boundaries))
        }
    }

    /// The header the gateway forwards for `header` from `side`: toward the upstream with a fresh key
    /// from the CSPRNG-fed generator (RFC 6455 §5.3, §10.3), with which the parser remasks the payload
    /// (or, for a verbatim compressed message that is also inflated, the relay masks the plain copy).
    /// The one place the remask is set up, for the read loop and for a frame a throttle held.
    func outgoingHeader(_ header: FrameHeader, from side: Side, _ transcoder: MessageTranscoder?, parser: inout FrameParser) -> FrameHeader {
        guard side == .client else { return header }
        var outgoing = header
        let key = self.resources.maskingKeys.nextKey()
        outgoing.maskingKey = key
        if transcoder?.isInspecting == true {
            self.verbatimMask = (key, 0)  // payload copied plain, masked by `inspectVerbatim`
        } else {
            parser.remaskPayload(with: key)
        }
        return outgoing
    }
}
