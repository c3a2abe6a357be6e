import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import TLSShim

/// A running gateway: one server channel per listener on a `MultiThreadedEventLoopGroup`; each accepted
/// connection's upstream channel is created on the same event loop (DESIGN §3).
public final class GatewayServer: Sendable {
    let serverChannels: [any Channel]
    /// The compiled configuration new connections use; a reload replaces it (`GatewayServer+Lifecycle`).
    let currentEnvironment: NIOLockedValueBox<GatewayEnvironment>
    var environment: GatewayEnvironment { self.currentEnvironment.withLockedValue { $0 } }

    /// The addresses the listeners are bound to, in configuration order (port 0 → the chosen port).
    public var localAddresses: [SocketAddress] { self.serverChannels.compactMap(\.localAddress) }

    /// Binds every listener and starts accepting. Metrics go to `metricsFactory` (by default the one
    /// `MetricsSystem` was bootstrapped with); accept errors are logged to `logger`.
    public static func start(
        configuration: GatewayConfiguration,
        group: any EventLoopGroup,
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        logger: Logger = Logger(label: "wsgate")
    ) async throws -> GatewayServer {
        let environment = try GatewayEnvironment(configuration, metrics: GatewayMetrics(factory: metricsFactory))
        let current = NIOLockedValueBox(environment)
        var channels: [any Channel] = []
        do {
            for listener in configuration.listeners {
                channels.append(try await Self.bind(listener, environment: current, group: group, logger: logger))
            }
        } catch {
            for channel in channels { try? await channel.close() }
            throw error
        }
        return GatewayServer(serverChannels: channels, currentEnvironment: current)
    }

    private init(serverChannels: [any Channel], currentEnvironment: NIOLockedValueBox<GatewayEnvironment>) {
        self.serverChannels = serverChannels
        self.currentEnvironment = currentEnvironment
    }

    private static func bind(
        _ listener: GatewayConfiguration.Listener,
        environment current: NIOLockedValueBox<GatewayEnvironment>,
        group: any EventLoopGroup,
        logger: Logger
    ) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .backingOffAfterAcceptErrors(reporting: .init(listener: listener.name, metrics: current.withLockedValue { $0.metrics }, logger: logger))
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // The accepted socket's options, set on it directly: the bootstrap's child options
                    // are applied through a chain of futures per option (issue #15).
                    let options = channel.syncOptions
                    try options?.setOption(.tcpOption(.tcp_nodelay), value: 1)
                    try options?.setOption(.recvAllocator, value: RelayResources.receiveAllocator)
                    // The configuration in force when the connection is accepted (a reload replaces it;
                    // connections keep the one they were accepted under).
                    let environment = current.withLockedValue { $0 }
                    // This listener's edge settings as last reloaded (names cannot change on reload).
                    let edge = environment.configuration.listeners.first { $0.name == listener.name }?.edge ?? listener.edge
                    // PROXY protocol (issue #11): only a trusted proxy may name the client; anyone else
                    // is closed at accept, unread.
                    let proxyProtocol = edge.proxyProtocol
                    if proxyProtocol != .off && !environment.trustedProxies.contains(channel.remoteAddress?.ipAddress) {
                        environment.metrics.proxyProtocolRefused(listener: listener.name, .untrustedPeer)
                        return try channel.pipeline.syncOperations.addHandler(CloseAtAcceptHandler())
                    }
                    // Connection caps (issue #5 C): refused connections are closed at accept, unread.
                    // With `client_address: chain`, a trusted proxy's connections are counted per IP by
                    // the client address its X-Forwarded-For names, once the head is read.
                    let chainAddress =
                        proxyProtocol == .off && environment.configuration.clientAddress == .chain
                        && environment.trustedProxies.contains(channel.remoteAddress?.ipAddress)
                    if environment.admitAtAccept(channel, listener: listener.name, countAddress: proxyProtocol == .off && !chainAddress) == false {
                        return try channel.pipeline.syncOperations.addHandler(CloseAtAcceptHandler())
                    }
                    let limits = environment.limits
                    let tls = environment.tls.listeners[listener.name]
                    let handshakeTimeout = TimeAmount(environment.timeouts.tlsHandshake)
                    try channel.syncOptions?.setOption(
                        .writeBufferWaterMark,
                        value: .init(low: limits.bufferLowWatermark, high: limits.bufferHighWatermark)
                    )
                    environment.connections.register(channel)
                    environment.metrics.connectionAccepted(listener: listener.name)
                    let record = ConnectionRecord(
                        id: environment.makeConnectionID(),
                        clientAddress: channel.remoteAddress?.ipAddress,
                        listener: listener.name
                    )
                    let pipeline = channel.pipeline.syncOperations
                    if proxyProtocol != .off {
                        try pipeline.addHandler(
                            Self.proxyProtocolHandler(proxyProtocol, channel: channel, listener: listener.name, environment: environment)
                        )
                    }
                    if let tls {
                        try pipeline.addHandler(
                            TLSHandler.server(
                                provider: tls,
                                configuration: .init {
                                    $0.handshakeTimeout = handshakeTimeout
                                    $0.plaintextHTTPResponse = HTTPResponse.plaintextHTTPOnTLSPort
                                }
                            )
                        )
                        // RFC 8441 on `tls.http2: on` (issue #16): ALPN `h2` switches to HTTP/2 streams.
                        let current = environment.configuration.listeners.first { $0.name == listener.name } ?? listener
                        try HTTP2ALPNSwitch.add(
                            to: pipeline,
                            listener: current,
                            environment: environment,
                            admitsClientAddressAtHead: chainAddress,
                            countsSocketAddress: proxyProtocol == .off && !chainAddress
                        )
                    }
                    try pipeline.addHandler(
                        ClientConnectionHandler(
                            environment: environment,
                            record: record,
                            clientUsedTLS: tls != nil,
                            requireSNIHostMatch: edge.requireSNIHostMatch,
                            admitsClientAddressAtHead: chainAddress
                        )
                    )
                }
            }
            .bind(host: listener.host, port: listener.port)
            .get()
    }

    /// The PROXY protocol reader of a connection from a trusted proxy: the address it carries passes the
    /// per-IP cap (the socket's own peer, the proxy, when it carries none).
    private static func proxyProtocolHandler(
        _ mode: ProxyProtocolMode,
        channel: any Channel,
        listener: String,
        environment: GatewayEnvironment
    ) -> ProxyProtocolHandler {
        ProxyProtocolHandler(mode: mode, deadline: TimeAmount(environment.timeouts.proxyHeader)) { header in
            guard let ip = header.source?.description ?? channel.remoteAddress?.ipAddress else { return true }
            return environment.admitProxiedAddress(ip, channel: channel, listener: listener)
        } rejected: { reason in
            environment.metrics.proxyProtocolRefused(listener: listener, reason)
        }
    }

    /// Stops accepting and retires the authorizers (forward-auth's idle connections close; busy ones once
    /// answered). Live connections are not touched (``drain(timeout:)`` ends them).
    public func close() async throws {
        self.environment.retireAuthorizers()
        for channel in self.serverChannels {
            try await channel.close()
        }
    }
}

/// A gateway start-up error with a message for the operator.
public struct GatewayError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
