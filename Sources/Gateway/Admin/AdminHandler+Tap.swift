import NIOCore
import NIOHTTP1

/// `/tap` (issue #14 §2): the connection becomes a chunked `application/x-ndjson` stream of
/// ``TapEvent``s. Events are taken from the subscriber's queue only while the channel is writable;
/// when it is not, the queue fills and then drops (counted, reported as a `dropped` event), and the
/// relays never wait.
extension AdminHandler {
    /// At most this many events per write.
    static let tapBatch = 64

    func startTap(context: ChannelHandlerContext, head: HTTPRequestHead, _ request: TapRequest) {
        guard let taps = self.observation?.taps else {
            return self.respond(context: context, to: head, .error(.serviceUnavailable, "this admin listener has no gateway to tap"))
        }
        let (handler, boundContext) = self.bound(context)
        let eventLoop = context.eventLoop
        let subscriber = TapSubscriber(filter: request.filter, payload: request.payload, maxPayload: request.maxPayload) {
            eventLoop.execute { handler.value.drainTap(context: boundContext.value) }
        }
        guard taps.attach(subscriber) else {
            return self.respond(context: context, to: head, .error(.serviceUnavailable, "too many taps are streaming (admin.tap.max_taps)"))
        }
        self.tap = subscriber
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/x-ndjson")
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "X-Content-Type-Options", value: "nosniff")
        context.writeAndFlush(Self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
    }

    /// Writes queued events while the channel takes them.
    func drainTap(context: ChannelHandlerContext) {
        guard let subscriber = self.tap, context.channel.isActive else { return }
        var wrote = false
        while context.channel.isWritable {
            let (events, dropped) = subscriber.take(max: Self.tapBatch)
            if events.isEmpty && dropped == 0 { break }
            // Encoded straight into the buffer (``TapEventEncoder``): no `String` per event.
            var buffer = context.channel.allocator.buffer(capacity: 256 * (events.count + 1))
            if dropped > 0 { TapEventEncoder.writeDropped(dropped, to: &buffer) }
            for event in events {
                TapEventEncoder.write(event, payload: subscriber.payload, maxPayload: subscriber.maxPayload, to: &buffer)
            }
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            wrote = true
        }
        if wrote { context.flush() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { self.drainTap(context: context) }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.stopTap()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.stopTap()
    }

    private func stopTap() {
        guard let subscriber = self.tap else { return }
        self.tap = nil
        self.observation?.taps.detach(subscriber)
    }
}
