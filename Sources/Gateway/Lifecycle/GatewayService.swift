import Logging
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import UnixSignals

/// The gateway as a swift-service-lifecycle `Service` (DESIGN §6): run it in a `ServiceGroup` whose
/// graceful-shutdown signals are SIGTERM and SIGINT.
///
/// - Start: binds the listeners and the admin listener (`/metrics`, `/healthz`, `/readyz`), with
///   metrics in its own Prometheus registry.
/// - SIGHUP: reads the configuration file again and installs it for new connections
///   (``GatewayServer/reload(configuration:)``); a configuration that does not parse, does not
///   validate, changes a bound address or has certificates that do not load is refused with a logged
///   error, and the running one stays.
/// - Graceful shutdown: ``GatewayServer/drain(timeout:)`` with `timeouts.drain`; `run()` returns when
///   every connection has ended or was closed at the deadline, so the process exits 0.
public struct GatewayService: Service {
    /// What the service reports once it serves (for the CLI's banner and for tests).
    public struct Started: Sendable {
        public var server: GatewayServer
        public var admin: AdminServer?
        public var registry: PrometheusCollectorRegistry
    }

    private let configuration: GatewayConfiguration
    private let configurationPath: String?
    private let group: any EventLoopGroup
    private let logger: Logger
    private let onStarted: @Sendable (Started) -> Void
    private let registry: PrometheusCollectorRegistry

    /// - Parameters:
    ///   - configuration: The configuration to start with.
    ///   - configurationPath: The file SIGHUP reads again; `nil` ignores SIGHUP (it is still trapped,
    ///     so it does not kill the process).
    ///   - registry: Where the metrics go (`/metrics`); the embedded default shares it with its demo
    ///     upstream, whose accept errors are counted there too.
    ///   - onStarted: Called once the listeners are bound.
    public init(
        configuration: GatewayConfiguration,
        configurationPath: String?,
        group: any EventLoopGroup,
        logger: Logger,
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        onStarted: @escaping @Sendable (Started) -> Void = { _ in }
    ) {
        self.registry = registry
        self.configuration = configuration
        self.configurationPath = configurationPath
        self.group = group
        self.logger = logger
        self.onStarted = onStarted
    }

    /// The metrics factory the service uses: Prometheus, with the connect-latency buckets.
    public static func metricsFactory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.valueHistogramBuckets[GatewayMetrics.upstreamConnectSecondsName] = GatewayMetrics.connectSecondsBuckets
        return factory
    }

    public func run() async throws {
        // Trap SIGHUP before anything else: its default action would end the process.
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let registry = self.registry
        let server = try await GatewayServer.start(
            configuration: self.configuration,
            group: self.group,
            metricsFactory: Self.metricsFactory(registry: registry),
            logger: self.logger
        )
        let admin: AdminServer?
        do {
            admin = try await self.startAdmin(server: server, registry: registry)
        } catch {
            try? await server.close()
            throw error
        }
        for warning in server.environment.warnings { self.logger.warning("\(warning)") }
        self.onStarted(Started(server: server, admin: admin, registry: registry))

        var cancelled = false
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                for await _ in hangups {
                    await self.reload(server, admin: admin)
                }
            }
            do {
                try await gracefulShutdown()
            } catch {
                cancelled = true
            }
            tasks.cancelAll()
        }

        let timeout = cancelled ? Duration.zero : server.configuration.timeouts.drain
        self.logger.notice(
            "draining",
            metadata: ["connections": "\(server.openConnections)", "deadline": "\(timeout)"]
        )
        let result = await server.drain(timeout: timeout)
        self.logger.notice("drained", metadata: ["closed": "\(result.closed)", "forced": "\(result.forced)"])
        try? await admin?.close()
    }

    private func startAdmin(server: GatewayServer, registry: PrometheusCollectorRegistry) async throws -> AdminServer? {
        let settings = self.configuration.admin
        guard settings.enabled else { return nil }
        // Issue #14: the bearer token (a file that cannot be read stops the start) and the tap settings.
        let token = AdminToken()
        if let path = settings.tokenFile {
            token.set(try await NIOThreadPool.singleton.runIfActive { try AdminToken.load(path: path) })
        } else if !AdminToken.isLoopback(settings.host) {
            self.logger.warning(
                "the admin listener is bound to a non-loopback address without admin.token_file: anyone who reaches it can list and close connections and tap their frames",
                metadata: ["address": "\(settings.host):\(settings.port)"]
            )
        }
        let connections = server.environment.connections
        connections.taps.configure(settings.tap)
        do {
            return try await AdminServer.start(
                host: settings.host,
                port: settings.port,
                registry: registry,
                group: self.group,
                observation: AdminObservation(live: connections.live, taps: connections.taps),
                token: token,
                acceptErrors: .init(listener: AcceptErrorPause.adminListener, metrics: server.environment.metrics, logger: self.logger),
                isReady: { !server.isDraining }
            )
        } catch {
            throw GatewayError("admin listener \(settings.host):\(settings.port): \(error)")
        }
    }

    /// SIGHUP (issue #14): the tap settings and the bearer token are read again. A token file that cannot
    /// be read keeps the token in force (logged); a removed `token_file` key removes the guard.
    private func reloadAdmin(_ settings: GatewayConfiguration.Admin, admin: AdminServer?, server: GatewayServer) async {
        server.environment.connections.taps.configure(settings.tap)
        guard let admin else { return }
        guard let path = settings.tokenFile else {
            if admin.token.value != nil { self.logger.warning("admin.token_file removed: the admin endpoints are no longer guarded") }
            admin.token.set(nil)
            return
        }
        do {
            admin.token.set(try await NIOThreadPool.singleton.runIfActive { try AdminToken.load(path: path) })
            self.logger.notice("admin token reloaded", metadata: ["path": "\(path)"])
        } catch {
            self.logger.error("admin token not reloaded: the previous token stays in force", metadata: ["error": "\(error)"])
        }
    }

    /// SIGHUP: read the file again and install it; on any error keep the running configuration.
    private func reload(_ server: GatewayServer, admin: AdminServer?) async {
        guard let path = self.configurationPath else {
            self.logger.warning("SIGHUP ignored: the gateway was not started from a configuration file")
            return
        }
        do {
            let configuration = try await NIOThreadPool.singleton.runIfActive {
                try GatewayConfiguration.load(path: path)
            }
            let certificatesBefore = server.listenerCertificates
            try await server.reload(configuration: configuration)
            await self.reloadAdmin(configuration.admin, admin: admin, server: server)
            for warning in server.environment.warnings { self.logger.warning("\(warning)") }
            for (listener, new) in server.listenerCertificates.sorted(by: { $0.key < $1.key }) {
                let old = certificatesBefore[listener] ?? []
                self.logger.notice(
                    old == new ? "certificates unchanged" : "certificates reloaded",
                    metadata: ["listener": "\(listener)", "old": "\(old)", "new": "\(new)"]
                )
            }
            self.logger.notice(
                "configuration reloaded",
                metadata: [
                    "path": "\(path)", "listeners": "\(configuration.listeners.count)",
                    "routes": "\(configuration.routes.count)",
                ]
            )
        } catch let error as ConfigurationError {
            server.environment.metrics.reloaded(.refused)
            self.logger.error(
                "reload refused: the running configuration stays in force",
                metadata: ["path": "\(path)", "error": "\(error)"]
            )
        } catch {
            self.logger.error(
                "reload refused: the running configuration stays in force",
                metadata: ["path": "\(path)", "error": "\(error)"]
            )
        }
    }
}
