import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import Gateway

/// The authorization stage (issue #13): the state machine's `authorizing` state on its own, then the
/// handler with scripted authorizers on an in-memory connection.
@Suite struct ClientConnectionHandlerAuthorizationTests {
    typealias Machine = ClientConnectionStateMachine
    typealias Fixture = ClientConnectionStateMachineTests

    /// The fixture request on a route with `auth`.
    static let request: ClientUpgradeRequest = {
        var request = Fixture.request
        request.route.route.auth = GatewayConfiguration.RouteAuthentication(forward: .init(url: "http://127.0.0.1:1/"))
        return request
    }()

    static let plan = Fixture.plan
    static let denied = HandshakeRejection(401, "no", reason: "auth-forward-denied")

    static func authorizing() -> Machine {
        var machine = Machine()
        _ = machine.requestHead(Fixture.head)
        _ = machine.requestAccepted(Self.request, plan: Self.plan)
        return machine
    }

    // MARK: State machine

    @Test func aRouteWithAuthIsAuthorizedBeforeItsUpstreamIsPlannedOrConnected() {
        var machine = Machine()
        _ = machine.requestHead(Fixture.head)
        var planned = 0
        let action = machine.requestAccepted(
            Self.request,
            plan: {
                planned += 1
                return Self.plan
            }()
        )
        #expect(action == .authorize(Self.request))
        #expect(machine.state == .authorizing(Self.request))
        #expect(planned == 0, "a member was picked before the authorization")
    }

    @Test func aRouteWithoutAuthNeverEntersTheStage() {
        var machine = Machine()
        _ = machine.requestHead(Fixture.head)
        #expect(machine.requestAccepted(Fixture.request, plan: Self.plan) == .connectUpstream(Fixture.request, Self.plan))
        #expect(machine.state == .connectingUpstream(Fixture.request, Self.plan))
        #expect(machine.authorized(.none) { _, _ in Self.plan } == .none)
        #expect(machine.authorizationRefused(Self.denied) == .none)
        #expect(machine.authorizationDeadlinePassed() == .none)
    }

    @Test func authorizedConnectsWithThePlanMadeFromTheGrant() {
        var machine = Self.authorizing()
        let grant = AuthorizationGrant(addHeaders: [("X-User", "ada")])
        var seen: (ClientUpgradeRequest, AuthorizationGrant)?
        let action = machine.authorized(grant) { request, grant in
            seen = (request, grant)
            return Self.plan
        }
        #expect(action == .connectUpstream(Self.request, Self.plan))
        #expect(machine.state == .connectingUpstream(Self.request, Self.plan))
        #expect(seen?.0 == Self.request && seen?.1 == grant)
    }

    @Test func aRefusalIsAnsweredAndEnds() {
        var machine = Self.authorizing()
        #expect(machine.authorizationRefused(Self.denied) == .refuse(Self.denied))
        #expect(machine.state == .ended)
    }

    @Test func theAuthorizationDeadlineIs504AndEnds() {
        var machine = Self.authorizing()
        #expect(Fixture.status(machine.authorizationDeadlinePassed()) == 504)
        #expect(machine.state == .ended)
        // The head deadline was stopped when the head arrived; the stage has its own.
        var other = Self.authorizing()
        #expect(other.headDeadlinePassed() == .none)
        #expect(other.state == .authorizing(Self.request))
    }

    @Test func theClientLeavingWhileAuthorizingEndsAndALateOutcomeIsIgnored() {
        var machine = Self.authorizing()
        #expect(machine.channelInactive() == .abort(reason: "client closed during the handshake"))
        #expect(machine.state == .ended)
        var planned = false
        #expect(
            machine.authorized(.none) { _, _ in
                planned = true
                return Self.plan
            } == .none
        )
        #expect(!planned)
        #expect(machine.authorizationRefused(Self.denied) == .none)
        #expect(machine.authorizationDeadlinePassed() == .none)
        #expect(machine.state == .ended)
    }

    @Test func aLateOutcomeAfterTheDeadlineIsIgnored() {
        var machine = Self.authorizing()
        _ = machine.authorizationDeadlinePassed()
        #expect(machine.authorized(.none) { _, _ in Self.plan } == .none)
        #expect(machine.authorizationRefused(Self.denied) == .none)
    }

    @Test func bytesOrUpstreamEventsWhileAuthorizingAreEarlyDataOrIgnored() {
        var machine = Self.authorizing()
        #expect(machine.upstreamConnected() == .closeUpstream)
        #expect(machine.upstreamConnectFailed(timedOut: false) == .none)
        #expect(machine.upstreamAnswered(.closed) == .none)
        #expect(machine.upstreamDeadlinePassed() == .none)
        #expect(machine.switchPrepared(clientSentEarlyData: false) == .none)
        #expect(machine.state == .authorizing(Self.request))
        #expect(machine.requestHead(Fixture.head) == .refuse(Machine.earlyData))
        var other = Self.authorizing()
        #expect(other.errorCaught(.malformedHTTP) == .refuse(Machine.earlyData))
    }
}

// MARK: - The handler, with scripted authorizers

/// An authorizer whose outcome the test gives later (or at once), recording what it was asked.
final class ScriptedAuthorizer: UpgradeAuthorizer, @unchecked Sendable {
    var immediate: AuthorizationOutcome?
    private(set) var pending: EventLoopPromise<AuthorizationOutcome>?
    private(set) var calls = 0
    private(set) var abandoned = false
    /// What the last call was given.
    private(set) var context: AuthorizationContext?
    let deadline: TimeAmount

    init(_ immediate: AuthorizationOutcome? = nil, deadline: TimeAmount = .seconds(5)) {
        self.immediate = immediate
        self.deadline = deadline
    }

    func authorize(
        _ context: AuthorizationContext,
        on eventLoop: any EventLoop,
        abandoned: EventLoopFuture<Void>?
    ) -> EventLoopFuture<AuthorizationOutcome> {
        abandoned?.whenComplete { _ in self.abandoned = true }
        self.calls += 1
        self.context = context
        if let immediate { return eventLoop.makeSucceededFuture(immediate) }
        let promise = eventLoop.makePromise(of: AuthorizationOutcome.self)
        self.pending = promise
        return promise.futureResult
    }

    /// Completes the pending call (a late outcome is harmless).
    func finish(_ outcome: AuthorizationOutcome) {
        self.pending?.succeed(outcome)
        self.pending = nil
    }
}

extension ClientConnectionHandlerAuthorizationTests {
    typealias Upgrade = ClientConnectionHandlerTests.Upgrade
    typealias Handshake = ClientConnectionHandlerTests

    static func upgrade(_ authorizers: [ScriptedAuthorizer]) throws -> Upgrade {
        try Upgrade(authorizers: [authorizers]) { configuration in
            configuration.routes[0].auth = GatewayConfiguration.RouteAuthentication()
        }
    }

    static let requestWithCredentials = Array(
        ("GET /chat/room?x=1&access_token=secret&y=2 HTTP/1.1\r\nHost: gw.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: \(Handshake.clientKey)\r\nSec-WebSocket-Version: 13\r\n"
            + "Sec-WebSocket-Protocol: other, chat\r\nX-User: forged\r\nCookie: session=1\r\nX-App: kept\r\n\r\n").utf8
    )

    @Test func grantsOfEveryAuthorizerAreMergedInOrderIntoTheUpstreamRequest() throws {
        let jwt = ScriptedAuthorizer(
            .allow(AuthorizationGrant(addHeaders: [("X-User", "ada")], removeQueryParameters: ["access_token"], expiresAt: 200))
        )
        let forward = ScriptedAuthorizer()
        let upgrade = try Self.upgrade([jwt, forward])
        upgrade.deliver(Self.requestWithCredentials, to: upgrade.client)
        #expect(jwt.calls == 1 && forward.calls == 1)
        #expect(upgrade.connector.channels.isEmpty, "the upstream was contacted before the authorization")
        forward.finish(.allow(AuthorizationGrant(addHeaders: [("X-Team", "blue")], removeHeaders: ["Cookie"], removeSubprotocols: ["other"])))
        upgrade.loop.run()
        let upstream = try #require(upgrade.upstream)
        let head = try #require(Handshake.parseHead(try upgrade.written(on: upstream)))
        #expect(head.start == "GET /chat/room?x=1&y=2 HTTP/1.1")
        #expect(head.headers.filter { $0.0.lowercased() == "x-user" }.map(\.1) == ["ada"])
        #expect(Handshake.header("X-Team", in: head.headers) == "blue")
        #expect(Handshake.header("Cookie", in: head.headers) == nil)
        #expect(Handshake.header("X-App", in: head.headers) == "kept")
        #expect(Handshake.header("Sec-WebSocket-Protocol", in: head.headers) == "chat")
        upstream.close(promise: nil)
        upgrade.loop.run()
    }

    /// Every authorizer of the route is told what the request carries: the request as sent, its route, the
    /// client address, the listener and whether TLS carried it (a forward-auth service's `X-Forwarded-*`).
    @Test func everyAuthorizerIsGivenWhatTheRequestCarries() throws {
        let jwt = ScriptedAuthorizer(.allow(.none))
        let forward = ScriptedAuthorizer(.deny(HandshakeRejection(403, "no", reason: "auth-forward-denied")))
        let upgrade = try Self.upgrade([jwt, forward])
        upgrade.deliver(Self.requestWithCredentials, to: upgrade.client)
        for authorizer in [jwt, forward] {
            let context = try #require(authorizer.context)
            #expect(context.head.uri == "/chat/room?x=1&access_token=secret&y=2")
            #expect(context.head.headers["X-User"] == ["forged"])
            #expect(context.route.route.pathPrefix == "/chat")
            #expect(context.request.subprotocols == ["chat"])
            #expect(context.clientAddress == IPAddress("192.0.2.1"))
            #expect(context.listener == "public")
            #expect(!context.clientUsedTLS && context.clientCertificate == nil)
        }
        #expect(try Handshake.answer(upgrade.client)?.status == 403)
        try upgrade.finish()
    }

    @Test func theFirstRefusalIsAnsweredAndTheRestNeverRunNorTheUpstream() throws {
        let jwt = ScriptedAuthorizer(
            .deny(HandshakeRejection(401, "token expired", reason: "auth-jwt-expired", headers: [("WWW-Authenticate", "Bearer")]))
        )
        let forward = ScriptedAuthorizer(.allow(.none))
        let upgrade = try Self.upgrade([jwt, forward])
        upgrade.deliver(Self.requestWithCredentials, to: upgrade.client)
        let answer = try #require(try Handshake.answer(upgrade.client))
        #expect(answer.status == 401)
        #expect(answer.headers.contains { $0 == ("WWW-Authenticate", "Bearer") })
        #expect(forward.calls == 0)
        #expect(upgrade.connector.channels.isEmpty)
        #expect(!upgrade.client.isActive)
        #expect(upgrade.refusals("auth-jwt-expired") == 1)
        try upgrade.finish()
    }

    /// Catalog O-07: every spelling of the upgrade headers that wsgate treats as an upgrade meets the route's authorizers (a refusing one answers 401, the upstream never contacted; an allowing one lets it through).
    @Test func everyUpgradeSpellingMeetsTheAuthorizationStage() throws {
        let spellings = [
            ("Upgrade: WebSocket", "Connection: Upgrade"), ("UPGRADE: websocket", "Connection: Upgrade"),
            ("Upgrade: websocket", "Connection: keep-alive, Upgrade"), ("Upgrade: websocket", "Connection: upgrade"),
            ("Upgrade:  websocket ", "Connection: Upgrade"), ("Upgrade: websocket", "Connection: close, Upgrade"),
        ]
        for (upgradeLine, connectionLine) in spellings {
            let request = Array(
                ("GET /chat HTTP/1.1\r\nHost: gw.example\r\n\(upgradeLine)\r\n\(connectionLine)\r\n"
                    + "Sec-WebSocket-Key: \(Handshake.clientKey)\r\nSec-WebSocket-Version: 13\r\n\r\n").utf8
            )
            let refusing = ScriptedAuthorizer(.deny(HandshakeRejection(401, "no", reason: "auth-forward-denied")))
            let refused = try Self.upgrade([refusing])
            refused.deliver(request, to: refused.client)
            #expect(refusing.calls == 1, "\(upgradeLine) / \(connectionLine)")
            #expect(try Handshake.answer(refused.client)?.status == 401, "\(upgradeLine) / \(connectionLine)")
            #expect(refused.connector.channels.isEmpty)
            try refused.finish()
            let allowing = ScriptedAuthorizer(.allow(.none))
            let allowed = try Self.upgrade([allowing])
            allowed.deliver(request, to: allowed.client)
            #expect(allowing.calls == 1 && allowed.connector.channels.count == 1, "\(upgradeLine) / \(connectionLine)")
            allowed.upstream?.close(promise: nil)
            allowed.loop.run()
        }
    }

    @Test func theClientLeavingWhileAuthorizingAbandonsTheCallAndALateAllowConnectsNothing() throws {
        let forward = ScriptedAuthorizer()
        let upgrade = try Self.upgrade([forward])
        upgrade.deliver(Self.requestWithCredentials, to: upgrade.client)
        #expect(!forward.abandoned)
        upgrade.client.close(promise: nil)
        upgrade.loop.run()
        #expect(forward.abandoned, "the authorizer was not told that the client left")
        #expect(upgrade.handler.state == .ended)
        forward.finish(.allow(.none))
        upgrade.loop.run()
        #expect(upgrade.connector.channels.isEmpty)
        try upgrade.finish()
    }

    @Test func anAuthorizerThatNeverAnswersIsCutAtTheStageDeadlineWith504() throws {
        let forward = ScriptedAuthorizer(deadline: .seconds(5))
        let upgrade = try Self.upgrade([forward])
        upgrade.deliver(Self.requestWithCredentials, to: upgrade.client)
        upgrade.loop.advanceTime(by: .seconds(5) + ClientConnectionHandler.authorizationDeadlineSlack - .nanoseconds(1))
        #expect(try Handshake.answer(upgrade.client) == nil)
        upgrade.loop.advanceTime(by: .nanoseconds(1))
        #expect(try Handshake.answer(upgrade.client)?.status == 504)
        #expect(upgrade.refusals("auth-timeout") == 1)
        forward.finish(.allow(.none))
        upgrade.loop.run()
        #expect(upgrade.connector.channels.isEmpty)
        try upgrade.finish()
    }
}
