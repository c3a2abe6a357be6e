import Frames
import NIOCore

/// One member of the `/chat` room (``DemoChatRoom``), RFC 6455 server role.
///
/// - Joins the room when added to the pipeline (after the 101) and leaves it on Close, on error and
///   when the channel goes inactive.
/// - Each text message is assembled (its fragments joined) up to 64 KiB, then broadcast; a larger one
///   fails the connection with 1009 (the parser's limit). Binary messages are not part of the chat
///   protocol: 1003 (RFC 6455 §7.4.1, "a type of data it cannot accept").
/// - Ping → Pong with the same payload; Close → Close with the same body, then TCP close.
/// - Protocol errors → Close with ``FramesError/closeCode``, then TCP close.
///
/// Frames from the room arrive through ``deliver(_:)`` on this channel's event loop and are written
/// only while the connection is open, so nothing follows our Close. A member that does not read is
/// disconnected once its outbound buffer is above the high watermark (``DemoUpstream``'s 256 KiB, the
/// gateway's default), so one stalled member cannot grow the process without bound.
final class DemoChatHandler: DemoWebSocketHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The largest chat message, in bytes of UTF-8: 64 KiB.
    static let maxMessageSize = 64 * 1024

    private enum State {
        /// Not joined yet (before `handlerAdded`).
        case idle
        /// In the room. `message` collects the text message being received, if one is open.
        case joined(Membership, message: ByteBuffer?)
        /// Left the room; our Close is written or the connection is gone.
        case closed
    }

    /// What the room told us on joining.
    private struct Membership {
        var id: Int
        var name: String
    }

    private var state: State = .idle
    private var parser = FrameParser(
        role: .server,
        configuration: .init {
            $0.maxFrameSize = DemoChatHandler.maxMessageSize
            $0.maxMessageSize = DemoChatHandler.maxMessageSize
        }
    )
    var encoder = FrameEncoder(role: .server)
    /// FIN of the data frame being received.
    private var currentFin = false
    private let room: DemoChatRoom
    private let requestedName: String?
    /// Set while the handler is in the pipeline, for ``deliver(_:)``.
    private var context: ChannelHandlerContext?

    init(room: DemoChatRoom, requestedName: String?) {
        self.room = room
        self.requestedName = requestedName
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let (id, name) = self.room.join(
            requestedName: self.requestedName,
            handler: NIOLoopBound(self, eventLoop: context.eventLoop)
        )
        self.state = .joined(Membership(id: id, name: name), message: nil)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.leave()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.leave()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.leave()
        context.close(promise: nil)
    }

    /// Writes a frame broadcast by the room, if the connection is still open. Runs on the event loop.
    ///
    /// A member whose channel is not writable (its unsent frames are above the high watermark) has
    /// stopped reading: it leaves the room and its TCP connection is closed, dropping what is queued.
    /// Disconnecting rather than skipping frames: a chat member that silently misses messages is worse
    /// off than one that sees its connection end and reconnects; a Close frame would only queue
    /// behind the frames it is not reading. The others see it leave (presence).
    func deliver(_ frame: ByteBuffer) {
        guard case .joined = self.state, let context = self.context else { return }
        guard context.channel.isWritable else {
            self.leave()
            context.close(promise: nil)
            return
        }
        context.writeAndFlush(self.wrapOutboundOut(frame), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        do {
            while case .joined = self.state, let event = try self.parser.next(&buffer) {
                self.handle(event, context: context)
            }
        } catch {
            self.failWithClose(code: error.closeCode, context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        context.fireChannelReadComplete()
    }

    private func handle(_ event: FrameParser.Event, context: ChannelHandlerContext) {
        guard case .joined(let membership, var message) = self.state else { return }
        switch event {
        case .header(let header):
            self.currentFin = header.fin
            switch header.opcode {
            case .text:
                message = context.channel.allocator.buffer(capacity: header.payloadLength)
            case .continuation:
                message?.reserveCapacity(minimumWritableBytes: header.payloadLength)
            default:
                self.failWithClose(code: .unsupportedData, context: context)
                return
            }
        case .payload(var chunk):
            message?.writeBuffer(&chunk)
        case .frameEnd:
            if self.currentFin, let text = message {
                message = nil
                // The parser validated the UTF-8 (RFC 6455 §8.1).
                self.room.broadcast(from: membership.name, text: String(buffer: text))
            }
        case .control(let frame):
            self.handleControl(frame, context: context)
            return
        }
        self.state = .joined(membership, message: message)
    }

    /// Leaves the room, writes `bytes` (a Close frame) and closes TCP once it is written.
    func closeAfterWriting(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        guard case .joined = self.state else { return }
        self.leave()
        self.writeThenClose(bytes, context: context)
    }

    private func leave() {
        switch self.state {
        case .joined(let membership, _):
            self.state = .closed
            self.room.leave(id: membership.id)
        case .idle, .closed:
            self.state = .closed
        }
    }
}

@available(*, unavailable)
extension DemoChatHandler: Sendable {}
