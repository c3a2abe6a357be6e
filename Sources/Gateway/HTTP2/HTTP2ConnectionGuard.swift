import NIOCore
import NIOHTTP2

/// The connection-level rules of an HTTP/2 connection (issue #16), behind swift-nio-http2's handler
/// (whose root-stream frames end here):
/// - streams per connection lifetime: the stream that reaches the limit is served, and GOAWAY with its
///   ID tells the client to open later streams on a new connection (swift-nio-http2 refuses higher IDs);
/// - no open stream for `timeouts.request_head` (as an HTTP/1.1 connection without a request head):
///   GOAWAY and close;
/// - drain, or a GOAWAY sent: the connection closes once its last stream has.
final class HTTP2ConnectionGuard: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private let maxStreams: Int
    private let idleTimeout: TimeAmount
    private(set) var openStreams = 0
    private(set) var streamsOpened = 0
    private var lastStreamID = HTTP2StreamID(0)
    private(set) var goingAway = false
    private var idleTimer: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    init(maxStreams: Int, idleTimeout: TimeAmount) {
        self.maxStreams = maxStreams
        self.idleTimeout = idleTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { self.armIdleTimer(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.idleTimer?.cancel()
    }

    func channelActive(context: ChannelHandlerContext) {
        self.armIdleTimer(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.idleTimer?.cancel()
        context.fireChannelInactive()
    }

    /// Root-stream frames (SETTINGS, PING, GOAWAY, WINDOW_UPDATE) were handled by swift-nio-http2.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            // The GOAWAY went out first (``HTTP2ALPNSwitch``); the streams got their own drain.
            self.goingAway = true
            if self.openStreams == 0 { context.close(promise: nil) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// swift-nio-http2's inline multiplexer reports streams to its delegate (``Delegate``), not down
    /// the pipeline.
    func streamCreated(_ id: HTTP2StreamID) {
        guard let context = self.context else { return }
        self.openStreams += 1
        self.streamsOpened += 1
        self.lastStreamID = max(self.lastStreamID, id)
        self.idleTimer?.cancel()
        if self.streamsOpened >= self.maxStreams { self.goAway(context: context, lastStreamID: id) }
    }

    func streamClosed(_ id: HTTP2StreamID) {
        guard let context = self.context else { return }
        self.openStreams -= 1
        guard self.openStreams == 0 else { return }
        if self.goingAway { context.close(promise: nil) } else { self.armIdleTimer(context: context) }
    }

    /// The stream delegate handed to swift-nio-http2's handler; called on the connection's event loop.
    struct Delegate: NIOHTTP2StreamDelegate {
        let connectionGuard: NIOLoopBound<HTTP2ConnectionGuard>

        func streamCreated(_ id: HTTP2StreamID, channel: any Channel) {
            self.connectionGuard.value.streamCreated(id)
        }

        func streamClosed(_ id: HTTP2StreamID, channel: any Channel) {
            self.connectionGuard.value.streamClosed(id)
        }
    }

    private func goAway(context: ChannelHandlerContext, lastStreamID: HTTP2StreamID) {
        guard !self.goingAway else { return }
        self.goingAway = true
        let frame = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: lastStreamID, errorCode: .noError, opaqueData: nil))
        context.writeAndFlush(Self.wrapOutboundOut(frame), promise: nil)
    }

    private func armIdleTimer(context: ChannelHandlerContext) {
        self.idleTimer?.cancel()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.idleTimer = context.eventLoop.scheduleTask(in: self.idleTimeout) {
            let (handler, context) = bound.value
            guard handler.openStreams == 0 else { return }
            handler.goAway(context: context, lastStreamID: handler.lastStreamID)
            context.close(promise: nil)
        }
    }
}

@available(*, unavailable)
extension HTTP2ConnectionGuard: Sendable {}
