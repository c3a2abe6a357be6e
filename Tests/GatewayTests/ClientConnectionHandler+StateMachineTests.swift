import Frames
import NIOCore
import NIOHTTP1
import TLSShim
import Testing

@testable import Gateway

/// ``ClientConnectionStateMachine`` on its own: every event in every state, no channel, no clock.
@Suite struct ClientConnectionStateMachineTests {
    typealias Machine = ClientConnectionStateMachine
    typealias Action = ClientConnectionStateMachine.Action

    /// The states in order, and how to reach each one.
    enum Step: CaseIterable {
        case awaitingHead, checkingRequest, connectingUpstream, awaitingAnswer, switching, relaying, ended
        var isBeforeRelay: Bool { self != .relaying && self != .ended }
    }

    static let clientKey = "dGhlIHNhbXBsZSBub25jZQ=="
    static let upstreamKey = "AQIDBAUGBwgJCgsMDQ4PEA=="

    static let head = HTTPRequestHead(
        version: .http1_1,
        method: .GET,
        uri: "/chat",
        headers: [
            "Host": "gw.example", "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": clientKey, "Sec-WebSocket-Version": "13", "Sec-WebSocket-Protocol": "chat, other",
        ]
    )

    static let request: ClientUpgradeRequest = {
        let route = GatewayConfiguration.Route(
            hosts: ["gw.example"],
            pathPrefix: "/chat",
            upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 1)]
        )
        guard case .success(let request) = ClientUpgradeRequest.validate(head, limits: .init(), routes: RouteTable([route])) else {
            fatalError("the fixture request is invalid")
        }
        return request
    }()

    static let plan: UpstreamPlan = {
        let upstream = request.route.route.upstreams[0]
        let handshake = UpstreamHandshake(key: upstreamKey, subprotocolsOffered: request.subprotocols)
        return UpstreamPlan(
            member: 0,
            upstream: upstream,
            handshake: handshake,
            requestHead: handshake.requestHead(
                for: request,
                upstream: upstream,
                peer: IPAddress("192.0.2.1"),
                peerIsTrusted: false,
                clientUsedTLS: false
            )
        )
    }()

    /// A 101 that the plan accepts, with `headers` added.
    static func switching(_ extra: HTTPHeaders = [:]) -> UpstreamResponse {
        var headers: HTTPHeaders = [
            "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Accept": HandshakeKey.acceptValue(forKey: upstreamKey),
        ]
        headers.add(contentsOf: extra)
        return UpstreamResponse(head: HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers), body: ByteBuffer())
    }

    static let agreement = Machine.Agreement(subprotocol: "chat", upstreamDeflate: nil)

    /// A machine in `step`, reached through the events of a successful upgrade (or a refusal for `ended`).
    static func machine(in step: Step) -> Machine {
        var machine = Machine()
        if step == .awaitingHead { return machine }
        if step == .ended {
            _ = machine.headDeadlinePassed()
            return machine
        }
        _ = machine.requestHead(Self.head)
        if step == .checkingRequest { return machine }
        _ = machine.requestAccepted(Self.request, plan: Self.plan)
        if step == .connectingUpstream { return machine }
        _ = machine.upstreamConnected()
        if step == .awaitingAnswer { return machine }
        _ = machine.upstreamAnswered(.response(Self.switching(["Sec-WebSocket-Protocol": "chat"])))
        if step == .switching { return machine }
        _ = machine.switchPrepared(clientSentEarlyData: false)
        return machine
    }

    static func status(_ action: Action) -> Int? {
        switch action {
        case .refuse(let rejection), .refuseAfterUpstreamTLSFailure(let rejection, _): rejection.response.status
        default: nil
        }
    }

    static func reason(_ action: Action) -> String? {
        switch action {
        case .refuse(let rejection), .refuseAfterUpstreamTLSFailure(let rejection, _): rejection.reason
        default: nil
        }
    }

    // MARK: The whole upgrade

    @Test func aValidUpgradeGoesThroughEveryStateWithOneActionEach() {
        var machine = Machine()
        #expect(machine.state == .awaitingHead)
        #expect(machine.requestHead(Self.head) == .checkRequest(Self.head))
        #expect(machine.state == .checkingRequest)
        #expect(machine.requestAccepted(Self.request, plan: Self.plan) == .connectUpstream(Self.request, Self.plan))
        #expect(machine.state == .connectingUpstream(Self.request, Self.plan))
        #expect(machine.upstreamConnected() == .sendRequest(Self.plan.requestHead))
        #expect(machine.state == .awaitingAnswer(Self.request, Self.plan))
        #expect(machine.upstreamAnswered(.response(Self.switching(["Sec-WebSocket-Protocol": "chat"]))) == .prepareSwitch)
        #expect(machine.state == .switching(Self.request, Self.agreement))
        #expect(machine.switchPrepared(clientSentEarlyData: false) == .startRelay(Self.request, Self.agreement))
        #expect(machine.state == .relaying)
    }

    @Test(arguments: Step.allCases)
    func nothingButErrorsReachesAMachineThatIsRelayingOrEnded(step: Step) {
        guard !step.isBeforeRelay else { return }
        var machine = Self.machine(in: step)
        #expect(machine.requestHead(Self.head) == .none)
        #expect(machine.requestAccepted(Self.request, plan: Self.plan) == .none)
        #expect(machine.requestRefused(HandshakeRejection(404, "x", reason: "no-route")) == .none)
        #expect(machine.headDeadlinePassed() == .none)
        #expect(machine.upstreamDeadlinePassed() == .none)
        #expect(machine.upstreamConnectFailed(timedOut: true) == .none)
        #expect(machine.upstreamAnswered(.closed) == .none)
        #expect(machine.upstreamAnswered(.response(Self.switching())) == .none)
        #expect(machine.switchPrepared(clientSentEarlyData: false) == .none)
        #expect(machine.channelInactive() == .none)
        #expect(machine.errorCaught(.malformedHTTP) == .forwardError)
        #expect(machine.errorCaught(.other("x")) == .forwardError)
        #expect(machine.state == (step == .relaying ? .relaying : .ended))
    }

    // MARK: Client events

    @Test(arguments: Step.allCases)
    func aSecondHeadBeforeTheAnswerIsEarlyData(step: Step) {
        var machine = Self.machine(in: step)
        let action = machine.requestHead(Self.head)
        switch step {
        case .awaitingHead: #expect(action == .checkRequest(Self.head))
        case .checkingRequest, .connectingUpstream, .awaitingAnswer, .switching:
            #expect(action == .refuse(Machine.earlyData))
            #expect(machine.state == .ended)
        case .relaying, .ended: #expect(action == .none)
        }
    }

    @Test func aRefusedRequestEndsWithItsRejection() {
        var machine = Self.machine(in: .checkingRequest)
        let rejection = HandshakeRejection(403, "origin refused", reason: "origin-not-allowed")
        #expect(machine.requestRefused(rejection) == .refuse(rejection))
        #expect(machine.state == .ended)
        #expect(machine.upstreamConnected() == .closeUpstream)
    }

    @Test(arguments: Step.allCases)
    func theHeadDeadlineOnlyCountsUntilTheHeadArrives(step: Step) {
        var machine = Self.machine(in: step)
        let action = machine.headDeadlinePassed()
        if step == .awaitingHead {
            #expect(Self.status(action) == 408)
            #expect(Self.reason(action) == "head-timeout")
            #expect(machine.state == .ended)
        } else {
            #expect(action == .none)
        }
    }

    /// Catalog H-02: a head over the limit is 431, a request line alone over it 414 (then close).
    @Test(arguments: Step.allCases)
    func clientErrorsAreAnsweredByWhatTheyMeanInEachState(step: Step) {
        let tls = TLSError(code: .certificateNotTrusted, reason: "test")
        let cases: [(Machine.ClientError, before: Action?, during: Action?)] = [
            (.requestBytesLimitExceeded(limit: 16384), nil, .refuse(Machine.earlyData)),
            (.requestLineTooLong(limit: 16384), nil, .refuse(Machine.earlyData)),
            (.malformedHTTP, nil, .refuse(Machine.earlyData)),
            (.other("boom"), .abort(reason: "client error: boom"), .abort(reason: "client error: boom")),
            (.tlsHandshakeFailed(tls), .abortAfterClientTLSFailure(tls), .abortAfterClientTLSFailure(tls)),
        ]
        for (error, before, during) in cases {
            var machine = Self.machine(in: step)
            let action = machine.errorCaught(error)
            switch (step, error) {
            case (.awaitingHead, .requestBytesLimitExceeded), (.checkingRequest, .requestBytesLimitExceeded):
                #expect(Self.status(action) == 431 && Self.reason(action) == "head-too-large")
            case (.awaitingHead, .requestLineTooLong), (.checkingRequest, .requestLineTooLong):
                #expect(Self.status(action) == 414 && Self.reason(action) == "uri-too-long")
            case (.awaitingHead, .malformedHTTP), (.checkingRequest, .malformedHTTP):
                #expect(Self.status(action) == 400 && Self.reason(action) == "malformed")
            case (.awaitingHead, _), (.checkingRequest, _):
                #expect(action == before, "\(error) in \(step)")
            case (.connectingUpstream, _), (.awaitingAnswer, _), (.switching, _):
                #expect(action == during, "\(error) in \(step)")
            case (.relaying, .tlsHandshakeFailed), (.ended, .tlsHandshakeFailed):
                #expect(action == .none)
            case (.relaying, _), (.ended, _):
                #expect(action == .forwardError)
            }
            if step.isBeforeRelay { #expect(machine.state == .ended, "\(error) in \(step)") }
        }
    }

    @Test(arguments: Step.allCases)
    func aClientThatLeavesBeforeTheRelayIsAborted(step: Step) {
        var machine = Self.machine(in: step)
        let action = machine.channelInactive()
        #expect(action == (step.isBeforeRelay ? .abort(reason: "client closed during the handshake") : .none))
    }

    // MARK: Upstream events

    @Test(arguments: Step.allCases)
    func anUpstreamThatConnectsWhenNotAskedForIsClosed(step: Step) {
        var machine = Self.machine(in: step)
        let action = machine.upstreamConnected()
        #expect(action == (step == .connectingUpstream ? .sendRequest(Self.plan.requestHead) : .closeUpstream))
    }

    @Test func aFailedConnectIs502AndATimedOutOne504() {
        var refused = Self.machine(in: .connectingUpstream)
        let action = refused.upstreamConnectFailed(timedOut: false)
        #expect(Self.status(action) == 502 && Self.reason(action) == "upstream-connect-failed")
        var timedOut = Self.machine(in: .connectingUpstream)
        let late = timedOut.upstreamConnectFailed(timedOut: true)
        #expect(Self.status(late) == 504 && Self.reason(late) == "upstream-connect-timeout")
        var answered = Self.machine(in: .awaitingAnswer)
        #expect(answered.upstreamConnectFailed(timedOut: false) == .none)
    }

    @Test func theUpstreamsAnswerDecidesTheClientsAnswer() throws {
        var machine = Self.machine(in: .awaitingAnswer)
        let bad = machine.upstreamAnswered(.response(Self.switching(["Sec-WebSocket-Protocol": "unoffered"])))
        #expect(Self.status(bad) == 502 && Self.reason(bad) == "upstream-invalid-101")

        machine = Self.machine(in: .awaitingAnswer)
        let gone = machine.upstreamAnswered(.closed)
        #expect(Self.status(gone) == 502 && Self.reason(gone) == "upstream-no-answer")

        machine = Self.machine(in: .awaitingAnswer)
        let tls = TLSError(code: .certificateNotTrusted, reason: "untrusted")
        guard case .refuseAfterUpstreamTLSFailure(let rejection, let error) = machine.upstreamAnswered(.tlsHandshakeFailed(tls)) else {
            Issue.record("an upstream TLS failure is not a 502 recorded as such")
            return
        }
        #expect(error == tls && rejection.response.status == 502)
        #expect(rejection.response.headers.contains { $0 == ("X-Wsgate-Error", "upstream-tls-handshake-failed") })

        machine = Self.machine(in: .awaitingAnswer)
        let refusedHead = HTTPResponseHead(
            version: .http1_1,
            status: .forbidden,
            headers: ["Content-Type": "text/plain", "Set-Cookie": "a=b", "Transfer-Encoding": "chunked", "X-Internal": "secret"]
        )
        let refused = machine.upstreamAnswered(.response(UpstreamResponse(head: refusedHead, body: ByteBuffer(string: "go away"))))
        let expected = HTTPResponse(
            status: 403,
            reason: "Forbidden",
            headers: [("Content-Type", "text/plain"), ("Set-Cookie", "a=b"), ("Connection", "close")],
            body: "go away"
        )
        #expect(refused == .refuse(HandshakeRejection(response: expected, reason: "upstream-refused")))
        #expect(machine.state == .ended)
    }

    /// Catalog T-12: an upstream TLS handshake that never completes is 504 (recorded as a TLS failure), not 502.
    /// Catalog U-09: the upstream handshake deadline gives 504, whichever part of it (TLS or HTTP) is late.
    @Test(arguments: [Step.connectingUpstream, .awaitingAnswer])
    func anUpstreamTLSHandshakeTimeoutIs504(step: Step) {
        var machine = Self.machine(in: step)
        let timeout = TLSError(code: .handshakeTimeout, reason: "TLS handshake not completed in time")
        guard case .refuseAfterUpstreamTLSFailure(let rejection, let error) = machine.upstreamAnswered(.tlsHandshakeFailed(timeout)) else {
            Issue.record("an upstream TLS timeout is not refused as a TLS failure")
            return
        }
        #expect(error == timeout && rejection.response.status == 504)
        #expect(rejection.reason == "upstream-tls-handshake-timeout")
        #expect(rejection.response.headers.contains { $0 == ("X-Wsgate-Error", "upstream-tls-handshake-timeout") })
        #expect(machine.state == .ended)
    }

    /// Catalog U-03: a 1xx/2xx/3xx instead of 101 is 502 (never relayed as if it were an answer), a 4xx/5xx is relayed.
    @Test(arguments: [(100, 502), (103, 502), (200, 502), (204, 502), (302, 502), (401, 401), (426, 426), (503, 503)])
    func aNon101IsRelayedOnlyWhenItIsAnError(status: Int, expected: Int) {
        var machine = Self.machine(in: .awaitingAnswer)
        let head = HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: ["Content-Length": "0"])
        let action = machine.upstreamAnswered(.response(UpstreamResponse(head: head, body: ByteBuffer())))
        #expect(Self.status(action) == expected)
        #expect(Self.reason(action) == (expected == 502 ? "upstream-not-upgraded" : "upstream-refused"))
        #expect(machine.state == .ended)
    }

    @Test func beforeTheRequestWentOutOnlyTheConnectOutcomeCounts() {
        var machine = Self.machine(in: .connectingUpstream)
        #expect(machine.upstreamAnswered(.closed) == .none)
        #expect(machine.state == .connectingUpstream(Self.request, Self.plan))
        let tls = TLSError(code: .certificateNotTrusted, reason: "untrusted")
        #expect(Self.status(machine.upstreamAnswered(.tlsHandshakeFailed(tls))) == 502)
    }

    @Test(arguments: Step.allCases)
    func theUpstreamDeadlineCoversConnectAnswerAndSwitch(step: Step) {
        var machine = Self.machine(in: step)
        let action = machine.upstreamDeadlinePassed()
        switch step {
        case .connectingUpstream, .awaitingAnswer, .switching:
            #expect(Self.status(action) == 504 && Self.reason(action) == "upstream-timeout")
        case .awaitingHead, .checkingRequest, .relaying, .ended:
            #expect(action == .none)
        }
    }

    // MARK: Switching

    @Test func bytesAfterTheRequestStopTheSwitch() {
        var machine = Self.machine(in: .switching)
        #expect(machine.switchPrepared(clientSentEarlyData: true) == .refuse(Machine.earlyData))
        #expect(machine.state == .ended)
    }

    @Test(arguments: Step.allCases)
    func aBrokenPipelineAbortsUnlessAlreadyEnded(step: Step) {
        var machine = Self.machine(in: step)
        let action = machine.pipelineFailed("gone")
        #expect(action == (step == .ended ? .none : .abort(reason: "pipeline: gone")))
        #expect(machine.state == .ended)
    }
}
