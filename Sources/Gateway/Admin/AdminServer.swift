import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus

/// The admin listener (DESIGN §6): `GET /metrics` (Prometheus text format 0.0.4), `GET /healthz`
/// (200 while the process serves), `GET /readyz` (200, or 503 once a drain has started). Anything else
/// is 404; methods other than GET and HEAD are 405. Bind it to a loopback or pod-internal address: it
/// has no authentication.
public final class AdminServer: Sendable {
    private let channel: any Channel

    /// The bound address (port 0 → the chosen port).
    public var localAddress: SocketAddress? { self.channel.localAddress }

    private init(channel: any Channel) {
        self.channel = channel
    }

    /// Binds `host:port` and serves `registry` and the readiness `isReady` reports.
    public static func start(
        host: String,
        port: Int,
        registry: PrometheusCollectorRegistry,
        group: any EventLoopGroup,
        isReady: @escaping @Sendable () -> Bool
    ) async throws -> AdminServer {
        let channel = try await ServerBootstrap(group: group)
            .backingOffAfterAcceptErrors()
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(registry: registry, isReady: isReady))
                }
            }
            .bind(host: host, port: port)
            .get()
        return AdminServer(channel: channel)
    }

    public func close() async throws {
        try await self.channel.close()
    }
}

/// Answers one admin request per `end`; keep-alive as the client asks.
final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let registry: PrometheusCollectorRegistry
    private let isReady: @Sendable () -> Bool
    private var head: HTTPRequestHead?

    init(registry: PrometheusCollectorRegistry, isReady: @escaping @Sendable () -> Bool) {
        self.registry = registry
        self.isReady = isReady
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            self.respond(context: context, to: head)
        }
    }

    /// The status, content type and body for `method` and `path`.
    static func answer(method: HTTPMethod, path: String, isReady: Bool, metrics: () -> [UInt8]) -> (HTTPResponseStatus, String, [UInt8]) {
        guard method == .GET || method == .HEAD else {
            return (.methodNotAllowed, "text/plain; charset=utf-8", Array("method not allowed\n".utf8))
        }
        let plain = "text/plain; charset=utf-8"
        switch path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? path {
        case "/metrics":
            return (.ok, "text/plain; version=0.0.4; charset=utf-8", metrics())
        case "/healthz":
            return (.ok, plain, Array("ok\n".utf8))
        case "/readyz":
            return isReady ? (.ok, plain, Array("ready\n".utf8)) : (.serviceUnavailable, plain, Array("draining\n".utf8))
        default:
            return (.notFound, plain, Array("not found (try /metrics, /healthz, /readyz)\n".utf8))
        }
    }

    private func respond(context: ChannelHandlerContext, to head: HTTPRequestHead) {
        let registry = self.registry
        let (status, contentType, body) = Self.answer(method: head.method, path: head.uri, isReady: self.isReady()) {
            registry.emitToBuffer()
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.count))
        headers.add(name: "Cache-Control", value: "no-store")
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let done = context.writeAndFlush(Self.wrapOutboundOut(.end(nil)))
        if !keepAlive {
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}

@available(*, unavailable)
extension AdminHandler: Sendable {}
