import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// The built-in demo upstream: a small WebSocket server (RFC 6455, no extensions) with two endpoints.
///
/// - `/echo`: a cut-through echo of every frame (``DemoEchoHandler``); a benchmark and Autobahn-style
///   upstream.
/// - `/chat`: a chat room with presence (``DemoChatRoom``, ``DemoChatHandler``); `?name=` picks the
///   member's name.
///
/// `wsgate` with no arguments puts the gateway in front of it; `wsgate echo --port N` runs it alone.
/// Each connection starts as HTTP/1.1 (``DemoUpgradeHandler``) and becomes a WebSocket after the 101.
///
/// ```swift
/// let group = MultiThreadedEventLoopGroup.singleton
/// let upstream = try await DemoUpstream.start(host: "127.0.0.1", port: 0, group: group)
/// print(upstream.port)
/// try await upstream.close()
/// ```
public final class DemoUpstream: Sendable {
    /// Outbound buffer watermarks per connection: above 256 KiB (DESIGN §7's per-direction high
    /// watermark) the echo stops reading until the buffer drains below 64 KiB.
    static let writeBufferWaterMark = ChannelOptions.Types.WriteBufferWaterMark(low: 64 * 1024, high: 256 * 1024)

    /// The listening channel.
    let listener: any Channel
    private let connections: NIOLockedValueBox<[ObjectIdentifier: any Channel]>
    /// The `/chat` room.
    let room: DemoChatRoom

    /// The port the listener is bound to (the ephemeral port chosen by the system when started with 0).
    public let port: Int

    private init(
        listener: any Channel,
        connections: NIOLockedValueBox<[ObjectIdentifier: any Channel]>,
        room: DemoChatRoom
    ) {
        self.listener = listener
        self.connections = connections
        self.room = room
        self.port = listener.localAddress?.port ?? 0
    }

    /// Binds the demo upstream to `host`:`port` (0 for an ephemeral port) on `group` and starts accepting.
    /// Accept errors pause the listener and are counted in `metricsFactory`
    /// (`wsgate_accept_errors_total{listener="demo"}`) and logged to `logger`, as the gateway's are.
    public static func start(
        host: String,
        port: Int,
        group: any EventLoopGroup,
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        logger: Logger = Logger(label: "wsgate")
    ) async throws -> DemoUpstream {
        let room = DemoChatRoom()
        let connections = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])
        let acceptErrors = AcceptErrorPause.Report(
            listener: AcceptErrorPause.demoListener,
            metrics: GatewayMetrics(factory: metricsFactory),
            logger: logger
        )
        let listener = try await ServerBootstrap(group: group)
            .backingOffAfterAcceptErrors(reporting: acceptErrors)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: Self.writeBufferWaterMark)
            .childChannelInitializer { channel in
                let id = ObjectIdentifier(channel)
                connections.withLockedValue { $0[id] = channel }
                channel.closeFuture.whenComplete { _ in
                    _ = connections.withLockedValue { $0.removeValue(forKey: id) }
                }
                return channel.eventLoop.makeCompletedFuture {
                    let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes))
                    let encoder = HTTPResponseEncoder()
                    let upgrader = DemoUpgradeHandler(room: room, decoder: decoder, encoder: encoder)
                    try channel.pipeline.syncOperations.addHandlers([decoder, encoder, upgrader])
                }
            }
            .bind(host: host, port: port)
            .get()
        return DemoUpstream(listener: listener, connections: connections, room: room)
    }

    /// Stops accepting and closes every open connection (without a close handshake).
    public func close() async throws {
        try await self.listener.close()
        let open = self.connections.withLockedValue { Array($0.values) }
        for channel in open {
            try? await channel.close()
        }
    }
}
