import Frames
import NIOCore

/// How a client is answered (issue #16). The checks, the upstream upgrade and the relay are the same
/// for both; only the two writes below differ: an HTTP/1.1 response on the connection, or HEADERS on
/// the client's HTTP/2 stream through its ``HTTP2WebSocketStreamCodec`` (RFC 8441 §5).
enum ClientAnswerEncoding: Sendable, Equatable {
    case http1
    case http2

    /// The `protocol` of the access log and metrics.
    var label: String {
        switch self {
        case .http1: "http1"
        case .http2: "h2"
        }
    }
}

extension ClientConnectionHandler {
    /// The answer that switches to frames, with `headers` (the subprotocol and extensions agreed):
    /// `101 Switching Protocols` with `Upgrade`, `Connection` and `Sec-WebSocket-Accept` (RFC 6455 §4.2.2),
    /// or `:status 200` (RFC 8441 §5: no key, no accept).
    func writeSwitchAnswer(context: ChannelHandlerContext, request: ClientUpgradeRequest, headers: [(String, String)]) {
        switch self.answerEncoding {
        case .http1:
            // Written straight into one buffer (issue #15), the same bytes as `HTTPResponse(status: 101, …)`.
            var bytes = context.channel.allocator.buffer(capacity: 256)
            bytes.writeStaticString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ")
            bytes.writeString(HandshakeKey.acceptValue(forKey: request.key))
            bytes.writeStaticString("\r\n")
            for (name, value) in headers {
                bytes.writeString(name)
                bytes.writeStaticString(": ")
                bytes.writeString(value)
                bytes.writeStaticString("\r\n")
            }
            bytes.writeStaticString("\r\n")
            context.writeAndFlush(NIOAny(bytes), promise: nil)
        case .http2:
            self.streamCodec(context)?.answer(status: 200, headers: headers, body: [], endStream: false)
        }
    }

    /// A refusal: the HTTP/1.1 response (`Connection: close`), or `:status` with END_STREAM. The future
    /// completes when it is written; the caller closes the connection or stream then.
    func writeRefusal(context: ChannelHandlerContext, _ rejection: HandshakeRejection) -> EventLoopFuture<Void> {
        switch self.answerEncoding {
        case .http1:
            var bytes = context.channel.allocator.buffer(capacity: 256)
            rejection.response.write(to: &bytes)
            return context.writeAndFlush(NIOAny(bytes))
        case .http2:
            let response = rejection.response
            return self.streamCodec(context)?.answer(status: response.status, headers: response.headers, body: response.body, endStream: true)
                ?? context.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
        }
    }

    func streamCodec(_ context: ChannelHandlerContext) -> HTTP2WebSocketStreamCodec? {
        try? context.pipeline.syncOperations.handler(type: HTTP2WebSocketStreamCodec.self)
    }
}
