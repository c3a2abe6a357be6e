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

/// Where an ``UpstreamLegHandler`` hands the upstream's answer: the connection's
/// ``ClientConnectionHandler`` directly (issue #15: no promise and no callback closure per connection), or
/// a promise (the fuzzer, tests).
protocol UpstreamAnswerReceiver: AnyObject {
    /// Called once, on the channel's event loop, with the answer or why there is none.
    func upstreamAnswered(_ result: Result<UpstreamResponse, any Error>)
}

/// The upstream channel's one handler, from the upgrade request to the last frame (issue #15): it reads
/// the upstream's answer with an ``UpstreamResponseScanner`` and hands it to its receiver (for a 101
/// right after its head, for other statuses after their body: DESIGN §1.7, relayed with up to 64 KiB),
/// keeps what the upstream sends after its 101 until ``startRelay(_:)``, and from then on hands every
/// event to the ``RelaySession`` as the upstream side's ``RelayHandler`` would, in place: the pipeline
/// never changes, so there are no `removeHandler` futures, no handlers added after the 101 and no
/// second handler object. The upgrade request itself is written as bytes by ``ClientConnectionHandler``
/// (``UpstreamHandshake/requestHead(for:upstream:peer:peerIsTrusted:clientUsedTLS:clientCertificate:grant:)``)
/// and passes through.
final class UpstreamLegHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct ClosedBeforeResponse: Error {}

    private enum Phase {
        /// Reading the answer.
        case handshake
        /// A 101 arrived: bytes are kept in ``early`` (frames the upstream sent at once) until the relay
        /// starts.
        case switching
        /// Every event goes to ``session``.
        case relaying
        /// A non-101 answer or a broken one: nothing more is read.
        case ended
    }

    private var phase = Phase.handshake
    private var early: ByteBuffer?
    /// The relay's session once it started (the upstream side's; set once, by ``startRelay(_:)``).
    private var session: RelaySession?
    private var scanner = UpstreamResponseScanner()
    private var promise: EventLoopPromise<UpstreamResponse>?
    /// Held strongly until the answer is handed over (or ``abandonAnswer()``), then released.
    private var receiver: (any UpstreamAnswerReceiver)?
    private var context: ChannelHandlerContext?

    init(promise: EventLoopPromise<UpstreamResponse>) {
        self.promise = promise
    }

    init(receiver: any UpstreamAnswerReceiver) {
        self.receiver = receiver
    }

    /// The answer is no longer wanted (the channel never reached a pipeline): the receiver is let go
    /// without a call.
    func abandonAnswer() {
        self.receiver = nil
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // A channel that never connected is torn down without `channelInactive`; the promise must
        // still be completed.
        self.answer(.failure(ClosedBeforeResponse()))
        // The session holds this leg's context: let it go (as ``RelayHandler/handlerRemoved(context:)``).
        if self.phase == .relaying { self.session?.detach(.upstream) }
        self.phase = .ended
        self.session = nil
        self.context = nil
    }

    /// The relay takes over this leg: the bytes kept since the 101 go to `session` first.
    func startRelay(_ session: RelaySession) {
        guard let context = self.context, self.phase == .switching else { return }
        self.session = session
        self.phase = .relaying
        session.attach(.upstream, context: context)
        if var early = self.early {
            self.early = nil
            session.read(from: .upstream, &early)
            session.readComplete(from: .upstream)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.phase {
        case .relaying:
            var buffer = Self.unwrapInboundIn(data)
            self.session?.read(from: .upstream, &buffer)
        case .handshake:
            var buffer = Self.unwrapInboundIn(data)
            switch self.scanner.feed(&buffer) {
            case .needMore:
                break
            case .complete(let response, let leftover):
                if response.head.status.code == 101 {
                    self.phase = .switching
                    self.early = leftover
                } else {
                    self.phase = .ended
                }
                self.answer(.success(response))
            case .malformed(let error):
                self.phase = .ended
                self.answer(.failure(error))
                context.close(promise: nil)
            }
        case .switching:
            var buffer = Self.unwrapInboundIn(data)
            if self.early == nil {
                self.early = buffer
            } else {
                self.early!.writeBuffer(&buffer)
            }
        case .ended:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if self.phase == .relaying {
            self.session?.readComplete(from: .upstream)
        } else {
            context.fireChannelReadComplete()
        }
    }

    func read(context: ChannelHandlerContext) {
        if self.phase == .relaying, let session = self.session, !session.shouldRead(.upstream) { return }
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if self.phase == .relaying { self.session?.writabilityChanged(.upstream) }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch self.phase {
        case .relaying:
            self.session?.inactive(.upstream)
            context.fireChannelInactive()
            return
        case .handshake:
            // A body delimited by the end of the connection.
            if let response = self.scanner.closed() {
                self.phase = .ended
                self.answer(.success(response))
            }
        case .switching, .ended:
            break
        }
        self.answer(.failure(ClosedBeforeResponse()))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if self.phase == .relaying {
            // A read or write error ends this leg like a lost TCP connection (as ``RelayHandler``).
            context.close(promise: nil)
            return context.fireErrorCaught(error)
        }
        self.answer(.failure(error))
        context.close(promise: nil)
    }

    /// The upstream's answer, given once: to the client handler directly, or to the promise (the fuzzer's and
    /// tests' way).
    private func answer(_ result: Result<UpstreamResponse, any Error>) {
        if let receiver = self.receiver {
            self.receiver = nil
            receiver.upstreamAnswered(result)
        } else if let promise = self.promise {
            self.promise = nil
            promise.completeWith(result)
        }
    }
}

@available(*, unavailable)
extension UpstreamLegHandler: Sendable {}
