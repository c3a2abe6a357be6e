import TLSShim

/// TLS contexts compiled from the configuration, once, off the event loop (STYLE P8): one server
/// context provider per TLS listener, one client context per route with `wss://` members.
///
/// Upstream TLS is per route: every `wss://` member of a route shares the route's client context
/// (``GatewayConfiguration/Route/upstreamTLS``: verification, trust roots, mTLS identity), and each
/// member sends SNI for, and is verified against, its own host unless the route sets `server_name`
/// (``serverName(for:of:)``).
struct GatewayTLS: Sendable {
    var listeners: [String: TLSServerContextProvider] = [:]
    var routes: [Int: TLSClientContext] = [:]

    init(_ configuration: GatewayConfiguration) throws {
        for listener in configuration.listeners {
            guard var tls = listener.tls else { continue }
            // Client certificates (issue #13): the CA files are checked first, so the error names the key.
            for (path, authentication) in tls.clientAuthenticationSettings {
                if let problem = authentication.caFileProblem() {
                    throw GatewayError("listener \(listener.name): \(path).ca: cannot read the CA file \(problem)")
                }
            }
            // Sessions never resume across listeners (the session ID context includes the name).
            tls.sessionContextScope = "listener:\(listener.name)"
            do {
                self.listeners[listener.name] = TLSServerContextProvider(try TLSServerContext(configuration: tls))
            } catch {
                throw GatewayError("listener \(listener.name): cannot load its TLS certificates: \(error)")
            }
        }
        for (index, route) in configuration.routes.enumerated() {
            guard let tls = Self.upstreamConfiguration(of: route) else { continue }
            do {
                self.routes[index] = try TLSClientContext(configuration: tls)
            } catch {
                throw GatewayError("route \(route.pathPrefix): cannot set up TLS toward its upstreams: \(error)")
            }
        }
    }

    /// The client configuration of a route's `wss://` members; `nil` when it has none.
    static func upstreamConfiguration(of route: GatewayConfiguration.Route) -> TLSClientConfiguration? {
        guard route.upstreams.contains(where: { $0.scheme == .wss }) else { return nil }
        return (route.upstreamTLS ?? GatewayConfiguration.UpstreamTLS()).configuration
    }

    /// The name a `wss://` member is sent in SNI and verified against: the route's `server_name`, or
    /// else the member's own host.
    static func serverName(for upstream: GatewayConfiguration.Upstream, of route: GatewayConfiguration.Route) -> String {
        route.upstreamTLS?.serverName ?? upstream.host
    }
}

extension TLSError {
    /// The text a client or an operator reads: the class and OpenSSL's reason.
    var summary: String { "\(self.code): \(self.reason)" }
}
