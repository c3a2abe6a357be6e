import NIOCore

/// Counts the bytes a client sends before its connection is switched to frames, and fails once they pass
/// the request-head limit (DESIGN §1.3: 16 KiB → 431). Removed when the connection starts relaying.
final class RequestBytesLimiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    struct LimitExceeded: Error {}

    private let limit: Int
    private var seen = 0

    init(limit: Int) { self.limit = limit }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.seen += Self.unwrapInboundIn(data).readableBytes
        if self.seen > self.limit {
            context.fireErrorCaught(LimitExceeded())
            return
        }
        context.fireChannelRead(data)
    }
}

/// Catches what an HTTP decoder forwards when it is removed: bytes that came after the request or
/// response head.
final class LeftoverBytesCollector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private(set) var bytes: ByteBuffer?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = Self.unwrapInboundIn(data)
        if self.bytes == nil {
            self.bytes = buffer
        } else {
            self.bytes!.writeBuffer(&buffer)
        }
    }
}

@available(*, unavailable)
extension RequestBytesLimiter: Sendable {}

@available(*, unavailable)
extension LeftoverBytesCollector: Sendable {}
