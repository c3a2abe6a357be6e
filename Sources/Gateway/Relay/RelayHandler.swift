import NIOCore

/// The channel handler of one leg of a relayed connection: it only hands NIO events to the shared
/// ``RelaySession`` (both legs live on the same event loop).
final class RelayHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let side: Side
    private let session: RelaySession

    init(side: Side, session: RelaySession) {
        self.side = side
        self.session = session
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.session.attach(self.side, context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // The session holds this context and the context this handler, which holds the session: without
        // this the four (and both channels' pipelines) were never freed, ~1.5 KiB per connection.
        self.session.detach(self.side)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = Self.unwrapInboundIn(data)
        self.session.read(from: self.side, &buffer)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.session.readComplete(from: self.side)
    }

    func read(context: ChannelHandlerContext) {
        if self.session.shouldRead(self.side) {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.session.writabilityChanged(self.side)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.session.inactive(self.side)
        context.fireChannelInactive()
    }

    /// Drain (issue #10): the gateway asks every connection to quiesce with NIO's own event (the one
    /// swift-nio-extras' `ServerQuiescingHelper` sends), fired into the client channel's pipeline.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            self.session.drain()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// A close that comes from outside the relay (it starts at the pipeline's tail: the drain deadline
    /// closing the client channel) ends the upstream leg too. The relay's own closes start below this
    /// handler and never pass here.
    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .all, self.side == .client { self.session.closedFromOutside() }
        context.close(mode: mode, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A read or write error ends this leg like a lost TCP connection.
        context.close(promise: nil)
        context.fireErrorCaught(error)
    }
}

@available(*, unavailable)
extension RelayHandler: Sendable {}
