import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// The first handler of an HTTP/2 stream's channel (RFC 8441, issue #16): it makes the stream look like
/// the HTTP/1.1 connection ``ClientConnectionHandler`` and ``RelayHandler`` already drive, so the same
/// checks and the same relay run on it unchanged.
///
/// - The extended CONNECT's HEADERS become the equivalent HTTP/1.1 upgrade request head
///   (``ExtendedConnect``), read from the HEADERS frame itself (swift-nio-http2's HTTP/2-to-HTTP/1
///   codec drops `:protocol`). What only HTTP/2 can get wrong is refused here, recorded like every
///   other refusal.
/// - The answer is written by ``answer(status:headers:body:endStream:)`` (``ClientAnswerEncoding``):
///   `:status 200` switches to frames (RFC 8441 §5), a refusal is `:status 4xx/5xx` with END_STREAM.
/// - After ``beginFrames()``, DATA payloads go up as `ByteBuffer`s (RFC 6455 frames exactly as a TCP
///   connection carries them) and the relay's `ByteBuffer`s go out as DATA.
/// - The client's END_STREAM is its TCP FIN (RFC 8441 §5): the stream is closed like a connection whose
///   peer sent FIN. `RST_STREAM` closes the stream channel (swift-nio-http2), which the relay sees as a
///   lost connection (1006). A close from the relay first sends END_STREAM, then waits up to the close
///   timeout for the client's before the stream is reset.
///
/// Flow control: swift-nio-http2 opens the stream's window only as DATA is delivered into this pipeline,
/// which happens only when the pipeline asks to read (``RelayHandler/read(context:)`` obeys the relay's
/// watermarks), so a slow upstream closes the client's window; outbound, the stream channel turns
/// unwritable above its watermark (derived from `limits.http2.max_connection_buffer`) of DATA the client's
/// window has not taken. The connection's budget (``HTTP2ConnectionMemory``) counts each stream's window and
/// the DATA it queued toward the client: over the budget the codec holds the relay's reads (no new credit),
/// and the stream holding the most is reset if the total goes on growing.
final class HTTP2WebSocketStreamCodec: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = HTTP2Frame.FramePayload

    /// DATA on the stream before the gateway answered: the client did not wait (RFC 6455 §4.1), refused
    /// as early data (400) like bytes after an HTTP/1.1 request head.
    struct EarlyData: Error {}

    enum State: Equatable {
        /// The stream is open, its HEADERS not read yet.
        case awaitingHeaders
        /// The request went up to ``ClientConnectionHandler``; DATA now is early data.
        case handshake
        /// Switched: DATA carries WebSocket frames.
        case frames
        /// Refused here; nothing more is read.
        case ended
    }

    private(set) var state = State.awaitingHeaders
    /// Refusals decided here (RFC 8441 form, per-IP and per-listener caps) are recorded like the others.
    private var recorder: UpgradeRecorder
    /// Set when the stream was refused before its request was read (a connection cap): answered with it.
    private let refusal: HandshakeRejection?
    private let closeTimeout: TimeAmount
    private var context: ChannelHandlerContext?
    private var localEnded = false
    private var remoteEnded = false
    private var closeTimer: Scheduled<Void>?
    /// `limits.http2.max_header_list`: a larger request is answered 431 on this stream.
    private let maxHeaderListBytes: Int
    /// The connection's budget and this stream's key in it (nil: not counted, as in unit tests).
    let memory: HTTP2ConnectionMemory?
    private(set) var memoryKey: Int?
    /// The relay asked to read while the connection was over its budget.
    private var readPending = false
    /// The request as the client sent it (pseudo-header fields first), for the tap's `open` event.
    private(set) var request: HPACKHeaders?
    /// Budget accounting without a promise per DATA frame: the last write since the flush, held until the
    /// flush (or the next write), and the bytes written since; the sizes of the flushed batches whose
    /// promise has not completed, oldest first (`HTTP2WebSocketStreamCodec+Budget.swift`).
    var heldWrite: (buffer: ByteBuffer, promise: EventLoopPromise<Void>?)?
    var batchBytes = 0
    var batchesInFlight = CircularBuffer<Int>(initialCapacity: 4)

    init(
        recorder: UpgradeRecorder,
        refusal: HandshakeRejection? = nil,
        closeTimeout: TimeAmount,
        maxHeaderListBytes: Int = GatewayConfiguration.HTTP2Limits().maxHeaderListBytes,
        memory: HTTP2ConnectionMemory? = nil
    ) {
        self.recorder = recorder
        self.refusal = refusal
        self.closeTimeout = closeTimeout
        self.maxHeaderListBytes = maxHeaderListBytes
        self.memory = memory
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.memoryKey = self.memory?.register(self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.closeTimer?.cancel()
        self.dropHeldWrite()
        self.leaveBudget()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.leaveBudget()
        context.fireChannelInactive()
    }

    private func leaveBudget() {
        if let key = self.memoryKey { self.memory?.unregister(key) }
        self.memoryKey = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let payload = Self.unwrapInboundIn(data)
        switch (self.state, payload) {
        case (.awaitingHeaders, .headers(let headers)):
            self.requestReceived(context: context, headers)
        case (.handshake, .data):
            context.fireErrorCaught(EarlyData())
        case (.frames, .data(let data)):
            if case .byteBuffer(let buffer) = data.data, buffer.readableBytes > 0 {
                context.fireChannelRead(NIOAny(buffer))
            }
            if data.endStream { self.remoteEndedStream(context: context) }
        case (.frames, .headers(let trailers)) where trailers.endStream:
            self.remoteEndedStream(context: context)
        case (.handshake, .headers(let trailers)) where trailers.endStream:
            // The client ended its side before the answer: a client gone during the handshake.
            self.remoteEnded = true
            context.close(promise: nil)
        case (.awaitingHeaders, _), (.handshake, _), (.frames, _), (.ended, _):
            // DATA before HEADERS is a protocol error swift-nio-http2 refuses; other frames are its own.
            break
        }
    }

    private func requestReceived(context: ChannelHandlerContext, _ headers: HTTP2Frame.FramePayload.Headers) {
        if let refusal = self.refusal { return self.refuse(context: context, refusal) }
        self.request = headers.headers
        // RFC 9113 §6.5.2 (advisory limit) and RFC 6585 §5: a block within swift-nio-http2's hard limit but
        // over ours is refused on its stream; the connection's other streams go on.
        let size = Self.headerListSize(headers.headers)
        if size > self.maxHeaderListBytes {
            let rejection = HandshakeRejection(431, "request headers of \(size) bytes over \(self.maxHeaderListBytes)", reason: "head-too-large")
            return self.refuse(context: context, rejection)
        }
        switch ExtendedConnect.requestHead(headers.headers, endStream: headers.endStream) {
        case .success(let head):
            self.state = .handshake
            context.fireUserInboundEventTriggered(ClientConnectionHandler.ParsedRequestHead(head: head))
        case .failure(let rejection):
            self.refuse(context: context, rejection)
        }
    }

    private func refuse(context: ChannelHandlerContext, _ rejection: HandshakeRejection) {
        self.state = .ended
        self.recorder.refused(rejection)
        let response = rejection.response
        self.answer(status: response.status, headers: response.headers, body: response.body, endStream: true)?
            .assumeIsolated().whenComplete { _ in self.close(context: context, mode: .all, promise: nil) }
    }

    /// RFC 9113 §6.5.2: the size of a field list is the sum of each field's name and value lengths plus 32.
    static func headerListSize(_ headers: HPACKHeaders) -> Int {
        headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 32 }
    }

    /// The client's END_STREAM (RFC 8441 §5: its TCP FIN): the stream ends like a connection that read
    /// EOF without half-closure (NIO's default for TCP), which the relay sees as the client leg closing.
    private func remoteEndedStream(context: ChannelHandlerContext) {
        self.remoteEnded = true
        if !self.localEnded { context.close(promise: nil) }
    }

    // MARK: The seam ClientConnectionHandler answers through

    /// Writes the answer: HEADERS with `:status` and `headers` (lower-cased, HTTP/1.1-only fields
    /// dropped), then the body as DATA if any; `endStream` ends the stream (refusals).
    @discardableResult
    func answer(status: Int, headers: [(String, String)], body: [UInt8], endStream: Bool) -> EventLoopFuture<Void>? {
        guard let context = self.context else { return nil }
        var fields = headers
        if !body.isEmpty { fields.append(("content-length", String(body.count))) }
        let block = ExtendedConnect.responseHeaders(status: status, fields)
        let promise = context.eventLoop.makePromise(of: Void.self)
        if body.isEmpty {
            context.write(Self.wrapOutboundOut(.headers(.init(headers: block, endStream: endStream))), promise: promise)
        } else {
            context.write(Self.wrapOutboundOut(.headers(.init(headers: block))), promise: nil)
            let bytes = context.channel.allocator.buffer(bytes: body)
            context.write(Self.wrapOutboundOut(.data(.init(data: .byteBuffer(bytes), endStream: endStream))), promise: promise)
        }
        if endStream { self.localEnded = true }
        context.flush()
        return promise.futureResult
    }

    /// The switch to frames (``UpgradePipelineSwitch``): DATA goes up as bytes from now on.
    func beginFrames() {
        if self.state == .handshake { self.state = .frames }
    }

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard self.state == .frames, !self.localEnded else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        let buffer = Self.unwrapOutboundIn(data)
        // Not counted (unit tests, or the stream left the budget) and nothing held to keep ahead: straight on.
        guard self.memoryKey != nil || self.heldWrite != nil else {
            return context.write(Self.wrapOutboundOut(.data(.init(data: .byteBuffer(buffer)))), promise: promise)
        }
        self.writeCounted(buffer, promise: promise, context: context)
    }

    func flush(context: ChannelHandlerContext) {
        self.writeHeldWrite(context: context)
        context.flush()
    }

    /// The relay's reads pass unless the connection is over its budget: then they wait, and the client's
    /// windows stay closed (swift-nio-http2 grants credit only for DATA delivered by a read).
    func read(context: ChannelHandlerContext) {
        if self.memory?.paused == true, self.state == .frames {
            self.readPending = true
            return
        }
        context.read()
    }

    /// The connection is back under its budget: a held read goes on.
    func resumeReading() {
        guard self.readPending, let context = self.context else { return }
        self.readPending = false
        context.read()
    }

    /// The connection's budget chose this stream (the most queued toward a client that does not take
    /// it): `RST_STREAM ENHANCE_YOUR_CALM` (RFC 9113 §7), and the relay sees its client leg lost.
    func resetOverBudget() {
        self.memoryKey = nil
        self.dropHeldWrite()
        guard let context = self.context, context.channel.isActive else { return }
        self.localEnded = true
        context.writeAndFlush(Self.wrapOutboundOut(.rstStream(.enhanceYourCalm)), promise: nil)
        context.close(promise: nil)
    }

    /// RFC 8441 §5: the orderly end of a WebSocket is END_STREAM (its TCP FIN). The stream closes once
    /// both sides ended it; a client that never ends its side is reset after the close timeout.
    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        // An unflushed write goes first (before END_STREAM, or fails with the stream).
        self.writeHeldWrite(context: context)
        if mode == .all, self.closeTimer != nil {
            // Already ending (END_STREAM sent, waiting for the client's): the same close.
            if let promise { context.channel.closeFuture.cascade(to: promise) }
            return
        }
        if mode == .all, self.state != .frames, self.localEnded, !self.remoteEnded, context.channel.isActive {
            // A refusal was answered with END_STREAM while the client's side is open: RFC 9113 §8.1 asks
            // for RST_STREAM NO_ERROR (a plain close would reset with CANCEL, as if the answer were lost).
            context.writeAndFlush(Self.wrapOutboundOut(.rstStream(.noError)), promise: nil)
            return context.close(mode: mode, promise: promise)
        }
        guard mode == .all, self.state == .frames, !self.localEnded, context.channel.isActive else {
            return context.close(mode: mode, promise: promise)
        }
        self.localEnded = true
        let end = context.channel.allocator.buffer(capacity: 0)
        context.writeAndFlush(Self.wrapOutboundOut(.data(.init(data: .byteBuffer(end), endStream: true))), promise: nil)
        if let promise { context.channel.closeFuture.cascade(to: promise) }
        // Once both sides ended (and the END_STREAM left, past any flow-control wait), swift-nio-http2
        // closes the stream channel; the timer resets a stream that is still open after the close timeout.
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        self.closeTimer = context.eventLoop.scheduleTask(in: self.closeTimeout) {
            bound.value.close(mode: .all, promise: nil)
        }
    }
}

@available(*, unavailable)
extension HTTP2WebSocketStreamCodec: Sendable {}
