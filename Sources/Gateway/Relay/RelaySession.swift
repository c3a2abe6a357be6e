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
    var contexts = PerSide<ChannelHandlerContext?>(nil)
    var clientParser: FrameParser
    private var upstreamParser: FrameParser
    var closeState = RelayCloseState()
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

    init(
        eventLoop: any EventLoop,
        limits: GatewayConfiguration.Limits,
        closeTimeout: TimeAmount,
        idleTimeout: TimeAmount,
        compression: RelayCompression = .none
    ) {
        self.eventLoop = eventLoop
        self.idleTimeout = idleTimeout
        let configuration = FrameParser.Configuration {
            $0.maxFrameSize = limits.maxFrameSize
            $0.maxMessageSize = limits.maxMessageSize
            $0.maxFragmentsPerMessage = limits.maxFragments
        }
        self.clientParser = FrameParser(role: .server, configuration: configuration)
        self.upstreamParser = FrameParser(role: .client, configuration: configuration)
        self.closeTimeout = closeTimeout
        // permessage-deflate (RelayCompression.swift): RSV1 only from a leg that negotiated it.
        if compression.client != nil { self.clientParser.configuration.allowedReservedBits = .rsv1 }
        if compression.upstream != nil { self.upstreamParser.configuration.allowedReservedBits = .rsv1 }
        let allocator = ByteBufferAllocator()
        self.transcoders = PerSide(
            client: compression.transcoder(from: .client, maxMessageSize: limits.maxMessageSize, allocator: allocator),
            upstream: compression.transcoder(from: .upstream, maxMessageSize: limits.maxMessageSize, allocator: allocator)
        )
    }

    /// permessage-deflate per direction (by source side); nil where neither leg compresses.
    private var transcoders = PerSide<MessageTranscoder?>(nil)
    /// The key and payload offset of a verbatim compressed frame from the client that the relay masks
    /// itself (its payload must reach the inflater plain).
    var verbatimMask: (key: MaskingKey, offset: Int)?

    // MARK: Events from the handlers

    func attach(_ side: Side, context: ChannelHandlerContext) {
        self.contexts[side] = context
        if self.idleTimer == nil { self.scheduleIdleCheck(in: self.idleTimeout) }
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
                    if let transcoder = self.transcoders[side], try transcoder.header(header) {
                        self.currentFin[side] = header.fin  // transcoded: written as new frames
                        break
                    }
                    self.forwardHeader(header, from: side, in: &buffer, headerStart: before)
                    if side == .client, self.transcoders[side]?.isInspecting == true {
                        self.takeOverMasking()
                    }
                case .payload(let payload):
                    self.stats[side].bytes += payload.readableBytes
                    if let transcoder = self.transcoders[side], transcoder.handlesPayload {
                        try self.compressedPayload(payload, from: side, in: &buffer, transcoder)
                        break
                    }
                    self.unfinishedPayload[side] -= payload.readableBytes
                    if self.closeState.mayWrite(to: destination) {
                        self.contexts[destination]?.write(NIOAny(payload), promise: nil)
                    }
                case .frameEnd:
                    if self.currentFin[side] { self.stats[side].messages += 1 }
                    try self.transcoders[side]?.frameEnd(fin: self.currentFin[side]) { self.writeTranscoded($0, to: destination) }
                case .control(let frame):
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
    var unfinishedPayload = PerSide(0)

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
