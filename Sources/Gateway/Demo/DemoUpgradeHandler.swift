import Frames
import NIOCore
import NIOHTTP1

/// Answers the opening handshake of one demo connection, then turns the pipeline into a WebSocket one.
///
/// It sits after `ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes))` and
/// `HTTPResponseEncoder`. The request head is judged by ``DemoHandshake/evaluate(_:)``; once the request
/// is complete the handler either
/// - answers `101 Switching Protocols`, adds the route's frame handler after itself and removes the
///   encoder, itself and the decoder: the decoder forwards the bytes it read past the request head
///   (a client may send its first frames right behind the request), so they reach the frame handler
///   instead of being lost; or
/// - answers the refusal (400/404/426, always with `Sec-WebSocket-Version: 13`) and closes the
///   connection once it is written. Nothing after a refused request is read.
final class DemoUpgradeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        /// Waiting for the request head.
        case awaitingHead
        /// The head was judged; the answer goes out when the request ends.
        case awaitingEnd(DemoHandshake.Decision)
        /// Answered: upgraded (and on the way out of the pipeline) or refused (and closing).
        case answered
    }

    private var state: State = .awaitingHead
    private let room: DemoChatRoom
    private let decoder: ByteToMessageHandler<HTTPRequestDecoder>
    private let encoder: HTTPResponseEncoder

    /// - Parameters:
    ///   - room: the chat room `/chat` connections join.
    ///   - decoder, encoder: the HTTP handlers in front of this one, removed on upgrade.
    init(room: DemoChatRoom, decoder: ByteToMessageHandler<HTTPRequestDecoder>, encoder: HTTPResponseEncoder) {
        self.room = room
        self.decoder = decoder
        self.encoder = encoder
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (self.state, self.unwrapInboundIn(data)) {
        case (.awaitingHead, .head(let head)):
            self.state = .awaitingEnd(DemoHandshake.evaluate(head))
        case (.awaitingEnd, .body):
            // A handshake with a body was already judged a refusal by its head; the body is dropped.
            break
        case (.awaitingEnd(let decision), .end):
            self.state = .answered
            switch decision {
            case .accept(let route, let acceptValue):
                self.upgrade(context: context, route: route, acceptValue: acceptValue)
            case .reject(let status, let reason):
                self.reject(context: context, status: status, reason: reason)
            case .page:
                let body = context.channel.allocator.buffer(string: DemoChatPage.html)
                self.answer(context: context, status: .ok, headers: DemoHandshake.pageHeaders(bodyLength: body.readableBytes), body: body)
            }
        case (.answered, _):
            // Bytes after a refused request are never read (DESIGN §1.5).
            break
        case (.awaitingHead, .body), (.awaitingHead, .end), (.awaitingEnd, .head):
            preconditionFailure("HTTPRequestDecoder delivered request parts out of order")
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch self.state {
        case .awaitingHead, .awaitingEnd:
            // A malformed request (the decoder's HTTPParserError).
            self.state = .answered
            self.reject(context: context, status: .badRequest, reason: "malformed HTTP request")
        case .answered:
            context.close(promise: nil)
        }
    }

    /// Sends the 101 and swaps the HTTP handlers for the route's frame handler.
    private func upgrade(context: ChannelHandlerContext, route: DemoRoute, acceptValue: String) {
        let head = HTTPResponseHead(
            version: .http1_1,
            status: .switchingProtocols,
            headers: DemoHandshake.switchingHeaders(acceptValue: acceptValue)
        )
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)

        let frameHandler: any ChannelHandler
        switch route {
        case .echo:
            frameHandler = DemoEchoHandler()
        case .chat(let name):
            frameHandler = DemoChatHandler(room: self.room, requestedName: name)
        }
        do {
            let pipeline = context.pipeline.syncOperations
            try pipeline.addHandler(frameHandler, position: .after(self))
            // The encoder's response is already written; it goes first. This handler goes before the
            // decoder, whose removal (deferred until its decode loop returns) forwards the bytes that
            // followed the request head: they must find the frame handler next in line.
            pipeline.removeHandler(self.encoder, promise: nil)
            pipeline.removeHandler(context: context, promise: nil)
            // The forwarded bytes arrive outside the socket's read cycle (the decoder forwards them from
            // an `execute`d task), so no `channelReadComplete` follows them: send one, or the frame
            // handler's answers to them would sit unflushed.
            let removed = context.eventLoop.makePromise(of: Void.self)
            let channel = context.channel
            removed.futureResult.whenSuccess {
                channel.pipeline.fireChannelReadComplete()
            }
            pipeline.removeHandler(self.decoder, promise: removed)
        } catch {
            context.close(promise: nil)
        }
    }

    /// Sends a refusal with a plain-text body and closes the connection once it is written.
    private func reject(context: ChannelHandlerContext, status: HTTPResponseStatus, reason: String) {
        var body = context.channel.allocator.buffer(capacity: reason.utf8.count + 1)
        body.writeString(reason)
        body.writeString("\n")
        self.answer(context: context, status: status, headers: DemoHandshake.rejectionHeaders(bodyLength: body.readableBytes), body: body)
    }

    /// Sends a complete HTTP answer and closes the connection once it is written.
    private func answer(context: ChannelHandlerContext, status: HTTPResponseStatus, headers: HTTPHeaders, body: ByteBuffer) {
        let head = HTTPResponseHead(version: .http1_1, status: status, headers: headers)
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}

@available(*, unavailable)
extension DemoUpgradeHandler: Sendable {}
