import NIOCore

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
extension LeftoverBytesCollector: Sendable {}
