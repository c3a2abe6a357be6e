import NIOCore
import NIOPosix
import TLSShim

/// Opens the upstream leg of a connection. The gateway uses ``BootstrapUpstreamConnector``; tests inject
/// one that hands out `EmbeddedChannel`s on the client channel's loop, so the whole upgrade runs in
/// memory with no socket.
protocol UpstreamConnector: Sendable {
    /// Connects to `host:port` on `eventLoop` (the client channel's: DESIGN §3, the relay needs both
    /// legs on one loop). `initializer` runs on the new channel before it connects. The future fails
    /// with `ChannelError.connectTimeout` when the connect deadline passes (504), with another error
    /// when the connection is refused (502).
    func connect(
        host: String,
        port: Int,
        on eventLoop: any EventLoop,
        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<any Channel>
}

/// Connects with NIO's `ClientBootstrap`: `TCP_NODELAY`, the configured write watermarks and the
/// relay's receive allocator, under the connect deadline (DESIGN §7: 5 s).
struct BootstrapUpstreamConnector: UpstreamConnector {
    var connectTimeout: TimeAmount
    var writeBufferWaterMark: ChannelOptions.Types.WriteBufferWaterMark

    init(limits: GatewayConfiguration.Limits, timeouts: GatewayConfiguration.Timeouts) {
        self.connectTimeout = TimeAmount(timeouts.upstreamConnect)
        self.writeBufferWaterMark = .init(low: limits.bufferLowWatermark, high: limits.bufferHighWatermark)
    }

    func connect(
        host: String,
        port: Int,
        on eventLoop: any EventLoop,
        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<any Channel> {
        // `TCP_NODELAY` is the bootstrap's default. The other options are set in the initializer, on the
        // channel directly: the bootstrap applies each of its options through a chain of futures (issue
        // #15: about a tenth of a connection's allocations for three options).
        let writeBufferWaterMark = self.writeBufferWaterMark
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(self.connectTimeout)
            .channelInitializer { channel in
                do {
                    let options = channel.syncOptions
                    try options?.setOption(.writeBufferWaterMark, value: writeBufferWaterMark)
                    try options?.setOption(.recvAllocator, value: RelayResources.receiveAllocator)
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
                return initializer(channel)
            }
        // An IP literal needs no resolution: NIO's `connect(host:port:)` runs getaddrinfo and Happy
        // Eyeballs for it anyway, about a third of the CPU of each proxied connection.
        if let address = try? SocketAddress(ipAddress: host, port: port) {
            return bootstrap.connect(to: address)
        }
        return bootstrap.connect(host: host, port: port)
    }
}

/// The upstream channel's handlers for the HTTP handshake (DESIGN §1.6–1.7).
enum UpstreamHandshakePipeline {
    /// Adds TLS toward a `wss://` upstream (when `tls` is given) and `leg`, the ``UpstreamLegHandler`` that
    /// completes the upgrade's answer and later relays: the pipeline's last change.
    static func install(
        on channel: any Channel,
        tls: (context: TLSClientContext, serverName: String, handshakeTimeout: TimeAmount)?,
        leg: UpstreamLegHandler
    ) throws {
        let pipeline = channel.pipeline.syncOperations
        if let tls {
            try pipeline.addHandler(
                TLSHandler.client(
                    context: tls.context,
                    serverName: tls.serverName,
                    configuration: .init { $0.handshakeTimeout = tls.handshakeTimeout }
                )
            )
        }
        try pipeline.addHandler(leg)
    }

    /// As above, with a new ``UpstreamLegHandler`` that completes `answer`.
    static func install(
        on channel: any Channel,
        tls: (context: TLSClientContext, serverName: String, handshakeTimeout: TimeAmount)?,
        answer: EventLoopPromise<UpstreamResponse>
    ) throws {
        try Self.install(on: channel, tls: tls, leg: UpstreamLegHandler(promise: answer))
    }
}
