import NIOCore
import NIOTLS

/// TLS over OpenSSL (through a ``ByteBufferBIO``, never a socket) as a channel handler: ciphertext `ByteBuffer`s below, plaintext
/// `ByteBuffer`s above. The same class serves both ends; build it with
/// ``server(context:configuration:)``, ``server(provider:configuration:)`` or
/// ``client(context:serverName:configuration:)``.
///
/// - Decisions live in ``TLSHandlerStateMachine``; this class only performs them (STYLE.md P3).
/// - It fires `TLSUserEvent.handshakeCompleted(negotiatedProtocol:)` so ALPN-aware handlers compose
///   with it (STYLE.md P1); ``connectionInfo`` is readable from then on.
/// - A failed handshake fires one classified ``TLSError`` (``TLSError/Code/isHandshakeFailure``) and
///   closes the channel; the alert OpenSSL chose is sent first. A socket error during the handshake
///   (the peer reset) is such a failure too (``TLSError/Code/resetDuringHandshake``).
/// - Writes are buffered until a flush, then encrypted together and written as one ciphertext buffer
///   (coalesced flushes). Reads are passed down untouched (`read()` is not intercepted except during
///   the handshake, which needs input), so backpressure from the layers above is respected.
/// - `close(mode: .all)` sends `close_notify` and closes without waiting for the peer's (RFC 8446 §6.1
///   allows it); `close(mode: .output)` sends `close_notify` and half-closes.
public final class TLSHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    /// How the handler operates (the protocol side is in the context, STYLE.md P8).
    public struct Configuration: Hashable, Sendable {
        /// Deadline for the whole handshake, from channel activation; nil: none. Default: 10 s
        /// (../shared/DESIGN.md §7).
        public var handshakeTimeout: TimeAmount? = .seconds(10)
        /// Whether a peer's `close_notify` becomes `ChannelEvent.inputClosed` (our output stays open)
        /// instead of answering with our `close_notify` and closing. Default: false.
        public var allowHalfClosure: Bool = false
        /// Server side: the bytes sent in clear, instead of a TLS alert, to a client whose first bytes
        /// are a plain HTTP request (the handshake still fails, as ``TLSError/Code/plaintextHTTP``);
        /// nil: close without an answer. nginx answers such a request with a 400; so does the gateway.
        public var plaintextHTTPResponse: [UInt8]? = nil

        public init(_ configure: (inout Self) -> Void = { _ in }) {
            configure(&self)
        }
    }

    let connection: TLSConnection
    private let configuration: Configuration
    /// Server side and nothing received yet: the first byte is checked for a plain HTTP request.
    private var awaitingFirstByte: Bool
    private var stateMachine: TLSHandlerStateMachine
    /// Plaintext writes waiting for a flush (or for the handshake).
    private var pendingWrites: [(ByteBuffer, EventLoopPromise<Void>?)] = []
    /// A flush was requested before the handshake completed.
    private var flushPending = false
    private var handshakeTimer: NIOScheduledCallback?

    /// What the handshake negotiated; nil until `TLSUserEvent.handshakeCompleted` was fired.
    public private(set) var connectionInfo: TLSConnectionInfo?

    /// The largest plaintext buffer one decrypt pass fills: 16 KiB is one TLS record's maximum
    /// plaintext (RFC 8446 §5.1), so bulk reads are delivered one to four records at a time.
    static let readChunk = 65_536
    /// The smallest buffer a pass allocates (a pass with nothing pending still asks OpenSSL once, to
    /// see a close_notify or a post-handshake message).
    static let minimumReadChunk = 64

    private init(connection: TLSConnection, configuration: Configuration, isServer: Bool) {
        self.connection = connection
        self.configuration = configuration
        self.awaitingFirstByte = isServer
        self.stateMachine = TLSHandlerStateMachine(allowHalfClosure: configuration.allowHalfClosure)
    }

    /// A server-side handler using `context` (cheap: one `SSL_new`).
    public static func server(context: TLSServerContext, configuration: Configuration = .init()) throws -> TLSHandler {
        TLSHandler(connection: try TLSConnection(serverContext: context), configuration: configuration, isServer: true)
    }

    /// A server-side handler using the provider's current context; replacing the provider's context
    /// later does not affect this connection.
    public static func server(
        provider: TLSServerContextProvider,
        configuration: Configuration = .init()
    ) throws -> TLSHandler {
        try self.server(context: provider.current, configuration: configuration)
    }

    /// A client-side handler toward `serverName`: a DNS name (sent as SNI and verified) or an IP
    /// literal (verified against IP subjectAltNames, no SNI).
    public static func client(
        context: TLSClientContext,
        serverName: String?,
        configuration: Configuration = .init()
    ) throws -> TLSHandler {
        TLSHandler(
            connection: try TLSConnection(clientContext: context, serverName: serverName),
            configuration: configuration,
            isServer: false
        )
    }

    // MARK: Lifecycle

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive {
            self.perform(self.stateMachine.channelActive(), context: context)
        }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.cancelTimer()
        self.failPendingWrites(ChannelError.ioOnClosedChannel)
    }

    public func channelActive(context: ChannelHandlerContext) {
        self.perform(self.stateMachine.channelActive(), context: context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        self.cancelTimer()
        switch self.stateMachine.channelInactive() {
        case .failHandshake(let error), .reportUncleanShutdown(let error):
            self.failPendingWrites(error)
            context.fireErrorCaught(error)
        case .none:
            self.failPendingWrites(ChannelError.ioOnClosedChannel)
        }
        context.fireChannelInactive()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let channelEvent = event as? ChannelEvent, channelEvent == .inputClosed else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        switch self.stateMachine.inputEOF() {
        case .failHandshake(let error):
            self.fail(error, context: context)
        case .reportUncleanShutdownAndForward(let error):
            context.fireErrorCaught(error)
            context.fireUserInboundEventTriggered(event)
        case .forward:
            context.fireUserInboundEventTriggered(event)
        case .none:
            break
        }
    }

    /// An error from below (the socket: a read that failed with ECONNRESET). During the handshake it
    /// becomes the classified handshake failure ``TLSError/Code/resetDuringHandshake`` (fired instead of
    /// the socket's error, then the channel closes); afterwards it is passed on unchanged.
    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch self.stateMachine.transportFailed("\(error)") {
        case .failHandshake(let tlsError):
            self.failWithoutAlert(tlsError, context: context)
        case .forward:
            context.fireErrorCaught(error)
        }
    }

    private func perform(_ action: TLSHandlerStateMachine.ChannelActiveAction, context: ChannelHandlerContext) {
        switch action {
        case .startHandshake:
            self.startHandshake(context: context)
        case .none:
            break
        }
    }

    private func startHandshake(context: ChannelHandlerContext) {
        if let timeout = self.configuration.handshakeTimeout {
            // A scheduled callback, not a task: one small box at most, where a task took a promise and
            // four closures per handshake. It throws only when the loop is shutting down.
            self.handshakeTimer = try? context.eventLoop.assumeIsolated().scheduleCallback(
                in: timeout,
                handler: HandshakeTimeout(handler: self, context: context)
            )
        }
        self.advanceHandshake(context: context)
        // The handshake needs input even when the layers above have not asked for any (autoRead off).
        context.read()
    }

    private struct HandshakeTimeout: NIOScheduledCallbackHandler {
        let handler: TLSHandler
        let context: ChannelHandlerContext

        func handleScheduledCallback(eventLoop: some EventLoop) {
            self.handler.handshakeTimerFired(context: self.context)
        }
    }

    private func handshakeTimerFired(context: ChannelHandlerContext) {
        self.handshakeTimer = nil
        switch self.stateMachine.handshakeTimeoutFired() {
        case .failAndClose(let error):
            self.fail(error, context: context)
        case .none:
            break
        }
    }

    private func cancelTimer() {
        self.handshakeTimer?.cancel()
        self.handshakeTimer = nil
    }

    // MARK: Inbound

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = Self.unwrapInboundIn(data)
        let action = self.stateMachine.channelRead()
        if self.awaitingFirstByte, let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) {
            self.awaitingFirstByte = false
            if TLSHandlerStateMachine.isPlaintextHTTP(firstByte: first) {
                if case .failAndClose(let error) = self.stateMachine.plaintextHTTPReceived() {
                    self.failPlaintextHTTP(error, context: context)
                }
                return
            }
        }
        switch action {
        case .startHandshake:
            self.connection.receive(buffer)
            self.startHandshake(context: context)
        case .continueHandshake:
            self.connection.receive(buffer)
            self.advanceHandshake(context: context)
        case .decrypt:
            self.connection.receive(buffer)
            self.decryptAndDeliver(context: context)
        case .discard:
            break
        }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        if self.stateMachine.state == .handshaking {
            context.read()
        }
        context.fireChannelReadComplete()
    }

    private func advanceHandshake(context: ChannelHandlerContext) {
        switch self.connection.handshake() {
        case .incomplete:
            self.sendCiphertext(context: context, promise: nil, flush: true)
        case .complete:
            switch self.stateMachine.handshakeCompleted() {
            case .fireHandshakeCompleted:
                self.cancelTimer()
                let info = self.connection.info
                self.connectionInfo = info
                self.sendCiphertext(context: context, promise: nil, flush: !self.flushPending)
                context.fireUserInboundEventTriggered(
                    TLSUserEvent.handshakeCompleted(negotiatedProtocol: info.negotiatedProtocol)
                )
                if self.flushPending {
                    self.flushPending = false
                    self.encryptAndFlush(context: context)
                }
                self.decryptAndDeliver(context: context)
            }
        case .failed(let error):
            switch self.stateMachine.handshakeFailed(error) {
            case .failAndClose(let error):
                self.fail(error, context: context)
            case .none:
                break
            }
        }
    }

    /// Decrypts everything OpenSSL can and passes it up. Stops when OpenSSL needs more input, on the
    /// peer's close_notify, or when a layer above closed the channel while handling a read.
    private func decryptAndDeliver(context: ChannelHandlerContext) {
        reading: while self.stateMachine.state == .active || self.stateMachine.state == .outputClosed {
            var buffer = context.channel.allocator.buffer(capacity: Self.readCapacity(pending: self.connection.pendingInboundBytes))
            var result = TLSConnection.ReadResult.wouldBlock
            while buffer.writableBytes > 0 {
                result = self.connection.read(into: &buffer, maximum: buffer.writableBytes)
                guard result == .data else { break }
            }
            if buffer.readableBytes > 0 {
                context.fireChannelRead(Self.wrapInboundOut(Self.rightSized(buffer, allocator: context.channel.allocator)))
            }
            switch result {
            case .data:
                continue reading
            case .wouldBlock:
                break reading
            case .closeNotify:
                self.closeNotifyReceived(context: context)
                break reading
            case .failed(let error):
                switch self.stateMachine.connectionFailed(error) {
                case .failAndClose(let error):
                    self.fail(error, context: context)
                case .none:
                    break
                }
                break reading
            }
        }
        // TLS 1.3 post-handshake messages (KeyUpdate) may have queued an answer.
        if self.connection.pendingOutboundBytes > 0 {
            self.sendCiphertext(context: context, promise: nil, flush: true)
        }
    }

    /// The capacity of one pass's plaintext buffer: the data that is there, not a fixed 64 KiB. What
    /// a layer above keeps of a delivered buffer (an HTTP decoder's partial head, a relay's queued
    /// slice) holds the whole buffer, so a one-byte record must not cost 64 KiB (issue #11 §3).
    static func readCapacity(pending: Int) -> Int {
        min(Self.readChunk, max(Self.minimumReadChunk, pending))
    }

    /// `buffer` itself when it is at least half full (or small); otherwise an exact copy. The estimate
    /// counts record overhead (about 22 bytes per TLS 1.3 record, more with CBC padding), so many tiny
    /// records decrypt to far less than their ciphertext; the copy keeps what is held within twice
    /// what was delivered, for any record size.
    static func rightSized(_ buffer: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        let readable = buffer.readableBytes
        guard buffer.capacity > 2 * readable, buffer.capacity > Self.minimumReadChunk else { return buffer }
        var copy = allocator.buffer(capacity: readable)
        copy.writeImmutableBuffer(buffer)
        return copy
    }

    private func closeNotifyReceived(context: ChannelHandlerContext) {
        switch self.stateMachine.closeNotifyReceived() {
        case .fireInputClosed:
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        case .sendCloseNotifyAndClose:
            self.sendCloseNotify(context: context, thenCloseMode: .all, promise: nil)
        case .closeChannel:
            context.close(promise: nil)
        case .none:
            break
        }
    }

    // MARK: Outbound

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch self.stateMachine.write() {
        case .buffer:
            self.pendingWrites.append((Self.unwrapOutboundIn(data), promise))
        case .fail(let error):
            promise?.fail(error)
        }
    }

    public func flush(context: ChannelHandlerContext) {
        switch self.stateMachine.flush() {
        case .encryptAndFlush:
            self.encryptAndFlush(context: context)
        case .deferUntilHandshakeCompleted:
            self.flushPending = true
        case .none:
            break
        }
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        switch self.stateMachine.close(mode: mode) {
        case .sendCloseNotifyThenClose:
            self.sendCloseNotify(context: context, thenCloseMode: .all, promise: promise)
        case .sendCloseNotifyThenCloseOutput:
            self.sendCloseNotify(context: context, thenCloseMode: .output, promise: promise)
        case .forward:
            if mode != .input { self.cancelTimer() }
            context.close(mode: mode, promise: promise)
        }
    }

    /// Encrypts all pending writes into one ciphertext buffer and writes it with one promise that
    /// completes theirs (coalesced flush).
    private func encryptAndFlush(context: ChannelHandlerContext) {
        let writes = self.pendingWrites
        self.pendingWrites.removeAll(keepingCapacity: true)
        self.connection.reserveOutbound(plaintextBytes: writes.reduce(0) { $0 + $1.0.readableBytes })
        var promises: [EventLoopPromise<Void>] = []
        for (index, (buffer, promise)) in writes.enumerated() {
            if let error = self.connection.write(buffer) {
                promise?.fail(error)
                for (_, later) in writes[(index + 1)...] { later?.fail(error) }
                for promise in promises { promise.fail(error) }
                if case .failAndClose(let error) = self.stateMachine.connectionFailed(error) {
                    self.fail(error, context: context)
                }
                return
            }
            if let promise { promises.append(promise) }
        }
        let combined: EventLoopPromise<Void>?
        switch promises.count {
        case 0: combined = nil
        case 1: combined = promises[0]
        default:
            let promise = context.eventLoop.makePromise(of: Void.self)
            promise.futureResult.assumeIsolated().whenComplete { result in
                for promise in promises { promise.completeWith(result) }
            }
            combined = promise
        }
        self.sendCiphertext(context: context, promise: combined, flush: true)
    }

    /// Writes whatever ciphertext OpenSSL produced (completing `promise` at once when there is none):
    /// the BIO's buffer itself, not a copy.
    private func sendCiphertext(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?, flush: Bool) {
        guard let buffer = self.connection.takeOutbound() else {
            promise?.succeed()
            if flush { context.flush() }
            return
        }
        context.write(Self.wrapOutboundOut(buffer), promise: promise)
        if flush { context.flush() }
    }

    /// Flushed data first, then `close_notify`, then the channel close once that is written.
    private func sendCloseNotify(context: ChannelHandlerContext, thenCloseMode mode: CloseMode, promise: EventLoopPromise<Void>?) {
        self.cancelTimer()
        self.failPendingWrites(ChannelError.ioOnClosedChannel)
        self.connection.shutdown()
        let written = context.eventLoop.makePromise(of: Void.self)
        self.sendCiphertext(context: context, promise: written, flush: true)
        written.futureResult.assumeIsolated().whenComplete { _ in
            context.close(mode: mode, promise: promise)
        }
    }

    /// Sends the alert OpenSSL queued (if any), fails pending writes, fires `error` and closes.
    private func fail(_ error: TLSError, context: ChannelHandlerContext) {
        self.fail(error, context: context, sendingAlert: true)
    }

    /// ``fail(_:context:)`` without the alert: for a transport that already failed (a reset during the
    /// handshake), where the write could only fail too. Everything else is the same.
    private func failWithoutAlert(_ error: TLSError, context: ChannelHandlerContext) {
        self.fail(error, context: context, sendingAlert: false)
    }

    /// Cancels the handshake timer, fails pending writes, writes the queued alert when `sendingAlert`,
    /// fires `error`, and closes once the alert (if any) is written.
    private func fail(_ error: TLSError, context: ChannelHandlerContext, sendingAlert: Bool) {
        self.cancelTimer()
        self.failPendingWrites(error)
        let written = context.eventLoop.makePromise(of: Void.self)
        if sendingAlert {
            self.sendCiphertext(context: context, promise: written, flush: true)
        } else {
            written.succeed()
        }
        context.fireErrorCaught(error)
        written.futureResult.assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    /// Answers a plain HTTP request in clear (if configured), fires `error` and closes; OpenSSL never
    /// saw the bytes, so there is no alert to send.
    private func failPlaintextHTTP(_ error: TLSError, context: ChannelHandlerContext) {
        self.cancelTimer()
        self.failPendingWrites(error)
        let written = context.eventLoop.makePromise(of: Void.self)
        if let response = self.configuration.plaintextHTTPResponse, !response.isEmpty {
            var buffer = context.channel.allocator.buffer(capacity: response.count)
            buffer.writeBytes(response)
            context.writeAndFlush(Self.wrapOutboundOut(buffer), promise: written)
        } else {
            written.succeed()
        }
        context.fireErrorCaught(error)
        written.futureResult.assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    private func failPendingWrites(_ error: any Error) {
        let writes = self.pendingWrites
        self.pendingWrites.removeAll()
        for (_, promise) in writes { promise?.fail(error) }
    }
}

@available(*, unavailable)
extension TLSHandler: Sendable {}

extension TLSHandler {
    /// Test hook: queues a TLS 1.3 KeyUpdate that also asks the peer to update (RFC 8446 §4.6.3) and
    /// flushes it through `channel`. Must be called on the channel's event loop.
    func requestKeyUpdate(channel: Channel) throws {
        try self.connection.requestKeyUpdate()
        channel.flush()
    }
}
