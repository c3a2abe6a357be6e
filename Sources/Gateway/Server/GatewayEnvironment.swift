import CoreMetrics
import NIOConcurrencyHelpers
import NIOCore

/// What every connection of a running gateway shares, compiled once from the configuration
/// (STYLE P8): routes, upstream pools, limits, timeouts, the access log.
final class GatewayEnvironment: Sendable {
    let configuration: GatewayConfiguration
    let routes: RouteTable
    let pools: [UpstreamPool]
    let accessLog: AccessLog
    let tls: GatewayTLS
    let metrics: GatewayMetrics
    /// Policies (issue #5): compiled origin policies by route index, and connection admission.
    let originPolicies: [CompiledOriginPolicy]
    let admission: ConnectionAdmission
    /// The live connections, for drain; shared across reloads (issue #6).
    let connections: ConnectionRegistry
    /// Things an operator must read at start and at each reload (a group-readable private key).
    let warnings: [String]
    /// `limits.compression_memory` (issue #10 item 7); kept across reloads that do not change it.
    let compressionMemory: CompressionMemoryBudget
    /// `trusted_proxies`, compiled (issue #11).
    let trustedProxies: TrustedProxies
    /// The authorization stage (issue #13): each route's authorizers, by route index, in the order they
    /// run; empty for a route without `auth`. Rebuilt with the environment on reload.
    let authorizers: [[any UpgradeAuthorizer]]

    /// Compiles the configuration; loading certificates is blocking disk I/O, so call it off the event
    /// loops. A reload passes the running gateway's `connections` and, when the connection limits did
    /// not change, its `admission` (so that live connections stay counted).
    init(
        _ configuration: GatewayConfiguration,
        metrics: GatewayMetrics = GatewayMetrics(),
        clock: any GatewayClock = SystemGatewayClock(),
        connections: ConnectionRegistry = ConnectionRegistry(),
        admission: ConnectionAdmission? = nil,
        compressionMemory: CompressionMemoryBudget? = nil,
        authorizers: [[any UpgradeAuthorizer]]? = nil
    ) throws {
        self.configuration = configuration
        self.routes = RouteTable(configuration.routes)
        self.pools = configuration.routes.map { UpstreamPool($0.upstreams) }
        self.accessLog = try AccessLog(configuration.accessLog)
        self.warnings = try PrivateKeyFiles.check(configuration)
        self.tls = try GatewayTLS(configuration)
        self.metrics = metrics
        self.originPolicies = try configuration.compiledOriginPolicies()
        self.admission = admission ?? ConnectionAdmission(configuration, clock: clock)
        self.connections = connections
        self.compressionMemory =
            compressionMemory ?? CompressionMemoryBudget(limit: configuration.limits.compressionMemory ?? CompressionMemoryBudget.defaultLimit)
        self.trustedProxies = configuration.compiledTrustedProxies
        self.authorizers = try authorizers ?? configuration.routes.map { route in try RouteAuthorizers.make(for: route, metrics: metrics) }
    }

    /// This environment no longer takes new connections (a reload replaced it) or the gateway stops:
    /// the authorizers release what they keep between requests once their requests in flight are done
    /// (forward-auth's kept-alive connections, ``ForwardAuthPool/retire()``).
    func retireAuthorizers() {
        for authorizer in self.authorizers.joined() { authorizer.retire() }
    }

    var limits: GatewayConfiguration.Limits { self.configuration.limits }
    var timeouts: GatewayConfiguration.Timeouts { self.configuration.timeouts }

    /// Unique across reloads: the counter lives in the registry the reloaded environments share.
    func makeConnectionID() -> UInt64 {
        self.connections.makeConnectionID()
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

extension GatewayConfiguration.Upstream {
    var url: String {
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        return "\(self.scheme.rawValue)://\(host):\(self.port)\(self.path ?? "")"
    }
}
