import NIOCore
import NIOPosix
import TLSShim

/// Drain and reload (DESIGN §6, issue #6).
extension GatewayServer {
    /// How a drain ended.
    public struct DrainResult: Sendable, Equatable {
        /// Connections that finished on their own (close handshakes done) before the deadline.
        public var closed: Int
        /// Connections still open at the deadline, closed by force.
        public var forced: Int
    }

    /// True once ``drain(timeout:)`` has started: `/readyz` answers 503 from then on.
    public var isDraining: Bool { self.environment.connections.isDraining }

    /// The number of client connections open now (in their handshake or relayed).
    public var openConnections: Int { self.environment.connections.count }

    /// Graceful drain: stops accepting, fails readiness, retires the authorizers (forward-auth keeps no
    /// idle connection), sends Close 1001 to both legs of every relayed
    /// connection at a frame boundary (connections still in their handshake get it as soon as they
    /// reach the relay; upgrade requests that arrive now get 503), waits for the connections to end
    /// up to `timeout`, then closes what is left.
    public func drain(timeout: Duration) async -> DrainResult {
        let environment = self.environment
        let connections = environment.connections
        let before = connections.count
        environment.metrics.drainingChanged(true)
        // Fail readiness first, then stop accepting, then ask every connection for its Close.
        connections.markDraining()
        for channel in self.serverChannels {
            try? await channel.close()
        }
        // Authorizations in flight finish; forward-auth connections close as they become idle.
        environment.retireAuthorizers()
        connections.startDrain()
        var forced = 0
        if !(await connections.waitUntilEmpty(timeout: timeout)) {
            forced = connections.forceCloseAll()
            _ = await connections.waitUntilEmpty(timeout: .seconds(2))
        }
        let result = DrainResult(closed: max(0, before - forced), forced: forced)
        environment.metrics.drained(.closed, count: result.closed)
        environment.metrics.drained(.forced, count: result.forced)
        environment.metrics.drainingChanged(false)
        return result
    }

    /// Installs `configuration` for new connections: routes, upstreams, limits, timeouts, the access
    /// log and TLS certificates (read again from their files). Live connections keep the configuration
    /// they were admitted under. The listeners' addresses, names and TLS on/off, and the admin
    /// address, cannot change without a restart: such a configuration is refused, as is one whose
    /// certificates do not load. On any error the old configuration stays in force.
    ///
    /// Loading certificates is blocking file I/O; it runs on NIO's thread pool, off the event loops.
    public func reload(configuration: GatewayConfiguration) async throws {
        let old = self.environment
        if let difference = old.configuration.bindingDifference(from: configuration) {
            old.metrics.reloaded(.refused)
            throw GatewayError("reload refused: \(difference)")
        }
        let new: GatewayEnvironment
        do {
            // Live connections stay counted against the connection caps unless the caps change (then the
            // new caps count from zero).
            let sameCaps =
                old.configuration.connectionLimits == configuration.connectionLimits
                && old.configuration.listeners.map(\.maxConnections) == configuration.listeners.map(\.maxConnections)
            new = try await NIOThreadPool.singleton.runIfActive {
                try GatewayEnvironment(
                    configuration,
                    metrics: old.metrics,
                    connections: old.connections,
                    admission: sameCaps ? old.admission : nil,
                    compressionMemory: old.configuration.limits.compressionMemory == configuration.limits.compressionMemory
                        ? old.compressionMemory : nil
                )
            }
        } catch {
            old.metrics.reloaded(.refused)
            throw error
        }
        self.currentEnvironment.withLockedValue { $0 = new }
        // The old authorizers serve only connections admitted before (their requests in flight finish);
        // their forward-auth connections close as they become idle instead of after idle_timeout.
        old.retireAuthorizers()
        old.metrics.reloaded(.applied)
    }

    /// The configuration new connections get.
    public var configuration: GatewayConfiguration { self.environment.configuration }

    /// What each TLS listener's handshakes present now, by listener name (the default identity first,
    /// then the virtual hosts; ``TLSServerContext/certificateSummaries``): a reload logs it before and
    /// after (RELIABILITY G-03).
    public var listenerCertificates: [String: [String]] {
        self.environment.tls.listeners.mapValues { $0.current.certificateSummaries }
    }
}
