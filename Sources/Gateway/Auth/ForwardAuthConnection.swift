import NIOCore
import NIOHTTP1

/// What the auth service answered: its head, the start of its body (``GatewayConfiguration/ForwardAuthentication/maxRelayedBodyBytes``),
/// and whether the connection may carry another request.
struct ForwardAuthResponse: Sendable {
    var head: HTTPResponseHead
    var body: [UInt8]
    var keepAlive: Bool
}

/// Why the auth service gave no usable answer.
enum ForwardAuthFailure: Error, Hashable, Sendable {
    /// Connecting failed (refused, unreachable, a connect timeout inside the deadline).
    case unreachable
    /// The connection closed or reset before the whole answer.
    case closed
    /// The answer was over the response-size cap.
    case tooLarge
    /// Not HTTP/1.1.
    case malformed
    /// The deadline (connect plus answer) passed.
    case timeout
    /// Too many requests waiting for a connection on this event loop.
    case overloaded
    /// The client left first.
    case abandoned
}

/// Counts the bytes of the current answer (reset when a request goes out): past the cap the connection
/// is closed, and the answer is a failure (``ForwardAuthFailure/tooLarge``). NIO's response decoder
/// has no size limit of its own, so a giant header or body would otherwise be read to the end.
final class ForwardAuthByteLimit: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let limit: Int
    var received = 0
    private(set) var exceeded = false

    init(limit: Int) { self.limit = limit }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.exceeded else { return }
        self.received += Self.unwrapInboundIn(data).readableBytes
        if self.received > self.limit {
            self.exceeded = true
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(data)
    }
}

/// One request at a time on a kept-alive connection to the auth service: writes the request, collects
/// the answer (its body cut at the relayed size), completes the request's promise.
final class ForwardAuthExchangeHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let limiter: ForwardAuthByteLimit
    private var context: ChannelHandlerContext?
    private var pending: EventLoopPromise<ForwardAuthResponse>?
    private var head: HTTPResponseHead?
    private var body: [UInt8] = []
    /// Requests sent on this connection (a failure on a reused one before any byte may be a stale close).
    private(set) var requests = 0

    init(limiter: ForwardAuthByteLimit) { self.limiter = limiter }

    /// Whether the current answer has not sent a byte yet.
    var nothingReceived: Bool { self.limiter.received == 0 }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func send(_ request: HTTPRequestHead, promise: EventLoopPromise<ForwardAuthResponse>) {
        guard let context, context.channel.isActive, self.pending == nil else {
            return promise.fail(ForwardAuthFailure.closed)
        }
        self.requests += 1
        self.limiter.received = 0
        self.pending = promise
        self.head = nil
        self.body = []
        context.write(Self.wrapOutboundOut(.head(request)), promise: nil)
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let pending = self.pending else {
            // An answer nobody asked for: the connection cannot be trusted with the next request.
            return context.close(promise: nil)
        }
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body(let bytes):
            let room = GatewayConfiguration.ForwardAuthentication.maxRelayedBodyBytes - self.body.count
            if room > 0 { self.body += bytes.readableBytesView.prefix(room) }
        case .end:
            self.pending = nil
            guard let head = self.head else { return pending.fail(ForwardAuthFailure.malformed) }
            pending.succeed(ForwardAuthResponse(head: head, body: self.body, keepAlive: head.isKeepAlive))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.pending?.fail(self.limiter.exceeded ? ForwardAuthFailure.tooLarge : ForwardAuthFailure.closed)
        self.pending = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.pending?.fail(ForwardAuthFailure.malformed)
        self.pending = nil
        context.close(promise: nil)
    }
}

/// A connection to the auth service, owned by its ``ForwardAuthPool``.
final class ForwardAuthConnection {
    let channel: any Channel
    let exchange: ForwardAuthExchangeHandler
    var idleTimer: Scheduled<Void>?

    init(channel: any Channel, exchange: ForwardAuthExchangeHandler) {
        self.channel = channel
        self.exchange = exchange
    }

    /// The client's handlers: the size cap, the request encoder, the response decoder, the exchange.
    static func install(on channel: any Channel) throws {
        let pipeline = channel.pipeline.syncOperations
        let limiter = ForwardAuthByteLimit(limit: GatewayConfiguration.ForwardAuthentication.maxResponseBytes)
        try pipeline.addHandler(limiter)
        try pipeline.addHandler(HTTPRequestEncoder())
        try pipeline.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)))
        try pipeline.addHandler(ForwardAuthExchangeHandler(limiter: limiter))
    }
}
