import NIOCore
import NIOHTTP1
import Testing

@testable import Gateway

/// What the auth service is asked, and what its answers mean (``ForwardAuthExchange``), without sockets.
@Suite struct ForwardAuthExchangeTests {
    static let forward: GatewayConfiguration.ForwardAuthentication = {
        var forward = GatewayConfiguration.ForwardAuthentication(url: "http://auth:8080/verify")
        (forward.host, forward.port, forward.path) = ("auth", 8080, "/verify")
        forward.requestHeaders = ["Cookie", "Authorization", "X-Forwarded-For", "Host", "cookie"]
        return forward
    }()

    static func response(
        _ status: HTTPResponseStatus,
        _ headers: HTTPHeaders = [:],
        body: String = ""
    ) -> Result<ForwardAuthResponse, ForwardAuthFailure> {
        .success(
            ForwardAuthResponse(head: HTTPResponseHead(version: .http1_1, status: status, headers: headers), body: Array(body.utf8), keepAlive: true)
        )
    }

    @Test func theIdentityHeadersAreTheGatewaysAndCannotBeForged() {
        var request = ClientConnectionStateMachineTests.request
        request.head.headers.add(name: "X-Forwarded-For", value: "203.0.113.9")
        request.head.headers.add(name: "X-Forwarded-Uri", value: "/admin")
        request.head.headers.add(name: "Cookie", value: "a=1")
        request.head.headers.add(name: "Cookie", value: "b=2")
        let head = ForwardAuthExchange.requestHead(
            Self.forward,
            AuthorizationContext(request: request, clientAddress: IPAddress("192.0.2.7"), clientUsedTLS: true, listener: "public")
        )
        #expect(head.method == .GET && head.uri == "/verify")
        #expect(head.headers["Host"] == ["auth:8080"])
        #expect(head.headers["X-Forwarded-Method"] == ["GET"])
        #expect(head.headers["X-Forwarded-Proto"] == ["https"])
        #expect(head.headers["X-Forwarded-Host"] == ["gw.example"])
        #expect(head.headers["X-Forwarded-Uri"] == ["/chat"])
        #expect(head.headers["X-Forwarded-For"] == ["192.0.2.7"])
        #expect(head.headers["Cookie"] == ["a=1", "b=2"])
        #expect(head.headers["Authorization"].isEmpty)
    }

    @Test func a2xxAllowsWithTheCopiedHeadersAndRemovesTheAbsentOnes() {
        let decision = ForwardAuthExchange.decide(Self.response(.noContent, ["X-User": "ada", "X-Other": "x"]), copyHeaders: ["X-User", "X-Role"])
        #expect(decision.metric == "allow")
        guard case .allow(let grant) = decision.outcome else {
            Issue.record("not allowed")
            return
        }
        #expect(grant == AuthorizationGrant(addHeaders: [("X-User", "ada")], removeHeaders: ["X-Role"]))
    }

    @Test func eachOtherAnswerHasItsStatusAndOutcome() {
        let cases: [(Result<ForwardAuthResponse, ForwardAuthFailure>, Int, String, String)] = [
            (Self.response(.unauthorized, ["WWW-Authenticate": "Basic"], body: "no"), 401, "deny_401", "auth-forward-denied"),
            (Self.response(.forbidden), 403, "deny_403", "auth-forward-denied"),
            (Self.response(.internalServerError), 502, "error", "auth-forward-error"),
            (Self.response(.found, ["Location": "/login"]), 502, "error", "auth-forward-error"),
            (Self.response(.notFound), 502, "error", "auth-forward-error"),
            (.failure(.closed), 502, "error", "auth-forward-error"),
            (.failure(.tooLarge), 502, "error", "auth-forward-error"),
            (.failure(.malformed), 502, "error", "auth-forward-error"),
            (.failure(.unreachable), 502, "unreachable", "auth-forward-unreachable"),
            (.failure(.timeout), 504, "timeout", "auth-forward-timeout"),
            (.failure(.overloaded), 503, "overloaded", "auth-forward-overloaded"),
        ]
        for (result, status, metric, reason) in cases {
            let decision = ForwardAuthExchange.decide(result, copyHeaders: ["X-User"])
            guard case .deny(let rejection) = decision.outcome else {
                Issue.record("\(status) allowed")
                continue
            }
            #expect(rejection.response.status == status && decision.metric == metric && rejection.reason == reason, "\(result)")
        }
        let relayed = ForwardAuthExchange.decide(
            Self.response(.unauthorized, ["WWW-Authenticate": "Basic", "Set-Cookie": "x"], body: "no"),
            copyHeaders: []
        )
        guard case .deny(let rejection) = relayed.outcome else {
            Issue.record("401 allowed")
            return
        }
        #expect(rejection.response.headers.map(\.0) == ["WWW-Authenticate", "Connection"])
        #expect(rejection.response.body == Array("no".utf8))
    }
}
