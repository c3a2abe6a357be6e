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
    private let nextConnectionID = NIOLockedValueBox<UInt64>(0)

    /// Compiles the configuration; loading certificates is blocking disk I/O, so call it off the event
    /// loops.
    init(_ configuration: GatewayConfiguration, metrics: GatewayMetrics = GatewayMetrics(), clock: any GatewayClock = SystemGatewayClock()) throws {
        self.configuration = configuration
        self.routes = RouteTable(configuration.routes)
        self.pools = configuration.routes.map { UpstreamPool($0.upstreams) }
        self.accessLog = AccessLog(configuration.accessLog)
        self.tls = try GatewayTLS(configuration)
        self.metrics = metrics
        self.originPolicies = try configuration.compiledOriginPolicies()
        self.admission = ConnectionAdmission(configuration, clock: clock)
    }

    var limits: GatewayConfiguration.Limits { self.configuration.limits }
    var timeouts: GatewayConfiguration.Timeouts { self.configuration.timeouts }

    func makeConnectionID() -> UInt64 {
        self.nextConnectionID.withLockedValue {
            $0 += 1
            return $0
        }
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
