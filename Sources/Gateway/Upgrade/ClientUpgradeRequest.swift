import Frames
import NIOHTTP1

/// A client's WebSocket upgrade request that passed every check of RFC 6455 §4.2.1 and DESIGN §1.3–1.4.
struct ClientUpgradeRequest: Equatable {
    var head: HTTPRequestHead
    /// `Sec-WebSocket-Key` as sent.
    var key: String
    /// The `Host` header as sent (with port, if any) and the host alone, lowercased.
    var hostHeader: String
    /// The `Host` header, validated (strict grammar, issue #11 §2).
    var authority: HostHeader
    var host: String
    /// The request target (origin-form: path and query).
    var target: String
    /// The subprotocols offered, in the client's order, after the route's allow-list.
    var subprotocols: [String]
    var origin: String?
    var route: RouteTable.Entry
    /// The client's `Sec-WebSocket-Extensions` offers, parsed (RFC 6455 §9.1), in order.
    var extensionOffers: [ExtensionOffer] = []

    /// Validates a request head. Either the request, or the exact response to refuse it with.
    static func validate(
        _ head: HTTPRequestHead,
        limits: GatewayConfiguration.Limits,
        routes: RouteTable
    ) -> Result<ClientUpgradeRequest, HandshakeRejection> {
        let headers = head.headers
        if headers.count > limits.requestHeaders {
            return .failure(.init(431, "too many header fields (\(headers.count) > \(limits.requestHeaders))", reason: "too-many-headers"))
        }
        if OpeningHandshake.overlongFieldName(in: headers) != nil {
            return .failure(.init(400, "a header name is over \(OpeningHandshake.maxFieldNameBytes) bytes", reason: "header-name"))
        }
        guard OpeningHandshake.isGet(head) else {
            return .failure(.init(405, "a WebSocket upgrade must use GET", reason: "method", headers: [("Allow", "GET")]))
        }
        guard OpeningHandshake.isHTTP11(head) else {
            return .failure(.init(400, "a WebSocket upgrade needs HTTP/1.1 (RFC 6455 §4.1)", reason: "http-version"))
        }
        if let name = OpeningHandshake.duplicatedSingleton(in: headers) {
            return .failure(.init(400, "duplicate \(name) header", reason: "duplicate-header"))
        }
        // Strict Host grammar (issue #11 §2): the value is copied into `X-Forwarded-Host` and `Forwarded`.
        guard let hostHeader = headers.first(name: "Host"), let authority = HostHeader(HTTPSyntax.trimmingOWS(hostHeader)) else {
            return .failure(.init(400, "missing or invalid Host header", reason: "host"))
        }
        if OpeningHandshake.announcesBody(headers) {
            return .failure(.init(400, "an upgrade request has no body", reason: "body"))
        }
        guard OpeningHandshake.asksForWebSocket(headers) else {
            return .failure(
                .init(
                    426,
                    "this endpoint only speaks WebSocket: send Upgrade: websocket",
                    reason: "not-an-upgrade",
                    headers: [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13")]
                )
            )
        }
        guard OpeningHandshake.asksForConnectionUpgrade(headers) else {
            return .failure(.init(400, "Connection must contain the upgrade token (RFC 6455 §4.1)", reason: "connection"))
        }
        switch OpeningHandshake.version(headers) {
        case .thirteen:
            break
        case .unsupported:
            return .failure(
                .init(
                    426,
                    "unsupported WebSocket version; this gateway speaks version 13",
                    reason: "ws-version",
                    headers: [("Sec-WebSocket-Version", "13")]
                )
            )
        case .missing, .malformed:
            // RFC 6455 §4.2.1 item 6: not an opening handshake at all, so no negotiation (426) either.
            return .failure(
                .init(
                    400,
                    "Sec-WebSocket-Version must be present once, as 13 (RFC 6455 §4.1)",
                    reason: "ws-version-invalid",
                    headers: [("Sec-WebSocket-Version", "13")]
                )
            )
        }
        guard let key = OpeningHandshake.key(headers) else {
            return .failure(.init(400, "Sec-WebSocket-Key must be the base64 of 16 bytes (RFC 6455 §4.1)", reason: "ws-key"))
        }
        // Extensions are parsed so that a malformed header is refused; the route's policy decides what is
        // answered (permessage-deflate only); nothing the client offers is forwarded upstream as such.
        let extensionValues = headers["Sec-WebSocket-Extensions"]
        var extensionOffers: [ExtensionOffer] = []
        if !extensionValues.isEmpty {
            do {
                extensionOffers = try ExtensionHeader.parse(extensionValues)
            } catch {
                return .failure(.init(400, "malformed Sec-WebSocket-Extensions: \(error.detail)", reason: "extensions"))
            }
        }
        // Routing compares bytes, so only the canonical spelling of a path is accepted (RequestPath).
        let path: String
        switch RequestPath.validate(target: head.uri) {
        case .success(let canonical): path = String(canonical)
        case .failure(.notOriginForm): return .failure(.init(400, RequestPath.Violation.notOriginForm.rawValue, reason: "target"))
        case .failure(let violation): return .failure(.init(400, violation.rawValue, reason: "path"))
        }
        let host = authority.host
        guard let route = routes.match(host: host, path: path) else {
            return .failure(.init(404, "no route for \(host)\(path)", reason: "no-route"))
        }
        var offered = HTTPSyntax.commaList(headers["Sec-WebSocket-Protocol"])
        // RFC 6455 §4.1 item 10, §11.3.4: a comma list of tokens; anything else is malformed (RELIABILITY H-14).
        guard offered.allSatisfy({ HTTPSyntax.isToken($0) }) else {
            return .failure(.init(400, "Sec-WebSocket-Protocol must be a comma-separated list of tokens", reason: "subprotocols"))
        }
        if !route.route.subprotocols.isEmpty {
            offered = offered.filter { route.route.subprotocols.contains($0) }
        }
        return .success(
            ClientUpgradeRequest(
                head: head,
                key: key,
                hostHeader: authority.value,
                authority: authority,
                host: host,
                target: head.uri,
                subprotocols: offered,
                origin: headers.first(name: "Origin"),
                route: route,
                extensionOffers: extensionOffers
            )
        )
    }

    /// The host of a `Host` header value, lowercased, without the port; nil if malformed (the strict
    /// grammar of ``HostHeader``, issue #11 §2).
    static func hostName(fromHostHeader value: String) -> String? {
        HostHeader(HTTPSyntax.trimmingOWS(value))?.host
    }
}

/// Why a handshake was refused, and the response that says so.
struct HandshakeRejection: Error, Hashable {
    var response: HTTPResponse
    /// A short stable label for logs and metrics ("no-route", "ws-key", …).
    var reason: String

    init(_ status: Int, _ message: String, reason: String, headers: [(String, String)] = []) {
        self.response = .rejection(status, message, headers: headers)
        self.reason = reason
    }

    /// The reason of a refusal whose status the upstream chose (relayed, DESIGN §1.7).
    static let upstreamRefusedReason = "upstream-refused"

    init(response: HTTPResponse, reason: String) {
        self.response = response
        self.reason = reason
    }
}

/// Compared in the upgrade state machine's states and actions (tests).
extension RouteTable.Entry: Equatable {
    static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.index == rhs.index && lhs.route == rhs.route
    }
}
