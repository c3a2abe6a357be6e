import NIOHTTP1

/// The pure halves of forward-auth: the request the service gets, and what its answer means.
enum ForwardAuthExchange {
    /// The identity headers the gateway always writes; a client's copies never reach the service.
    static let forwardedNames: Set<String> = [
        "x-forwarded-method", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-uri", "x-forwarded-for",
    ]

    /// `GET` of the configured path with `Host` of the service, `X-Forwarded-Method/-Proto/-Host/-Uri/-For`
    /// (the method, `https` on a TLS listener else `http`, the client's `Host`, the request target as sent,
    /// the client address the gateway resolved: after a PROXY header or `client_address: chain`), and the configured request headers the client sent.
    static func requestHead(_ configuration: GatewayConfiguration.ForwardAuthentication, _ context: AuthorizationContext) -> HTTPRequestHead {
        let request = context.request
        let head = context.head
        var headers = HTTPHeaders()
        let host = configuration.host.contains(":") ? "[\(configuration.host)]" : configuration.host
        headers.add(name: "Host", value: configuration.port == 80 ? host : "\(host):\(configuration.port)")
        headers.add(name: "X-Forwarded-Method", value: head.method.rawValue)
        headers.add(name: "X-Forwarded-Proto", value: context.clientUsedTLS ? "https" : "http")
        headers.add(name: "X-Forwarded-Host", value: request.hostHeader)
        headers.add(name: "X-Forwarded-Uri", value: request.target)
        if let peer = context.clientAddress { headers.add(name: "X-Forwarded-For", value: peer.description) }
        var copied = Set<String>()
        for name in configuration.requestHeaders {
            let lower = name.lowercased()
            guard !Self.forwardedNames.contains(lower), lower != "host", copied.insert(lower).inserted else { continue }
            for value in head.headers[name] { headers.add(name: name, value: value) }
        }
        headers.add(name: "Content-Length", value: "0")
        return HTTPRequestHead(version: .http1_1, method: .GET, uri: configuration.path, headers: headers)
    }

    struct Decision {
        var outcome: AuthorizationOutcome
        /// The `outcome` label of `wsgate_auth_decisions_total`.
        var metric: String
    }

    /// 2xx allows with `copyHeaders` from the answer (an absent one is removed from the upstream request,
    /// so a client-sent copy never passes); 401/403 are relayed (status, `WWW-Authenticate`,
    /// `Content-Type`, the first 4 KiB of the body); any other answer or a failure is 502, the deadline
    /// 504, a full queue 503.
    static func decide(_ result: Result<ForwardAuthResponse, ForwardAuthFailure>, copyHeaders: [String]) -> Decision {
        switch result {
        case .success(let response):
            let status = Int(response.head.status.code)
            switch status {
            case 200...299:
                var grant = AuthorizationGrant()
                for name in copyHeaders {
                    let values = response.head.headers[name]
                    if values.isEmpty { grant.removeHeaders.append(name) }
                    for value in values { grant.addHeaders.append((name: name, value: value)) }
                }
                return Decision(outcome: .allow(grant), metric: "allow")
            case 401, 403:
                let relayed = response.head.headers.filter { ["www-authenticate", "content-type"].contains($0.name.lowercased()) }
                let answer = HTTPResponse(
                    status: status,
                    reason: response.head.status.reasonPhrase,
                    headers: relayed.map { ($0.name, $0.value) } + [("Connection", "close")],
                    body: response.body
                )
                return Decision(outcome: .deny(HandshakeRejection(response: answer, reason: "auth-forward-denied")), metric: "deny_\(status)")
            default:
                return Self.refusal(502, "the auth service answered \(status)", reason: "auth-forward-error", metric: "error")
            }
        case .failure(.timeout):
            return Self.refusal(504, "the auth service did not answer in time", reason: "auth-forward-timeout", metric: "timeout")
        case .failure(.overloaded):
            return Self.refusal(503, "too many requests waiting for the auth service", reason: "auth-forward-overloaded", metric: "overloaded")
        case .failure(.unreachable):
            return Self.refusal(502, "cannot connect to the auth service", reason: "auth-forward-unreachable", metric: "unreachable")
        case .failure(.abandoned):
            return Self.refusal(502, "the client left", reason: "auth-forward-abandoned", metric: "abandoned")
        case .failure(.closed), .failure(.tooLarge), .failure(.malformed):
            return Self.refusal(502, "the auth service gave no valid answer", reason: "auth-forward-error", metric: "error")
        }
    }

    private static func refusal(_ status: Int, _ message: String, reason: String, metric: String) -> Decision {
        Decision(outcome: .deny(HandshakeRejection(status, message, reason: reason)), metric: metric)
    }
}
