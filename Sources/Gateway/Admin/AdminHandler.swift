import NIOCore
import NIOHTTP1
import Prometheus

/// Answers one admin request per `end` (keep-alive as the client asks), as ``AdminRouter`` decides. A
/// `/tap` request turns the connection into an NDJSON stream until the client goes away
/// (`AdminHandler+Tap.swift`).
final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// A `POST` body larger than this is refused (a close request is a few dozen bytes).
    static let maxBody = 4096

    let registry: PrometheusCollectorRegistry
    let observation: AdminObservation?
    let token: AdminToken
    private let isReady: @Sendable () -> Bool
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var bodyTooLarge = false
    /// While this connection streams a tap.
    var tap: TapSubscriber?

    init(registry: PrometheusCollectorRegistry, observation: AdminObservation?, token: AdminToken, isReady: @escaping @Sendable () -> Bool) {
        self.registry = registry
        self.observation = observation
        self.token = token
        self.isReady = isReady
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard self.tap == nil else { return }  // a tap stream reads nothing more
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.body = []
            self.bodyTooLarge = false
        case .body(let buffer):
            if self.body.count + buffer.readableBytes > Self.maxBody {
                self.bodyTooLarge = true
            } else {
                self.body += buffer.readableBytesView
            }
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            if self.bodyTooLarge {
                var answer = AdminAnswer.error(.payloadTooLarge, "the body is over \(Self.maxBody) bytes")
                answer.headers["Connection"] = "close"
                return self.respond(context: context, to: head, answer, close: true)
            }
            self.handle(context: context, head: head)
        }
    }

    private func handle(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let route = AdminRouter.route(
            method: head.method,
            uri: head.uri,
            headers: head.headers,
            body: self.body,
            token: self.token.value,
            isReady: self.isReady()
        )
        self.body = []
        switch route {
        case .answer(let answer):
            self.respond(context: context, to: head, answer)
        case .metrics:
            let answer = AdminAnswer(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: self.registry.emitToBuffer())
            self.respond(context: context, to: head, answer)
        case .listConnections(let limit):
            guard let live = self.observation?.live else { return self.respond(context: context, to: head, Self.noConnections) }
            let (handler, boundContext) = self.bound(context)
            live.snapshot(limit: limit, on: context.eventLoop).assumeIsolated().whenComplete { result in
                let answer: AdminAnswer
                switch result {
                case .success(let rows):
                    answer = AdminAnswer(status: .ok, contentType: AdminAnswer.json, body: Array(LiveConnectionJSON.list(rows, now: .now()).utf8))
                case .failure(let error):
                    answer = .error(.internalServerError, "\(error)")
                }
                handler.value.respond(context: boundContext.value, to: head, answer)
            }
        case .showConnection(let id):
            guard let live = self.observation?.live else { return self.respond(context: context, to: head, Self.unknown) }
            let (handler, boundContext) = self.bound(context)
            live.row(id, on: context.eventLoop).assumeIsolated().whenComplete { result in
                let answer: AdminAnswer
                switch result {
                case .success(let row?):
                    answer = AdminAnswer(
                        status: .ok,
                        contentType: AdminAnswer.json,
                        body: Array((LiveConnectionJSON.object(row, now: .now()) + "\n").utf8)
                    )
                case .success(nil):
                    answer = Self.unknown
                case .failure(let error):
                    answer = .error(.internalServerError, "\(error)")
                }
                handler.value.respond(context: boundContext.value, to: head, answer)
            }
        case .closeConnection(let id, let request):
            guard let live = self.observation?.live, live.close(id, code: request) else {
                return self.respond(context: context, to: head, Self.unknown)
            }
            self.respond(
                context: context,
                to: head,
                AdminAnswer(status: .accepted, contentType: AdminAnswer.json, body: Array("{\"closing\":\(id)}\n".utf8))
            )
        case .tap(let request):
            self.startTap(context: context, head: head, request)
        }
    }

    static let unknown = AdminAnswer.error(.notFound, "no such connection (it may have closed, or it is still in its handshake)")
    static let noConnections = AdminAnswer(status: .ok, contentType: AdminAnswer.json, body: Array("{\"connections\":[]}\n".utf8))

    func respond(context: ChannelHandlerContext, to head: HTTPRequestHead, _ answer: AdminAnswer, close: Bool = false) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: answer.contentType)
        headers.add(name: "Content-Length", value: String(answer.body.count))
        headers.add(name: "Cache-Control", value: "no-store")
        for (name, value) in answer.headers.sorted(by: { $0.key < $1.key }) where name != "Connection" {
            headers.add(name: name, value: value)
        }
        let keepAlive = head.isKeepAlive && !close
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: answer.status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: answer.body)))), promise: nil)
        }
        let done = context.writeAndFlush(Self.wrapOutboundOut(.end(nil)))
        if !keepAlive {
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    func bound(_ context: ChannelHandlerContext) -> (NIOLoopBound<AdminHandler>, NIOLoopBound<ChannelHandlerContext>) {
        (NIOLoopBound(self, eventLoop: context.eventLoop), NIOLoopBound(context, eventLoop: context.eventLoop))
    }
}

@available(*, unavailable)
extension AdminHandler: Sendable {}
