import Foundation
import NIOHTTP1
import Testing

@testable import Gateway

/// The admin listener's routing (issue #14): paths, methods, the bearer-token guard, and every error
/// answer, as a pure function.
@Suite struct AdminRouterTests {
    static let token = AdminToken.Value(bytes: Array("s3cret-token".utf8))

    static func route(_ uri: String, authorization: String? = nil, token: AdminToken.Value? = nil, ready: Bool = true) -> AdminRoute {
        Self.route(.GET, uri, authorization: authorization, token: token, ready: ready)
    }

    static func route(
        _ method: HTTPMethod,
        _ uri: String,
        authorization: String? = nil,
        body: String = "",
        token: AdminToken.Value? = nil,
        ready: Bool = true
    ) -> AdminRoute {
        var headers = HTTPHeaders()
        if let authorization { headers.add(name: "Authorization", value: authorization) }
        return AdminRouter.route(method: method, uri: uri, headers: headers, body: Array(body.utf8), token: token, isReady: ready)
    }

    static func status(_ route: AdminRoute) -> HTTPResponseStatus? {
        if case .answer(let answer) = route { answer.status } else { nil }
    }

    /// The `error` of a JSON error answer.
    static func error(_ route: AdminRoute) throws -> String? {
        guard case .answer(let answer) = route, answer.contentType == AdminAnswer.json else { return nil }
        return (try JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any])?["error"] as? String
    }

    @Test func theOperationalEndpointsKeepTheirAnswersAndAreNeverGuarded() {
        for token in [nil, Self.token] {
            #expect(Self.route("/metrics", token: token) == .metrics)
            #expect(Self.route("/metrics?x=1", token: token) == .metrics)
            #expect(Self.route("/healthz", token: token) == .answer(.text(.ok, "ok\n")))
            #expect(Self.route("/readyz", token: token) == .answer(.text(.ok, "ready\n")))
            #expect(Self.route("/readyz", token: token, ready: false) == .answer(.text(.serviceUnavailable, "draining\n")))
            #expect(Self.status(Self.route(.POST, "/metrics", token: token)) == .methodNotAllowed)
            #expect(Self.status(Self.route("/nope", token: token)) == .notFound)
        }
    }

    @Test func connectionsRoutesAndTheirErrors() throws {
        #expect(Self.route("/connections") == .listConnections(limit: AdminRouter.defaultConnectionLimit))
        #expect(Self.route("/connections?limit=5") == .listConnections(limit: 5))
        for bad in ["0", "-1", "x", "10001", ""] {
            #expect(try Self.error(Self.route("/connections?limit=\(bad)"))?.contains("limit") == true, "\(bad)")
        }
        #expect(Self.route("/connections/12") == .showConnection(12))
        #expect(Self.status(Self.route("/connections/abc")) == .notFound)
        #expect(Self.status(Self.route("/connections/-1")) == .notFound)
        #expect(Self.status(Self.route("/connections/1/2/3")) == .notFound)
        #expect(Self.status(Self.route(.DELETE, "/connections/12")) == .methodNotAllowed)
        #expect(Self.status(Self.route(.GET, "/connections/12/close")) == .methodNotAllowed)
        #expect(Self.status(Self.route(.POST, "/connections")) == .methodNotAllowed)
    }

    @Test func aCloseRequestTakes1008Or1001AndAReasonThatFitsACloseFrame() throws {
        #expect(
            Self.route(.POST, "/connections/3/close", body: #"{"code":1008,"reason":"bye"}"#)
                == .closeConnection(3, CloseCodeRequest(code: .policyViolation, reason: "bye"))
        )
        #expect(
            Self.route(.POST, "/connections/3/close", body: #"{"code":1001}"#) == .closeConnection(3, CloseCodeRequest(code: .goingAway, reason: ""))
        )
        let fits = String(repeating: "é", count: 61) + "x"  // 123 bytes
        #expect(
            Self.route(.POST, "/connections/3/close", body: #"{"code":1001,"reason":"\#(fits)"}"#)
                == .closeConnection(3, .init(code: .goingAway, reason: fits))
        )
        for body in [
            #"{"code":1000}"#, #"{"code":1006}"#, #"{"code":"1008"}"#, #"{"code":true}"#, #"{"code":1008.5}"#, #"{"reason":"x"}"#,
            #"{"code":1008,"reason":5}"#, #"{"code":1008,"reason":"\#(fits)x"}"#, "not json", "[1008]", "",
        ] {
            #expect(Self.status(Self.route(.POST, "/connections/3/close", body: body)) == .badRequest, "\(body)")
            #expect(try Self.error(Self.route(.POST, "/connections/3/close", body: body)) != nil, "\(body)")
        }
    }

    @Test func tapParameters() throws {
        var expected = TapRequest()
        #expect(Self.route("/tap") == .tap(expected))
        expected.filter = .init(route: "/chat", connection: 12, client: "10.0.0.1")
        expected.payload = .full
        expected.maxPayload = 64
        #expect(Self.route("/tap?route=%2Fchat&connection=12&client=10.0.0.1&payload=full&max_payload=64") == .tap(expected))
        #expect(Self.route("/tap?payload=none").tapPayload == TapPayloadMode.none)
        for bad in ["payload=all", "connection=x", "max_payload=-1", "max_payload=99999999"] {
            #expect(Self.status(Self.route("/tap?\(bad)")) == .badRequest, "\(bad)")
        }
        #expect(Self.status(Self.route(.POST, "/tap")) == .methodNotAllowed)
    }

    /// The page itself needs no token (a browser cannot send one when it navigates; the page holds no
    /// data): it reads `#token=…` and sends it on its own requests, which the token guards.
    @Test func theDashboardPageIsServedWithoutTheTokenItsDataIsGuarded() {
        guard case .answer(let page) = Self.route(.GET, "/", authorization: nil, token: Self.token) else {
            Issue.record("no answer")
            return
        }
        #expect(page.status == .ok && page.body == Array(DashboardPage.html.utf8))
        #expect(DashboardPage.html.contains(#"{ Authorization: "Bearer " + token }"#))
        guard case .answer(let data) = Self.route(.GET, "/connections", authorization: nil, token: Self.token) else {
            Issue.record("no answer")
            return
        }
        #expect(data.status == .unauthorized)
    }

    @Test func theDashboardIsServedAtTheRoot() {
        guard case .answer(let answer) = Self.route("/") else {
            Issue.record("no answer")
            return
        }
        #expect(answer.status == .ok)
        #expect(answer.contentType.hasPrefix("text/html"))
        #expect(answer.body == Array(DashboardPage.html.utf8))
    }

    /// The token guards `/`, `/connections*` and `/tap`: absent, wrong, a prefix, a longer guess, another
    /// scheme are all 401 with `WWW-Authenticate`; the scheme's casing does not matter.
    @Test func theTokenGuardsTheDashboardConnectionsAndTap() throws {
        let guarded: [(HTTPMethod, String)] = [
            (.GET, "/connections"), (.GET, "/connections/1"), (.POST, "/connections/1/close"), (.GET, "/tap"),
        ]
        for (method, uri) in guarded {
            for authorization in [
                nil, "", "Bearer", "Bearer ", "Bearer s3cret", "Bearer s3cret-token-and-more", "Basic czNjcmV0LXRva2Vu", "Bearer S3CRET-TOKEN",
                "s3cret-token",
            ] as [String?] {
                let route = Self.route(method, uri, authorization: authorization, token: Self.token)
                guard case .answer(let answer) = route else {
                    Issue.record("\(uri) with \(authorization ?? "nothing") was let through")
                    continue
                }
                #expect(answer.status == .unauthorized, "\(uri) \(authorization ?? "nothing")")
                #expect(answer.headers["WWW-Authenticate"]?.hasPrefix("Bearer") == true)
            }
            for authorization in ["Bearer s3cret-token", "bearer s3cret-token", "BEARER s3cret-token"] {
                #expect(
                    Self.status(Self.route(method, uri, authorization: authorization, body: #"{"code":1008}"#, token: Self.token)) != .unauthorized
                )
            }
        }
    }

    @Test func theTokenComparisonIsExactAndTheFileIsReadTrimmed() throws {
        #expect(AdminToken.Value.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!AdminToken.Value.constantTimeEqual([1, 2, 3], [1, 2]))
        #expect(!AdminToken.Value.constantTimeEqual([1, 2], [1, 2, 0]))
        #expect(!AdminToken.Value.constantTimeEqual([], [0]))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-token-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("token").path
        try "  abc123 \n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try AdminToken.load(path: file) == AdminToken.Value(bytes: Array("abc123".utf8)))
        try "\n \n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(throws: AdminToken.LoadError.self) { try AdminToken.load(path: file) }
        #expect(throws: AdminToken.LoadError.self) { try AdminToken.load(path: directory.appendingPathComponent("missing").path) }
        #expect(AdminToken.isLoopback("127.0.0.1") && AdminToken.isLoopback("::1") && AdminToken.isLoopback("localhost"))
        #expect(!AdminToken.isLoopback("0.0.0.0") && !AdminToken.isLoopback("10.0.0.1") && !AdminToken.isLoopback("::"))
    }
}

extension AdminRoute {
    var tapPayload: TapPayloadMode? { if case .tap(let request) = self { request.payload } else { nil } }
}
