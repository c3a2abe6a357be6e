import Frames
import NIOCore

/// The `/echo` endpoint: a cut-through echo of every frame (RFC 6455 server role).
///
/// - Data frames come back as received: same opcode, FIN and payload, so fragmentation is preserved.
///   A frame's header is written as soon as it is parsed and each payload chunk as it arrives; no frame
///   or message is ever held whole, so memory per connection is bounded by a read, not by what the
///   peer sends. Limits are large (16 MiB per frame and per message, 2^24 fragments) so that
///   Autobahn-style traffic passes.
/// - Ping → Pong with the same payload (RFC 6455 §5.5.2–§5.5.3); Pongs are dropped.
/// - Close → Close with the same body (code and reason, or empty), then the TCP connection is closed
///   once it is written (§5.5.1, §7.1.1: the server closes TCP first).
/// - A protocol error → Close with ``FramesError/closeCode`` (1002, 1007, 1008 or 1009), then TCP close.
///   A data frame's header is written together with its first payload chunk, which the parser has
///   validated by then, so a frame whose first chunk is bad (for instance invalid UTF-8 in a short text
///   frame) is answered with a clean Close. If the error arrives while an echoed frame is half written,
///   a Close cannot be put on the wire (a Close is only ever written between frames), so the
///   connection is just closed.
///
/// Writes are flushed on `channelReadComplete`. Backpressure: while the channel is not writable the
/// handler holds back `read()`, so the peer's sending is slowed by TCP instead of growing our buffer;
/// the read is issued again when `channelWritabilityChanged` reports the channel writable.
final class DemoEchoHandler: ChannelDuplexHandler, DemoWebSocketHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// 16 MiB per frame (Autobahn's largest, case 9.x) and 1 GiB per message: the echo streams, so the
    /// limits only bound what a peer may declare, not what the echo holds. Fragments are limited to
    /// 2^24, enough for 16 MiB sent one byte per frame.
    static let parserConfiguration = FrameParser.Configuration {
        $0.maxFrameSize = 16 << 20
        $0.maxMessageSize = 1 << 30
        $0.maxFragmentsPerMessage = 1 << 24
    }

    private enum State {
        /// Between frames: a Close or a Pong may be written.
        case betweenFrames
        /// A data frame's header was parsed and is held until its first payload chunk (or its end, if
        /// it is empty) has been validated: until then a Close may still be written instead.
        case headerHeld(FrameHeader)
        /// The echoed frame's header is written and its payload is not complete: nothing else may be
        /// written.
        case insideFrame
        /// A Close was written (or the connection failed): input is ignored until TCP closes.
        case closed
    }

    private var state: State = .betweenFrames
    private var parser = FrameParser(role: .server, configuration: DemoEchoHandler.parserConfiguration)
    var encoder = FrameEncoder(role: .server)
    /// A `read()` held back while the channel was not writable.
    private var readPending = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        do {
            while self.isOpen, let event = try self.parser.next(&buffer) {
                self.handle(event, context: context)
            }
        } catch {
            self.fail(context: context, error: error)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            context.read()
        } else {
            self.readPending = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, self.readPending {
            self.readPending = false
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // I/O errors (reset by peer and the like): nothing can be sent any more.
        self.state = .closed
        context.close(promise: nil)
    }

    private var isOpen: Bool {
        switch self.state {
        case .betweenFrames, .headerHeld, .insideFrame: true
        case .closed: false
        }
    }

    private func handle(_ event: FrameParser.Event, context: ChannelHandlerContext) {
        switch event {
        case .header(let header):
            self.state = .headerHeld(header)
        case .payload(let chunk):
            self.writeHeldHeader(context: context)
            context.write(self.wrapOutboundOut(chunk), promise: nil)
            self.state = .insideFrame
        case .frameEnd:
            self.writeHeldHeader(context: context)
            self.state = .betweenFrames
        case .control(let frame):
            self.handleControl(frame, context: context)
        }
    }

    /// Writes the held header of the current frame, if it is still held.
    private func writeHeldHeader(context: ChannelHandlerContext) {
        guard case .headerHeld(let header) = self.state else { return }
        let echoed = self.encoder.makeHeader(
            opcode: header.opcode,
            fin: header.fin,
            reservedBits: header.reservedBits,
            payloadLength: header.payloadLength
        )
        // 14 bytes is the largest header (2 + 8-byte length + 4-byte key).
        var bytes = context.channel.allocator.buffer(capacity: 14)
        echoed.write(to: &bytes)
        context.write(self.wrapOutboundOut(bytes), promise: nil)
    }

    /// Fails the connection for `error`: a Close with its code if the output stands between frames.
    private func fail(context: ChannelHandlerContext, error: FramesError) {
        switch self.state {
        case .betweenFrames, .headerHeld:
            break
        case .insideFrame:
            self.state = .closed
            context.close(promise: nil)
            return
        case .closed:
            return
        }
        self.failWithClose(code: error.closeCode, context: context)
    }

    /// Writes `bytes` (a Close frame), flushes and closes TCP once they are written.
    func closeAfterWriting(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        self.state = .closed
        self.writeThenClose(bytes, context: context)
    }
}

@available(*, unavailable)
extension DemoEchoHandler: Sendable {}
