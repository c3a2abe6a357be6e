import Frames
import NIOCore

extension FrameEncoder {
    /// The demo upstream's answer to a control frame: a Pong with the Ping's payload, or the Close sent
    /// back unchanged (the parser validated its body, RFC 6455 §5.5.1, §7.4); nothing for a Pong.
    mutating func demoReply(to frame: ControlFrame, allocator: ByteBufferAllocator) -> (bytes: ByteBuffer, isClose: Bool)? {
        let opcode: Opcode
        switch frame.opcode {
        case .ping: opcode = .pong
        case .close: opcode = .close
        default: return nil
        }
        var bytes = allocator.buffer(capacity: 2 + frame.payload.readableBytes)
        self.writeFrame(opcode: opcode, payload: frame.payload, to: &bytes)
        return (bytes, opcode == .close)
    }
}

/// What the demo upstream's two WebSocket handlers (``DemoEchoHandler``, ``DemoChatHandler``) share: the
/// answer to a control frame, and failing the connection with a Close. Each keeps its own bookkeeping
/// (its state, leaving the room) in ``closeAfterWriting(_:context:)``.
protocol DemoWebSocketHandler: ChannelInboundHandler where OutboundOut == ByteBuffer {
    /// The server's frame encoder (unmasked frames, RFC 6455 §5.1).
    var encoder: FrameEncoder { get set }

    /// Writes `bytes` (a Close frame), flushes and closes TCP once they are written
    /// (``writeThenClose(_:context:)``), after the handler's own bookkeeping.
    func closeAfterWriting(_ bytes: ByteBuffer, context: ChannelHandlerContext)
}

extension DemoWebSocketHandler {
    /// A Pong for a Ping; a Close sent back, then TCP closed; nothing for a Pong.
    func handleControl(_ frame: ControlFrame, context: ChannelHandlerContext) {
        guard let reply = self.encoder.demoReply(to: frame, allocator: context.channel.allocator) else { return }
        if reply.isClose {
            self.closeAfterWriting(reply.bytes, context: context)
        } else {
            context.write(self.wrapOutboundOut(reply.bytes), promise: nil)
        }
    }

    /// Fails the connection with a Close carrying `code` (no reason).
    func failWithClose(code: CloseCode, context: ChannelHandlerContext) {
        var bytes = context.channel.allocator.buffer(capacity: 4)
        self.encoder.writeClose(code: code, to: &bytes)
        self.closeAfterWriting(bytes, context: context)
    }

    /// Writes and flushes `bytes`, then closes TCP once they are written.
    func writeThenClose(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(bytes)).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}
