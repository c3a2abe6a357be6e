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
    var stats: PerSide<Stats> { PerSide(client: self.legs.client.stats, upstream: self.legs.upstream.stats) }
    private var finished = false
    /// Called once when both connections are closed, with who closed and the code.
    var onFinish: ((RelayCloseState.Outcome?, _ stats: PerSide<Stats>) -> Void)?

    /// No frame in either direction for this long closes both legs with 1001 (DESIGN §7: 120 s).
    private let idleTimeout: TimeAmount
    private var lastActivity = NIODeadline.now()
    private var idleTimer: Scheduled<Void>?

    init(eventLoop: any EventLoop, limits: GatewayConfiguration.Limits, closeTimeout: TimeAmount, idleTimeout: TimeAmount) {
        self.eventLoop = eventLoop
        self.resources = RelayResources.current
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
            let quiet = NIODeadline.now() - session.lastActivity
            if quiet >= session.idleTimeout {
                session.gatewayClose(.goingAway, reason: "idle timeout")
            } else {
                session.scheduleIdleCheck(in: session.idleTimeout - quiet)
            }
        }
    }

    func read(from side: Side, _ buffer: inout ByteBuffer) {
        self.lastActivity = .now()
        guard !self.discarding[side] else {
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return
        }
        // The parser is passed `inout` for the whole read: one exclusivity check per read instead of
        // one per event on a class property. Nothing the loop calls touches the parsers.
        switch side {
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

    private var legs = PerSide(LegState())

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
            while let event = try parser.next(&buffer, copyingPayloadTo: &output) {
                switch event {
                case .header(let header):
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
                case .control(let frame) where frame.opcode != .close:
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
                case .control(let frame) where frame.opcode != .close:
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
        if let other = self.contexts[side.other], !other.channel.isWritable {
            self.heldRead[side] = true
            return false
        }
        return true
    }

    func writabilityChanged(_ side: Side) {
        guard let context = self.contexts[side], context.channel.isWritable else { return }
        let source = side.other
        if self.heldRead[source], let sourceContext = self.contexts[source] {
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
        self.onFinish?(self.closeState.outcome, self.stats)
        self.onFinish = nil
    }
}
