import Foundation
import NIOCore
import NIOHTTP1
import TLSShim

/// The authorization stage of an upgrade (issue #13 §2–3): after every check of the request head and
/// before the upstream is contacted, a route with `auth` runs its ``UpgradeAuthorizer``s in order
/// (`jwt`, then `forward`), stopping at the first refusal. Their grants are merged and applied to the
/// upstream request (``UpstreamHandshake/requestHead(for:upstream:peer:peerIsTrusted:clientUsedTLS:clientCertificate:grant:)``).
/// A route without `auth` skips the stage entirely.
enum AuthorizationOutcome: Sendable {
    /// Go on to the upstream, with these changes to its request.
    case allow(AuthorizationGrant)
    /// Answer the client with this rejection; the upstream is never contacted.
    case deny(HandshakeRejection)
}

/// What an authorizer that allowed the upgrade changes in the upstream request, and until when.
struct AuthorizationGrant: Sendable, Equatable {
    /// Added to the upstream request; any client-sent header of the same name is removed first, so
    /// only the authorizer vouches for these (claims as headers, forward-auth's `copy_headers`).
    var addHeaders: [(name: String, value: String)] = []
    /// Header names stripped from the forwarded request (a credential the upstream must not see).
    var removeHeaders: [String] = []
    /// Query parameter names stripped from the forwarded target (a token in the query string).
    var removeQueryParameters: [String] = []
    /// Offered subprotocol entries stripped from the forwarded offer (a token carried as a subprotocol).
    var removeSubprotocols: [String] = []
    /// Wall-clock seconds since 1970 when the credential expires (JWT `exp`), for the relay's 1008 close.
    var expiresAt: Int64?

    init(
        addHeaders: [(name: String, value: String)] = [],
        removeHeaders: [String] = [],
        removeQueryParameters: [String] = [],
        removeSubprotocols: [String] = [],
        expiresAt: Int64? = nil
    ) {
        self.addHeaders = addHeaders
        self.removeHeaders = removeHeaders
        self.removeQueryParameters = removeQueryParameters
        self.removeSubprotocols = removeSubprotocols
        self.expiresAt = expiresAt
    }

    /// Nothing to change.
    static let none = AuthorizationGrant()

    /// Adds `other`'s changes after this one's; the earlier expiry wins.
    mutating func merge(_ other: AuthorizationGrant) {
        self.addHeaders.append(contentsOf: other.addHeaders)
        self.removeHeaders.append(contentsOf: other.removeHeaders)
        self.removeQueryParameters.append(contentsOf: other.removeQueryParameters)
        self.removeSubprotocols.append(contentsOf: other.removeSubprotocols)
        switch (self.expiresAt, other.expiresAt) {
        case (let mine?, let theirs?): self.expiresAt = min(mine, theirs)
        case (nil, let theirs): self.expiresAt = theirs
        case (_?, nil): break
        }
    }

    static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.addHeaders.elementsEqual(rhs.addHeaders, by: { $0.name == $1.name && $0.value == $1.value })
            && lhs.removeHeaders == rhs.removeHeaders && lhs.removeQueryParameters == rhs.removeQueryParameters
            && lhs.removeSubprotocols == rhs.removeSubprotocols && lhs.expiresAt == rhs.expiresAt
    }

    /// Every header name this grant removes from what the client sent, lowercased: the removed ones and
    /// the added ones (whose client-sent copies never pass).
    var lowercasedRemovedHeaderNames: Set<String> {
        Set(self.removeHeaders.map { $0.lowercased() } + self.addHeaders.map { $0.name.lowercased() })
    }

    /// `subprotocols` without the removed entries (compared exactly, as RFC 6455 §4.1 tokens are).
    func offeredSubprotocols(_ subprotocols: [String]) -> [String] {
        self.removeSubprotocols.isEmpty ? subprotocols : subprotocols.filter { !self.removeSubprotocols.contains($0) }
    }

    /// `target` (origin-form) without the removed query parameters: each `&`-separated pair whose name
    /// (before `=`, compared after percent-decoding) is removed; the others keep their bytes and order.
    /// A query left empty drops its `?`.
    func forwardedTarget(_ target: String) -> String {
        guard !self.removeQueryParameters.isEmpty, let question = target.firstIndex(of: "?") else { return target }
        let path = target[..<question]
        let query = target[target.index(after: question)...]
        let kept = query.split(separator: "&", omittingEmptySubsequences: false).filter { pair in
            let rawName = pair.prefix { $0 != "=" }
            let name = String(rawName).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(rawName)
            return !self.removeQueryParameters.contains(name)
        }
        return kept.isEmpty ? String(path) : "\(path)?\(kept.joined(separator: "&"))"
    }
}

/// What an upgrade request carries to its authorizers: the validated request (its route, head as sent,
/// target and subprotocols) and where and how it came in. Built by the connection's handler once the
/// request passed every other check; the same for every authorizer of the route.
struct AuthorizationContext {
    var request: ClientUpgradeRequest
    /// The client address the gateway resolved: after a PROXY header or `client_address: chain`, the
    /// same as the logs and caps use.
    var clientAddress: IPAddress?
    var clientUsedTLS: Bool
    /// The client certificate the TLS handshake verified (mutual TLS, issue #13), if any.
    var clientCertificate: TLSPeerCertificate?
    /// The name of the listener it came in on (the `listener` label).
    var listener: String

    /// The client's request head as sent.
    var head: HTTPRequestHead { self.request.head }
    var route: RouteTable.Entry { self.request.route }
}

/// One way of deciding whether an upgrade may go on (a JWT check, a forward-auth call). Built once per
/// route when a configuration is installed (``GatewayEnvironment/authorizers``), shared by every
/// connection of every event loop.
protocol UpgradeAuthorizer: Sendable {
    /// Decides on the request `context` describes. The future completes on `eventLoop`, the
    /// connection's. `abandoned`, when given, completes when the client has gone (its channel closed),
    /// so that an authorizer doing I/O (forward-auth) stops it and frees its resources at once; a local
    /// check ignores it.
    func authorize(
        _ context: AuthorizationContext,
        on eventLoop: any EventLoop,
        abandoned: EventLoopFuture<Void>?
    ) -> EventLoopFuture<AuthorizationOutcome>

    /// How long this authorizer may take at most (its own deadline); the stage's deadline is the sum of
    /// the route's (``ClientConnectionHandler``). Default: 10 s.
    var deadline: TimeAmount { get }

    /// The configuration that built this authorizer was replaced (reload) or the gateway stops: release
    /// what it keeps between requests (forward-auth's idle connections) once the requests in flight are
    /// done. Default: nothing to release.
    func retire()
}

extension UpgradeAuthorizer {
    var deadline: TimeAmount { .seconds(10) }

    func retire() {}
}
