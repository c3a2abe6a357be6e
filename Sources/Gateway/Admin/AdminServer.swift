import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus

/// The admin listener (DESIGN §6, issue #14): `GET /metrics` (Prometheus text format 0.0.4),
/// `GET /healthz` (200 while the process serves), `GET /readyz` (200, or 503 once a drain has started),
/// and with the gateway's connections: `GET /` (the dashboard), `GET /connections`,
/// `GET /connections/{id}`, `POST /connections/{id}/close` and `GET /tap` (NDJSON frame events). Routing
/// is ``AdminRouter``'s. Bind it to a loopback or pod-internal address; `admin.token_file` makes the
/// dashboard, `/connections*` and `/tap` require a bearer token.
public final class AdminServer: Sendable {
    /// The listening channel.
    let channel: any Channel
    /// The bearer token (`admin.token_file`), reloaded on SIGHUP.
    let token: AdminToken
    let observation: AdminObservation?

    /// The bound address (port 0 → the chosen port).
    public var localAddress: SocketAddress? { self.channel.localAddress }

    private init(channel: any Channel, token: AdminToken, observation: AdminObservation?) {
        self.channel = channel
        self.token = token
        self.observation = observation
    }

    /// Binds `host:port` and serves `registry` and the readiness `isReady` reports.
    public static func start(
        host: String,
        port: Int,
        registry: PrometheusCollectorRegistry,
        group: any EventLoopGroup,
        isReady: @escaping @Sendable () -> Bool
    ) async throws -> AdminServer {
        try await Self.start(host: host, port: port, registry: registry, group: group, observation: nil, token: AdminToken(), isReady: isReady)
    }

    /// With the gateway's connection table and taps (`observation`) and a bearer token; accept errors are
    /// counted and logged as the gateway listeners' are when given `acceptErrors` (listener `admin`).
    static func start(
        host: String,
        port: Int,
        registry: PrometheusCollectorRegistry,
        group: any EventLoopGroup,
        observation: AdminObservation?,
        token: AdminToken,
        acceptErrors: AcceptErrorPause.Report? = nil,
        isReady: @escaping @Sendable () -> Bool
    ) async throws -> AdminServer {
        let channel = try await ServerBootstrap(group: group)
            .backingOffAfterAcceptErrors(reporting: acceptErrors)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // A tap's stream stops taking events at the high mark (its queue then drops, issue #14).
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 64 * 1024, high: 256 * 1024))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(
                        AdminHandler(registry: registry, observation: observation, token: token, isReady: isReady)
                    )
                }
            }
            .bind(host: host, port: port)
            .get()
        return AdminServer(channel: channel, token: token, observation: observation)
    }

    public func close() async throws {
        try await self.channel.close()
    }
}

/// What the admin listener reads of the running gateway (issue #14): the live connections and the taps.
struct AdminObservation: Sendable {
    let live: LiveConnectionTable
    let taps: TapHub
}
