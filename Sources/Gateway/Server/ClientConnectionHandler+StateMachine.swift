import Frames
import NIOCore
import NIOHTTP1
import TLSShim

/// The upgrade of one client connection, from its request head to the relay (DESIGN §1.3–1.8), as a
/// pure state machine (STYLE.md P3): one `mutating func` per event, each returning an ``Action`` that
/// ``ClientConnectionHandler`` performs. The machine never touches a channel, a timer, the metrics or
/// the access log, so every transition is unit-tested on its own (`ClientConnectionStateMachineTests`).
///
/// ```
/// awaitingHead ─head─▶ checkingRequest ─accepted─▶ connectingUpstream ─connected─▶ awaitingAnswer
///                          │ accepted, route has auth    ▲ authorized(grant)                │ valid 101
///                          └────────▶ authorizing ───────┘                                 │
///                             relaying ◀─switch prepared, no early data─ switching ◀─┘
/// every state before relaying ─refusal, deadline, failure, client gone─▶ ended
/// ```
///
/// Each event is accepted only in the states where it means something; anywhere else it is ignored
/// (`.none`), which replaces the re-entry guards a callback-driven handler needs: an upstream that
/// connects, answers or times out after the connection has ended cannot act on it any more.
struct ClientConnectionStateMachine {
    enum State: Equatable {
        /// Reading the request head, under the head deadline (DESIGN §1.3: 408).
        case awaitingHead
        /// The head arrived; the handler is checking it against the routes and policies.
        case checkingRequest
        /// The request is valid and its route has `auth`: its authorizers are deciding (under the
        /// authorization deadline); the upstream is not contacted yet (issue #13).
        case authorizing(ClientUpgradeRequest)
        /// The request is valid; the upstream is being connected (under the upstream deadline).
        case connectingUpstream(ClientUpgradeRequest, UpstreamPlan)
        /// The upgrade request went upstream; waiting for its answer.
        case awaitingAnswer(ClientUpgradeRequest, UpstreamPlan)
        /// The upstream sent a valid 101; the switch to frames is under way (`UpgradePipelineSwitch`).
        case switching(ClientUpgradeRequest, Agreement)
        /// The 101 went to the client and the relay owns both channels.
        case relaying
        /// Refused or aborted; nothing more happens.
        case ended
    }

    /// What the upstream's 101 settled, carried to the client's 101.
    struct Agreement: Hashable {
        /// The subprotocol the upstream chose, if any.
        var subprotocol: String?
        /// The permessage-deflate parameters the upstream accepted, if any.
        var upstreamDeflate: PerMessageDeflateParameters?
    }

    /// What the handler does after an event.
    enum Action: Equatable {
        case none
        /// Stop the head deadline and check `head` (drain, handshake rate, RFC 6455 §4.2.1, route,
        /// origin), pick the upstream and prepare its request, then report ``requestAccepted(_:plan:)`` or
        /// ``requestRefused(_:)``.
        case checkRequest(HTTPRequestHead)
        /// Arm the authorization deadline and run the route's authorizers in order (stopping at the first
        /// refusal); report ``authorized(_:plan:)`` with the merged grant or ``authorizationRefused(_:)``.
        case authorize(ClientUpgradeRequest)
        /// Arm the upstream deadline and connect to the planned member; report ``upstreamConnected()``
        /// or ``upstreamConnectFailed(timedOut:)``, and later ``upstreamAnswered(_:)``.
        case connectUpstream(ClientUpgradeRequest, UpstreamPlan)
        /// Write this upgrade request (its head's bytes) on the upstream channel that just connected.
        case sendRequest(ByteBuffer)
        /// An upstream channel connected after the connection ended: close it.
        case closeUpstream
        /// Step 1 of the switch: prepare it (no HTTP decoder is left to remove: issue #15), then report
        /// ``switchPrepared(clientSentEarlyData:)``.
        case prepareSwitch
        /// Step 2: answer 101 to the client and install the relay on both channels.
        case startRelay(ClientUpgradeRequest, Agreement)
        /// Answer with the rejection and close (and close the upstream, if any). Stop both deadlines.
        case refuse(HandshakeRejection)
        /// As ``refuse``, after the upstream's TLS handshake failed (recorded as close code 1015).
        case refuseAfterUpstreamTLSFailure(HandshakeRejection, TLSError)
        /// Close without an answer (and close the upstream, if any). Stop both deadlines.
        case abort(reason: String)
        /// The client's TLS handshake failed: no HTTP answer is possible here (plain HTTP got its clear-text
        /// 400 from the TLS handler); close, recorded as 1015
        /// (never sent in a Close frame: RFC 6455 §7.4.1).
        case abortAfterClientTLSFailure(TLSError)
        /// Not the upgrade's error: pass it on in the pipeline.
        case forwardError
    }

    /// The errors the client's pipeline reports, classified by the handler.
    enum ClientError: Equatable {
        case tlsHandshakeFailed(TLSError)
        /// More bytes than the request-head limit before the switch (``RequestHeadScanner``, then the handler).
        case requestBytesLimitExceeded(limit: Int)
        /// As above, before the request line had ended: the request line alone is over the limit.
        case requestLineTooLong(limit: Int)
        /// The request head is malformed (``RequestHeadScanner``), or an HTTP/2 stream sent DATA early.
        case malformedHTTP
        case other(String)
    }

    /// How the upstream's handshake ended (``UpstreamLegHandler``).
    enum UpstreamAnswer: Equatable {
        case response(UpstreamResponse)
        case tlsHandshakeFailed(TLSError)
        /// Closed or failed before a complete answer.
        case closed
    }

    private(set) var state: State = .awaitingHead

    /// RFC 6455 §4.1: the client waits for the server's answer before it sends anything more; bytes
    /// before our 101 are refused and never forwarded (DESIGN §1.3).
    static let earlyData = HandshakeRejection(400, "data before the handshake completed", reason: "early-data")

    // MARK: Client events

    /// A request head was decoded.
    mutating func requestHead(_ head: HTTPRequestHead) -> Action {
        switch self.state {
        case .awaitingHead:
            self.state = .checkingRequest
            return .checkRequest(head)
        case .checkingRequest, .authorizing, .connectingUpstream, .awaitingAnswer, .switching:
            // A second request before the first was answered: pipelining is not an upgrade.
            return self.refuse(Self.earlyData)
        case .relaying, .ended:
            return .none
        }
    }

    /// The request passed every check. A route with `auth` goes to ``State/authorizing(_:)`` first;
    /// any other goes straight to the upstream, where `plan` says which upstream gets which request
    /// (with a fresh key); it is made only then, so a refused request never picks a member.
    mutating func requestAccepted(_ request: ClientUpgradeRequest, plan: @autoclosure () -> UpstreamPlan) -> Action {
        switch self.state {
        case .checkingRequest:
            if request.route.route.auth != nil {
                self.state = .authorizing(request)
                return .authorize(request)
            }
            let plan = plan()
            self.state = .connectingUpstream(request, plan)
            return .connectUpstream(request, plan)
        case .awaitingHead, .authorizing, .connectingUpstream, .awaitingAnswer, .switching, .relaying, .ended:
            return .none
        }
    }

    /// Every authorizer allowed the upgrade; `plan` makes the upstream request with the merged `grant`
    /// applied. Ignored once the connection ended (a late outcome, after the client left or the deadline).
    mutating func authorized(
        _ grant: AuthorizationGrant,
        plan: (ClientUpgradeRequest, AuthorizationGrant) -> UpstreamPlan
    ) -> Action {
        switch self.state {
        case .authorizing(let request):
            let plan = plan(request, grant)
            self.state = .connectingUpstream(request, plan)
            return .connectUpstream(request, plan)
        case .awaitingHead, .checkingRequest, .connectingUpstream, .awaitingAnswer, .switching, .relaying, .ended:
            return .none
        }
    }

    /// An authorizer refused the upgrade (401, 403, or 502/503/504 when it could not decide): answered
    /// to the client, the upstream never contacted. Ignored once the connection ended.
    mutating func authorizationRefused(_ rejection: HandshakeRejection) -> Action {
        switch self.state {
        case .authorizing:
            return self.refuse(rejection)
        case .awaitingHead, .checkingRequest, .connectingUpstream, .awaitingAnswer, .switching, .relaying, .ended:
            return .none
        }
    }

    /// The authorizers did not decide in time: 504, as for an upstream that does not answer.
    mutating func authorizationDeadlinePassed() -> Action {
        switch self.state {
        case .authorizing:
            return self.refuse(HandshakeRejection(504, "authorization did not complete in time", reason: "auth-timeout"))
        case .awaitingHead, .checkingRequest, .connectingUpstream, .awaitingAnswer, .switching, .relaying, .ended:
            return .none
        }
    }

    /// The request failed a check.
    mutating func requestRefused(_ rejection: HandshakeRejection) -> Action {
        switch self.state {
        case .checkingRequest:
            return self.refuse(rejection)
        case .awaitingHead, .authorizing, .connectingUpstream, .awaitingAnswer, .switching, .relaying, .ended:
            return .none
        }
    }

    /// The head deadline passed (DESIGN §1.3: 408).
    mutating func headDeadlinePassed() -> Action {
        switch self.state {
        case .awaitingHead:
            return self.refuse(HandshakeRejection(408, "the request head did not arrive in time", reason: "head-timeout"))
        case .checkingRequest, .authorizing, .connectingUpstream, .awaitingAnswer, .switching, .relaying, .ended:
            return .none
        }
    }

    /// The client's pipeline reported `error`.
    mutating func errorCaught(_ error: ClientError) -> Action {
        switch (self.state, error) {
        case (.relaying, .tlsHandshakeFailed), (.ended, .tlsHandshakeFailed):
            return .none
        case (.relaying, _), (.ended, _):
            return .forwardError
        case (_, .tlsHandshakeFailed(let tlsError)):
            self.state = .ended
            return .abortAfterClientTLSFailure(tlsError)
        case (.awaitingHead, .requestBytesLimitExceeded(let limit)), (.checkingRequest, .requestBytesLimitExceeded(let limit)):
            return self.refuse(HandshakeRejection(431, "request head over \(limit) bytes", reason: "head-too-large"))
        case (.awaitingHead, .requestLineTooLong(let limit)), (.checkingRequest, .requestLineTooLong(let limit)):
            // RFC 9110 §15.5.15 (RELIABILITY H-02 (c)): the target is what is too long, not the headers.
            return self.refuse(HandshakeRejection(414, "request line over \(limit) bytes", reason: "uri-too-long"))
        case (.awaitingHead, .malformedHTTP), (.checkingRequest, .malformedHTTP):
            return self.refuse(HandshakeRejection(400, "malformed request", reason: "malformed"))
        case (.authorizing, .requestBytesLimitExceeded), (.authorizing, .requestLineTooLong), (.authorizing, .malformedHTTP),
            (.connectingUpstream, .requestBytesLimitExceeded), (.awaitingAnswer, .requestBytesLimitExceeded),
            (.switching, .requestBytesLimitExceeded), (.connectingUpstream, .requestLineTooLong),
            (.awaitingAnswer, .requestLineTooLong), (.switching, .requestLineTooLong), (.connectingUpstream, .malformedHTTP),
            (.awaitingAnswer, .malformedHTTP), (.switching, .malformedHTTP):
            // Whatever follows a complete request before our answer is early data.
            return self.refuse(Self.earlyData)
        case (_, .other(let description)):
            self.state = .ended
            return .abort(reason: "client error: \(description)")
        }
    }

    /// The client's connection closed.
    mutating func channelInactive() -> Action {
        switch self.state {
        case .awaitingHead, .checkingRequest, .authorizing, .connectingUpstream, .awaitingAnswer, .switching:
            self.state = .ended
            return .abort(reason: "client closed during the handshake")
        case .relaying, .ended:
            return .none
        }
    }

    // MARK: Upstream events

    /// The upstream channel connected.
    mutating func upstreamConnected() -> Action {
        switch self.state {
        case .connectingUpstream(let request, let plan):
            self.state = .awaitingAnswer(request, plan)
            return .sendRequest(plan.requestHead)
        case .awaitingHead, .checkingRequest, .authorizing, .awaitingAnswer, .switching, .relaying, .ended:
            return .closeUpstream
        }
    }

    /// Connecting failed (DESIGN §1.7: 502, or 504 when it timed out).
    mutating func upstreamConnectFailed(timedOut: Bool) -> Action {
        switch self.state {
        case .connectingUpstream:
            return self.refuse(
                timedOut
                    ? HandshakeRejection(504, "connecting to the upstream timed out", reason: "upstream-connect-timeout")
                    : HandshakeRejection(502, "cannot connect to the upstream", reason: "upstream-connect-failed")
            )
        case .awaitingHead, .checkingRequest, .authorizing, .awaitingAnswer, .switching, .relaying, .ended:
            return .none
        }
    }

    /// The upstream answered, failed its TLS handshake or went away (DESIGN §1.7).
    mutating func upstreamAnswered(_ answer: UpstreamAnswer) -> Action {
        switch (self.state, answer) {
        case (.connectingUpstream, .tlsHandshakeFailed(let error)) where error.code == .handshakeTimeout,
            (.awaitingAnswer, .tlsHandshakeFailed(let error)) where error.code == .handshakeTimeout:
            // The TLS handshake is part of the upstream handshake and its deadline (RELIABILITY T-12, U-09):
            // an upstream that accepts TCP and never answers its ClientHello is a timeout (504), not a
            // failure (502). Still recorded as 1015 with the timeout class.
            self.state = .ended
            return .refuseAfterUpstreamTLSFailure(
                HandshakeRejection(
                    504,
                    "the upstream's TLS handshake did not complete in time",
                    reason: "upstream-tls-handshake-timeout",
                    headers: [("X-Wsgate-Error", "upstream-tls-handshake-timeout")]
                ),
                error
            )
        case (.connectingUpstream, .tlsHandshakeFailed(let error)), (.awaitingAnswer, .tlsHandshakeFailed(let error)):
            self.state = .ended
            return .refuseAfterUpstreamTLSFailure(
                HandshakeRejection(
                    502,
                    "upstream TLS handshake failed: \(error.summary)",
                    reason: "upstream-tls-handshake-failed",
                    headers: [("X-Wsgate-Error", "upstream-tls-handshake-failed")]
                ),
                error
            )
        case (.connectingUpstream, .closed), (.connectingUpstream, .response):
            // Nothing was sent yet: the connect's own outcome (502/504) decides.
            return .none
        case (.awaitingAnswer, .closed):
            return self.refuse(HandshakeRejection(502, "the upstream closed the connection without answering", reason: "upstream-no-answer"))
        case (.awaitingAnswer(let request, let plan), .response(let response)):
            switch plan.handshake.check(response.head) {
            case .accepted(let subprotocol, let deflate):
                self.state = .switching(request, Agreement(subprotocol: subprotocol, upstreamDeflate: deflate))
                return .prepareSwitch
            case .invalid(let why):
                return self.refuse(HandshakeRejection(502, "invalid upgrade answer from the upstream: \(why)", reason: "upstream-invalid-101"))
            case .refused(let status) where (400...599).contains(status):
                // An error the client can act on (401, 403, 426, 503…): relayed, then both legs close.
                return self.refuse(HandshakeRejection(response: response.relayedToClient(), reason: HandshakeRejection.upstreamRefusedReason))
            case .refused(let status):
                // 1xx (an interim answer that is not an upgrade), 2xx, 3xx: the upstream did not upgrade and
                // did not refuse either; a WebSocket client cannot use them (browsers fail on redirects),
                // and relaying an interim status would leave the client waiting. 502 (RELIABILITY U-03).
                return self.refuse(
                    HandshakeRejection(
                        502,
                        "the upstream answered \(status) instead of 101 Switching Protocols",
                        reason: "upstream-not-upgraded"
                    )
                )
            }
        case (.awaitingHead, _), (.checkingRequest, _), (.authorizing, _), (.switching, _), (.relaying, _), (.ended, _):
            return .none
        }
    }

    /// The upgrade did not complete in time (connect plus handshake, DESIGN §7: 504).
    mutating func upstreamDeadlinePassed() -> Action {
        switch self.state {
        case .connectingUpstream, .awaitingAnswer, .switching:
            return self.refuse(HandshakeRejection(504, "the upstream did not answer in time", reason: "upstream-timeout"))
        case .awaitingHead, .checkingRequest, .authorizing, .relaying, .ended:
            return .none
        }
    }

    // MARK: Switching

    /// The switch is prepared (neither channel has an HTTP decoder: issue #15); `clientSentEarlyData`
    /// says whether the client sent bytes after its request (RFC 6455 §4.1: refused with 400, never
    /// forwarded).
    mutating func switchPrepared(clientSentEarlyData: Bool) -> Action {
        switch self.state {
        case .switching(let request, let agreement):
            if clientSentEarlyData { return self.refuse(Self.earlyData) }
            self.state = .relaying
            return .startRelay(request, agreement)
        case .awaitingHead, .checkingRequest, .authorizing, .connectingUpstream, .awaitingAnswer, .relaying, .ended:
            return .none
        }
    }

    /// Rearranging a pipeline failed (a broken invariant, not peer input): close without an answer.
    mutating func pipelineFailed(_ description: String) -> Action {
        switch self.state {
        case .awaitingHead, .checkingRequest, .authorizing, .connectingUpstream, .awaitingAnswer, .switching, .relaying:
            self.state = .ended
            return .abort(reason: "pipeline: \(description)")
        case .ended:
            return .none
        }
    }

    private mutating func refuse(_ rejection: HandshakeRejection) -> Action {
        self.state = .ended
        return .refuse(rejection)
    }
}

/// Which upstream a connection goes to and what it is sent (DESIGN §1.6), settled before connecting.
struct UpstreamPlan: Equatable {
    /// The member's index in the route's ``UpstreamPool`` (for passive health) and its configuration.
    var member: Int
    var upstream: GatewayConfiguration.Upstream
    /// The fresh key, the subprotocol and extension offers: what the answer is checked against.
    var handshake: UpstreamHandshake
    /// The upgrade request head as written upstream (``UpstreamHandshake/requestHead(for:upstream:peer:peerIsTrusted:clientUsedTLS:clientCertificate:grant:)``).
    var requestHead: ByteBuffer
}
