/// The authorizers of one route, in the order they run: `jwt` first (a local check, cheap and
/// deciding most refusals), then `forward` (a network call). Built by ``GatewayEnvironment`` when a
/// configuration is installed, so a reload (SIGHUP) rebuilds them.
enum RouteAuthorizers {
    static func make(for route: GatewayConfiguration.Route, metrics: GatewayMetrics) throws -> [any UpgradeAuthorizer] {
        guard let auth = route.auth else { return [] }
        // A configuration built in code skips validation: an empty `auth` must not allow everything here
        // either (a start or reload with it fails).
        guard !auth.isEmpty else { throw GatewayError(GatewayConfiguration.RouteAuthentication.emptyMessage(route: route.label)) }
        var authorizers: [any UpgradeAuthorizer] = []
        if let jwt = auth.jwt {
            do {
                authorizers.append(try JWTAuthorizer(jwt, route: route.label, metrics: metrics))
            } catch {
                throw GatewayError("route \(route.label): auth.jwt: \(error)")
            }
        }
        if let forward = auth.forward {
            authorizers.append(ForwardAuthorizer(forward, route: route.label, metrics: metrics))
        }
        return authorizers
    }
}
