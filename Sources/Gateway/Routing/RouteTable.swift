/// Routes compiled once from the configuration: a request's host and path pick one route
/// (DESIGN §1.4: longest match on host — exact, then `*.suffix` — and on path prefix; none → 404).
struct RouteTable: Sendable {
    struct Entry: Sendable {
        var index: Int
        var route: GatewayConfiguration.Route
    }

    private enum HostMatch: Comparable {
        case any
        case wildcard(suffixLength: Int)
        case exact
    }

    private let entries: [Entry]

    init(_ routes: [GatewayConfiguration.Route]) {
        self.entries = routes.enumerated().map { Entry(index: $0.offset, route: $0.element) }
    }

    /// The best route for `host` (without port, any case) and `path` (the request target's path), or nil.
    /// Host specificity wins over path length; among equal hosts the longest path prefix wins; among
    /// equals the first in the configuration.
    func match(host: String, path: String) -> Entry? {
        let host = host.lowercased()
        var best: (entry: Entry, host: HostMatch, pathLength: Int)?
        for entry in self.entries {
            guard let hostMatch = Self.matchHost(host, patterns: entry.route.hosts),
                Self.pathMatches(path, prefix: entry.route.pathPrefix)
            else { continue }
            let pathLength = entry.route.pathPrefix.utf8.count
            if let current = best, (current.host, current.pathLength) >= (hostMatch, pathLength) { continue }
            best = (entry, hostMatch, pathLength)
        }
        return best?.entry
    }

    private static func matchHost(_ host: String, patterns: [String]) -> HostMatch? {
        guard !patterns.isEmpty else { return .any }
        var best: HostMatch?
        for pattern in patterns {
            let pattern = pattern.lowercased()
            let match: HostMatch?
            if pattern.hasPrefix("*.") {
                let suffix = pattern.dropFirst(1)  // ".example.com": at least one label before it
                match = host.hasSuffix(suffix) && host.utf8.count > suffix.utf8.count ? .wildcard(suffixLength: suffix.utf8.count) : nil
            } else {
                match = host == pattern ? .exact : nil
            }
            if let match, best.map({ match > $0 }) ?? true { best = match }
        }
        return best
    }

    /// Segment-wise prefix: `/chat` matches `/chat`, `/chat/` and `/chat/room`, not `/chatter`.
    static func pathMatches(_ path: String, prefix: String) -> Bool {
        if prefix == "/" || prefix.isEmpty { return true }
        guard path.hasPrefix(prefix) else { return false }
        if prefix.hasSuffix("/") || path.utf8.count == prefix.utf8.count { return true }
        return path.utf8[path.utf8.index(path.utf8.startIndex, offsetBy: prefix.utf8.count)] == UInt8(ascii: "/")
    }
}
