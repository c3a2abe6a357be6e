import NIOCore
import NIOHTTP1

/// Forward-auth (issue #13 §3, `routes[].auth.forward`).
///
/// Placeholder of the authorization-stage commit: refuses every upgrade with 503 until the client lands.
struct ForwardAuthorizer: UpgradeAuthorizer {
    let configuration: GatewayConfiguration.ForwardAuthentication
    let route: String
    let metrics: GatewayMetrics

    init(_ configuration: GatewayConfiguration.ForwardAuthentication, route: String, metrics: GatewayMetrics) {
        self.configuration = configuration
        self.route = route
        self.metrics = metrics
    }

    var deadline: TimeAmount { TimeAmount(self.configuration.timeout) }

    func authorize(
        _ request: ClientUpgradeRequest,
        head: HTTPRequestHead,
        peer: IPAddress?,
        clientUsedTLS: Bool,
        on eventLoop: any EventLoop
    ) -> EventLoopFuture<AuthorizationOutcome> {
        self.metrics.authDecided(route: self.route, method: "forward", outcome: "unavailable")
        return eventLoop.makeSucceededFuture(.deny(HandshakeRejection(503, "forward-auth is not available", reason: "auth-forward-unavailable")))
    }
}
