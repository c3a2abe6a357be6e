import NIOCore
import NIOHTTP1

/// The upstream's answer to the upgrade request: its head and (for a non-101) up to 64 KiB of body.
struct UpstreamResponse: Sendable, Equatable {
    var head: HTTPResponseHead
    var body: ByteBuffer

    /// Headers of an upstream's non-101 answer that are relayed to the client; the rest (hop-by-hop,
    /// framing, WebSocket handshake headers) are not.
    static let relayedHeaders: Set<String> = [
        "content-type", "content-language", "cache-control", "retry-after", "www-authenticate", "location",
        "set-cookie", "vary",
    ]

    /// A non-101 answer as relayed to the client (DESIGN §1.7): its status and reason, the safe headers,
    /// the body collected (up to 64 KiB), and `Connection: close` (both connections close after it: never
    /// a tunnel).
    func relayedToClient() -> HTTPResponse {
        var body = self.body
        return HTTPResponse(
            status: Int(self.head.status.code),
            reason: self.head.status.reasonPhrase,
            headers: self.head.headers.filter { Self.relayedHeaders.contains($0.name.lowercased()) }.map { ($0.name, $0.value) }
                + [("Connection", "close")],
            body: body.readBytes(length: body.readableBytes) ?? []
        )
    }
}

/// Collects the upstream's response to the upgrade request on the upstream channel and completes a
/// promise with it at the end of the response: for a 101 right after its head (the decoder stops there;
/// what follows is frames), for other statuses after their body (DESIGN §1.7: relayed with a body of up
/// to 64 KiB).
final class UpstreamHandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart

    static let maxRelayedBody = 64 * 1024

    struct ClosedBeforeResponse: Error {}

    private let promise: EventLoopPromise<UpstreamResponse>
    private var head: HTTPResponseHead?
    private var body = ByteBuffer()
    private var completed = false

    init(promise: EventLoopPromise<UpstreamResponse>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.completed else { return }
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body(var chunk):
            let room = Self.maxRelayedBody - self.body.readableBytes
            if room > 0, let slice = chunk.readSlice(length: min(room, chunk.readableBytes)) {
                var slice = slice
                self.body.writeBuffer(&slice)
            }
        case .end:
            if let head = self.head { self.complete(head) }
        }
    }

    private func complete(_ head: HTTPResponseHead) {
        self.completed = true
        self.promise.succeed(UpstreamResponse(head: head, body: self.body))
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !self.completed, let head = self.head {
            // A body delimited by the end of the connection.
            self.complete(head)
        }
        self.fail(ClosedBeforeResponse())
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // A channel that never connected is torn down without `channelInactive`; the promise must
        // still be completed.
        self.fail(ClosedBeforeResponse())
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.fail(error)
        context.close(promise: nil)
    }

    private func fail(_ error: any Error) {
        guard !self.completed else { return }
        self.completed = true
        self.promise.fail(error)
    }
}

@available(*, unavailable)
extension UpstreamHandshakeHandler: Sendable {}
