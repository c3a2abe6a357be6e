import Frames
import NIOCore
import NIOHTTP1
import NIOTLS
import TLSShim

/// Drives one client connection from its upgrade request to the relay (DESIGN §1): reads the request
/// head from the connection's bytes itself (``RequestHeadScanner``, no HTTP decoder in the pipeline, so
/// the switch to frames changes nothing on the client's pipeline but this handler's place; issue #15),
/// validates the request, routes it, connects the upstream on the same event loop, sends the upstream
/// request, checks the answer, answers the client, and then hands both channels to the relay (a
/// ``RelayHandler`` in its place here, the ``UpstreamLegHandler`` relaying in place upstream). Every
/// refusal is an exact HTTP answer followed by closing the connection, and nothing the client sends
/// after a refused request is read.
///
/// The decisions are ``ClientConnectionStateMachine``'s; this handler only turns channel events,
/// deadlines and the upstream's progress into its events and performs the actions it returns. The
/// upstream connect goes through an ``UpstreamConnector`` and the switch to frames through
/// ``UpgradePipelineSwitch``; what happened is recorded by one ``UpgradeRecorder``.
final class ClientConnectionHandler: ChannelInboundHandler, RemovableChannelHandler, UpstreamAnswerReceiver {
    /// The connection's bytes (HTTP/1.1), or, on an HTTP/2 stream, its DATA once the stream switched to
    /// frames; the stream's request head comes as a ``ParsedRequestHead`` event (issue #16).
    typealias InboundIn = ByteBuffer

    /// An HTTP/2 stream's request (``HTTP2WebSocketStreamCodec``), already parsed, as a user event.
    struct ParsedRequestHead {
        var head: HTTPRequestHead
    }

    let environment: GatewayEnvironment
    let clientUsedTLS: Bool
    private let connector: any UpstreamConnector
    var recorder: UpgradeRecorder
    var machine = ClientConnectionStateMachine()
    /// The head as scanned so far, over every byte read (HTTP/1.1).
    private var scanner: RequestHeadScanner
    /// The bytes read before the head ended (nil once it did, or before the first read).
    private var headBytes: ByteBuffer?
    /// Every byte the client sent before the relay (the head limit counts them all: DESIGN §1.3).
    private var received = 0
    /// Bytes came after the head, before the relay: early data (RFC 6455 §4.1), refused at the switch.
    private(set) var clientSentEarlyData = false
    /// The upgrade's one timer (issue #15): armed at accept for the head deadline and, once the head is
    /// read, left in place for the upstream's connect-plus-handshake deadline when that is later (it
    /// re-arms itself for the rest when it fires early), so a connection schedules and cancels one
    /// callback for both deadlines. ``deadline`` says which one is due.
    private var deadlineTimer: NIOScheduledCallback?
    /// When ``deadlineTimer`` fires.
    private var deadlineTimerAt = NIODeadline.uptimeNanoseconds(0)
    private var deadline = UpgradeDeadline.none
    /// The channel's context while the handler is in the pipeline (the upstream's answer arrives as a
    /// call, ``upstreamAnswered(_:)``, not through a promise).
    private var context: ChannelHandlerContext?
    /// On a TLS listener, until the client's handshake completes: the handshake has its own deadline
    /// (`timeouts.tls_handshake`, RELIABILITY T-01), and a head deadline that passes first waits for it
    /// (then fires at once, still counted from accept). A stalled handshake is recorded as a TLS
    /// failure of class `handshake_timeout` (1015), not as a 408 that nobody could read.
    private var clientTLSPending: Bool
    private var headDeadlineDeferred = false
    /// The authorization stage's deadline (`ClientConnectionHandler+Authorization.swift`).
    var authorizationDeadline: Scheduled<Void>?
    /// The credential's expiry from the authorization grant (`auth.jwt.close_on_expiry`), for the relay.
    var credentialExpiresAt: Int64?
    /// The upstream channel once it connected (closed if the upgrade ends before the relay).
    private var upstream: (any Channel)?
    /// The upstream channel's handler (it relays in place after the 101: ``UpgradePipelineSwitch``).
    private var upstreamLeg: UpstreamLegHandler?
    private var pipelineSwitch: UpgradePipelineSwitch?
    /// Edge (issue #11): the connection's peer (after a PROXY header, the address it carried), the TLS
    /// SNI name, and whether the Host must match it (`ClientConnectionHandler+Edge.swift`).
    var peer: IPAddress?
    var serverName: String?
    /// The client certificate the TLS handshake verified (issue #13), for the route's `client_cert`.
    var clientCertificate: TLSPeerCertificate?
    /// The TLS names of the listener and the one the handshake selected, for the Host's client-certificate
    /// settings (``clientAuthenticationHostRejection(_:)``).
    var clientAuthenticationScope: TLSConnectionInfo.ClientAuthenticationScope?
    let requireSNIHostMatch: Bool
    /// `client_address: chain` behind a trusted proxy: the per-IP connection cap was left open at accept
    /// (the socket's peer is the proxy) and is applied to the chain's client address once the head is read.
    let admitsClientAddressAtHead: Bool
    /// HTTP/1.1 or an HTTP/2 stream (issue #16; `ClientConnectionHandler+Answer.swift`).
    let answerEncoding: ClientAnswerEncoding

    /// `connector` defaults to NIO's `ClientBootstrap` with the environment's limits and timeouts. An
    /// HTTP/2 stream passes `answerEncoding: .http2` and its connection's `establishedTLS`.
    init(
        environment: GatewayEnvironment,
        record: ConnectionRecord,
        clientUsedTLS: Bool,
        requireSNIHostMatch: Bool = false,
        admitsClientAddressAtHead: Bool = false,
        connector: (any UpstreamConnector)? = nil,
        answerEncoding: ClientAnswerEncoding = .http1,
        establishedTLS: TLSConnectionInfo? = nil
    ) {
        self.environment = environment
        self.clientUsedTLS = clientUsedTLS
        self.clientTLSPending = clientUsedTLS
        self.requireSNIHostMatch = requireSNIHostMatch
        self.admitsClientAddressAtHead = admitsClientAddressAtHead
        self.peer = record.clientAddress.flatMap { IPAddress($0) }
        self.connector = connector ?? BootstrapUpstreamConnector(limits: environment.limits, timeouts: environment.timeouts)
        self.recorder = UpgradeRecorder(record: record, metrics: environment.metrics, accessLog: environment.accessLog)
        self.answerEncoding = answerEncoding
        self.scanner = RequestHeadScanner(limit: environment.limits.requestHeadBytes)
        if let establishedTLS {
            self.clientTLSPending = false
            // The connection's certificate was counted once, by the connection (``HTTP2ALPNSwitch``).
            self.clientTLSEstablished(establishedTLS, countsClientCertificate: false)
        }
    }

    /// The state of the upgrade (for tests).
    var state: ClientConnectionStateMachine.State { self.machine.state }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.deadline = .head
        self.armDeadlineTimer(at: context.eventLoop.now + TimeAmount(self.environment.timeouts.requestHead), context: context)
    }

    /// Removed before the upgrade ended (an HTTP/2 connection replaces the HTTP/1.1 handlers after ALPN),
    /// or at the switch to the relay: the deadlines go with it.
    func handlerRemoved(context: ChannelHandlerContext) {
        self.stopDeadlines()
        self.upstreamLeg?.abandonAnswer()
        self.context = nil
    }

    /// Which of the upgrade's deadlines ``deadlineTimer`` stands for.
    private enum UpgradeDeadline {
        /// None is due (between the head and the upstream connect: the authorization stage has its own).
        case none
        /// The request head's (from accept, `timeouts.request_head`).
        case head
        /// The upstream's connect plus handshake, at this time (DESIGN §7: 504).
        case upstream(NIODeadline)
    }

    /// A scheduled callback whose handler is this handler: nothing allocated (a `scheduleTask` took a
    /// promise and four closures); it throws only when the loop is shutting down.
    private func armDeadlineTimer(at time: NIODeadline, context: ChannelHandlerContext) {
        self.deadlineTimerAt = time
        self.deadlineTimer = try? context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleCallback(
            at: time,
            handler: UpgradeDeadlineCallback(handler: self)
        )
    }

    private struct UpgradeDeadlineCallback: NIOScheduledCallbackHandler {
        let handler: ClientConnectionHandler

        func handleScheduledCallback(eventLoop: some EventLoop) {
            guard let context = self.handler.context else { return }
            self.handler.deadlineTimerFired(context: context)
        }
    }

    private func deadlineTimerFired(context: ChannelHandlerContext) {
        self.deadlineTimer = nil
        switch self.deadline {
        case .none:
            break
        case .head:
            self.deadline = .none
            if self.clientTLSPending {
                self.headDeadlineDeferred = true
                return
            }
            self.perform(self.machine.headDeadlinePassed(), context: context)
        case .upstream(let time):
            if context.eventLoop.now < time { return self.armDeadlineTimer(at: time, context: context) }
            self.deadline = .none
            self.perform(self.machine.upstreamDeadlinePassed(), context: context)
        }
    }

    /// The upstream's deadline starts: the timer armed for the head stays when it fires first.
    private func startUpstreamDeadline(_ time: NIODeadline, context: ChannelHandlerContext) {
        self.deadline = .upstream(time)
        if self.deadlineTimer != nil && self.deadlineTimerAt <= time { return }
        self.deadlineTimer?.cancel()
        self.armDeadlineTimer(at: time, context: context)
    }

    private func stopDeadlines() {
        self.deadline = .none
        self.deadlineTimer?.cancel()
        self.deadlineTimer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = Self.unwrapInboundIn(data)
        switch self.machine.state {
        case .awaitingHead where self.answerEncoding == .http1:
            if self.headBytes == nil {
                self.headBytes = buffer
            } else {
                self.headBytes!.writeBuffer(&buffer)
            }
            self.scanHead(context: context)
        case .awaitingHead, .checkingRequest, .authorizing, .connectingUpstream, .awaitingAnswer, .switching:
            self.readAfterHead(context: context, count: buffer.readableBytes)
        case .relaying, .ended:
            // Refused or aborted: nothing more is read (the relay has its own handler).
            break
        }
    }

    /// Scans what was read of the head; on its end, what follows it in the same read is early data.
    private func scanHead(context: ChannelHandlerContext) {
        guard let bytes = self.headBytes else { return }
        switch self.scanner.scan(bytes) {
        case .needMore:
            break
        case .head(let head, let length):
            self.headBytes = nil
            self.received = length
            self.perform(self.machine.requestHead(head), context: context)
            if bytes.readableBytes > length { self.readAfterHead(context: context, count: bytes.readableBytes - length) }
        case .failure(.tooLarge(let inRequestLine)):
            self.headBytes = nil
            let limit = self.environment.limits.requestHeadBytes
            self.perform(
                self.machine.errorCaught(inRequestLine ? .requestLineTooLong(limit: limit) : .requestBytesLimitExceeded(limit: limit)),
                context: context
            )
        case .failure(.malformed):
            self.headBytes = nil
            self.perform(self.machine.errorCaught(.malformedHTTP), context: context)
        }
    }

    /// Bytes after the head and before the relay: early data, never forwarded. Small amounts wait for the
    /// switch (answered then, 400); once all the bytes read pass the head limit, refused at once (400,
    /// not 431: the head fitted). RELIABILITY H-02.
    private func readAfterHead(context: ChannelHandlerContext, count: Int) {
        guard count > 0 else { return }
        self.clientSentEarlyData = true
        let limit = self.environment.limits.requestHeadBytes
        let before = self.received
        self.received += count
        if before <= limit && self.received > limit {
            self.perform(self.machine.errorCaught(.requestBytesLimitExceeded(limit: limit)), context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let parsed = event as? ParsedRequestHead {
            return self.perform(self.machine.requestHead(parsed.head), context: context)
        }
        if let proxied = event as? ProxyProtocolReceived, let source = proxied.header.source {
            // The PROXY header (from a trusted proxy) names the real client (issue #11 §1).
            self.peer = source
            self.recorder.clientAddressResolved(source)
        }
        var headDeadlineWaited = false
        if case TLSUserEvent.handshakeCompleted = event {
            if let info = try? context.pipeline.syncOperations.handler(type: TLSHandler.self).connectionInfo {
                self.clientTLSEstablished(info)
            }
            self.clientTLSPending = false
            headDeadlineWaited = self.headDeadlineDeferred
        }
        context.fireUserInboundEventTriggered(event)
        if headDeadlineWaited { self.perform(self.machine.headDeadlinePassed(), context: context) }
    }

    /// What the client's TLS handshake negotiated (called on `handshakeCompleted`; tests call it with
    /// a made-up ``TLSConnectionInfo``).
    func clientTLSEstablished(_ info: TLSConnectionInfo, countsClientCertificate: Bool = true) {
        self.recorder.clientTLSEstablished(info, countsClientCertificate: countsClientCertificate)
        self.serverName = info.serverName
        self.clientCertificate = info.peerCertificate
        self.clientAuthenticationScope = info.clientAuthentication
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let classified: ClientConnectionStateMachine.ClientError
        if let tlsError = error as? TLSError, tlsError.code.isHandshakeFailure {
            classified = .tlsHandshakeFailed(tlsError)
        } else if error is HTTP2WebSocketStreamCodec.EarlyData {
            classified = .malformedHTTP
        } else {
            classified = .other("\(error)")
        }
        self.perform(self.machine.errorCaught(classified), context: context, error: error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.perform(self.machine.channelInactive(), context: context)
        context.fireChannelInactive()
    }

    // MARK: Actions

    func perform(_ action: ClientConnectionStateMachine.Action, context: ChannelHandlerContext, error: (any Error)? = nil) {
        switch action {
        case .none:
            break
        case .checkRequest(let head):
            // The head deadline is over; its timer stays armed for the upstream's (``deadlineTimer``).
            self.deadline = .none
            switch self.check(head, channel: context.channel) {
            case .success(let request):
                self.perform(self.machine.requestAccepted(request, plan: self.plan(request, context: context)), context: context)
            case .failure(let rejection):
                self.perform(self.machine.requestRefused(rejection), context: context)
            }
        case .authorize(let request):
            self.authorize(request, context: context)
        case .connectUpstream(let request, let plan):
            self.connectUpstream(context: context, request: request, plan: plan)
        case .sendRequest(let head):
            self.upstream?.writeAndFlush(head, promise: nil)
        case .closeUpstream:
            self.upstream?.close(promise: nil)
        case .prepareSwitch:
            self.prepareSwitch(context: context)
        case .startRelay(let request, let agreement):
            self.startRelay(context: context, request: request, agreement: agreement)
        case .refuse(let rejection):
            self.refuse(context: context, rejection)
        case .refuseAfterUpstreamTLSFailure(let rejection, let tlsError):
            // DESIGN §1.7: 502 with the classified reason; recorded as close code 1015.
            self.recorder.tlsHandshakeFailed(leg: .upstream, tlsError)
            self.refuse(context: context, rejection)
        case .abort(let reason):
            self.abort(context: context, reason: reason)
        case .abortAfterClientTLSFailure(let tlsError):
            self.recorder.tlsHandshakeFailed(leg: .client, tlsError)
            self.abort(context: context, reason: "tls-handshake-failed: \(tlsError.summary)")
        case .forwardError:
            if let error { context.fireErrorCaught(error) }
        }
    }

    /// Picks the route's next upstream member and prepares its request with a fresh key (DESIGN §1.6),
    /// with the authorization stage's `grant` applied.
    func plan(_ request: ClientUpgradeRequest, grant: AuthorizationGrant = .none, context: ChannelHandlerContext) -> UpstreamPlan {
        let (member, upstream) = self.environment.pools[request.route.index].pick()
        self.credentialExpiresAt = grant.expiresAt
        self.recorder.upstreamPicked(upstream)
        let handshake = UpstreamHandshake(
            subprotocolsOffered: grant.offeredSubprotocols(request.subprotocols),
            deflateOffer: Self.upstreamDeflateOffer(request, budget: self.environment.compressionMemory, metrics: self.environment.metrics)
        )
        let head = handshake.requestHead(
            for: request,
            upstream: upstream,
            peer: self.peer,
            peerIsTrusted: self.environment.trustedProxies.contains(self.peer),
            clientUsedTLS: self.clientUsedTLS,
            clientCertificate: request.route.route.clientCertificate == .off ? nil : self.clientCertificate,
            grant: grant
        )
        return UpstreamPlan(member: member, upstream: upstream, handshake: handshake, requestHead: head)
    }

    /// Connects the planned member on this event loop under the connect-plus-handshake deadline
    /// (DESIGN §7: 504); the connect outcome feeds passive health and the metrics whatever the state.
    private func connectUpstream(context: ChannelHandlerContext, request: ClientUpgradeRequest, plan: UpstreamPlan) {
        let (handler, boundContext) = self.bound(context)
        let timeouts = self.environment.timeouts
        self.startUpstreamDeadline(context.eventLoop.now + TimeAmount(timeouts.upstreamConnect + timeouts.upstreamHandshake), context: context)
        let tls = self.upstreamTLS(request, plan)
        let pool = self.environment.pools[request.route.index]
        let recorder = self.recorder
        let routeName = request.route.route.label
        let member = plan.upstream.url
        let connectStart = NIODeadline.now()
        let leg = UpstreamLegHandler(receiver: self)
        self.upstreamLeg = leg
        let boundLeg = NIOLoopBound(leg, eventLoop: context.eventLoop)
        self.connector.connect(host: plan.upstream.host, port: plan.upstream.port, on: context.eventLoop) { channel in
            channel.eventLoop.makeCompletedFuture {
                try UpstreamHandshakePipeline.install(on: channel, tls: tls, leg: boundLeg.value)
            }
        }
        .assumeIsolated().whenComplete { result in
            switch result {
            case .failure(let error):
                // A channel that never reached a pipeline never answers.
                boundLeg.value.abandonAnswer()
                pool.report(plan.member, success: false)
                let timedOut = (error as? ChannelError).map { if case .connectTimeout = $0 { true } else { false } } ?? false
                recorder.upstreamConnectFailed(route: routeName, member: member, timedOut: timedOut)
                handler.value.perform(handler.value.machine.upstreamConnectFailed(timedOut: timedOut), context: boundContext.value)
            case .success(let channel):
                pool.report(plan.member, success: true)
                recorder.upstreamConnected(route: routeName, member: member, after: connectStart)
                handler.value.upstream = channel
                handler.value.perform(handler.value.machine.upstreamConnected(), context: boundContext.value)
            }
        }
    }

    /// The upstream's answer (``UpstreamLegHandler``), or why there is none.
    func upstreamAnswered(_ result: Result<UpstreamResponse, any Error>) {
        guard let context = self.context else { return }
        let answer: ClientConnectionStateMachine.UpstreamAnswer
        switch result {
        case .success(let response): answer = .response(response)
        case .failure(let error as TLSError) where error.code.isHandshakeFailure: answer = .tlsHandshakeFailed(error)
        case .failure: answer = .closed
        }
        self.perform(self.machine.upstreamAnswered(answer), context: context)
    }

    /// TLS toward a `wss://` member: the route's client context, the member's server name, the
    /// handshake deadline (DESIGN §1.6); nil for `ws://`.
    private func upstreamTLS(
        _ request: ClientUpgradeRequest,
        _ plan: UpstreamPlan
    ) -> (context: TLSClientContext, serverName: String, handshakeTimeout: TimeAmount)? {
        guard plan.upstream.scheme == .wss, let context = self.environment.tls.routes[request.route.index] else { return nil }
        let serverName = GatewayTLS.serverName(for: plan.upstream, of: request.route.route)
        return (context, serverName, TimeAmount(self.environment.timeouts.upstreamHandshake))
    }

    /// Step 1 of the switch (``UpgradePipelineSwitch``): neither channel has an HTTP decoder to remove
    /// (issue #15), so the machine learns at once whether the client sent early data. An HTTP/2 stream's
    /// codec passes DATA up as bytes from now on (early data until the relay is in place).
    private func prepareSwitch(context: ChannelHandlerContext) {
        guard let upstream = self.upstream, let upstreamLeg = self.upstreamLeg else {
            return self.perform(self.machine.pipelineFailed("no upstream channel"), context: context)
        }
        self.pipelineSwitch = UpgradePipelineSwitch(client: context.channel, upstream: upstream, upstreamLeg: upstreamLeg)
        if self.answerEncoding == .http2 { self.streamCodec(context)?.beginFrames() }
        self.perform(self.machine.switchPrepared(clientSentEarlyData: self.clientSentEarlyData), context: context)
    }

    /// Step 2: answer 101 (DESIGN §1.8) and hand both channels to a ``RelaySession``.
    private func startRelay(context: ChannelHandlerContext, request: ClientUpgradeRequest, agreement: ClientConnectionStateMachine.Agreement) {
        self.stopDeadlines()
        guard let pipelineSwitch = self.pipelineSwitch else {
            return self.perform(self.machine.pipelineFailed("no pipeline switch"), context: context)
        }
        var headers: [(String, String)] = []
        if let subprotocol = agreement.subprotocol { headers.append(("Sec-WebSocket-Protocol", subprotocol)) }
        let extensions = Self.negotiateExtensions(
            request,
            upstreamDeflate: agreement.upstreamDeflate,
            metrics: self.environment.metrics,
            budget: self.environment.compressionMemory
        )
        if let answer = extensions.clientAnswer { headers.append(("Sec-WebSocket-Extensions", answer)) }
        self.recorder.switched(subprotocol: agreement.subprotocol, extensions: extensions)
        self.writeSwitchAnswer(context: context, request: request, headers: headers)

        let session = RelaySession(
            eventLoop: context.eventLoop,
            limits: self.environment.limits,
            closeTimeout: TimeAmount(self.environment.timeouts.close),
            idleTimeout: TimeAmount(self.environment.timeouts.idle),
            policy: RelayPolicy(
                route: request.route.route,
                timeouts: self.environment.timeouts,
                metrics: self.environment.metrics,
                credentialExpiresAt: self.credentialExpiresAt
            ),
            compression: extensions.compression
        )
        self.recorder.relayStarted(session, route: request.route.route.label)
        self.observe(session, request: request, channel: context.channel)
        do {
            try pipelineSwitch.installRelay(session, after: self)
            // The relay handler is in place: a drain under way reaches it now, as the registry's
            // `ChannelShouldQuiesceEvent` (issue #10).
            self.environment.connections.attach(context.channel)
        } catch {
            self.perform(self.machine.pipelineFailed("\(error)"), context: context)
        }
    }

    // MARK: Ending

    /// Answers `rejection` and closes the client connection (and the upstream, if any). Nothing the
    /// client sends afterwards is read.
    private func refuse(context: ChannelHandlerContext, _ rejection: HandshakeRejection) {
        self.stopUpgrade()
        self.recorder.refused(rejection)
        context.channel.setOption(.autoRead, value: false).whenComplete { _ in }
        self.writeRefusal(context: context, rejection).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    /// Ends the connection without an answer (the client is gone, or the pipeline broke).
    private func abort(context: ChannelHandlerContext, reason: String) {
        self.stopUpgrade()
        context.close(promise: nil)
        self.recorder.aborted(reason)
    }

    /// Stops the deadlines and closes the upstream.
    private func stopUpgrade() {
        self.stopDeadlines()
        self.authorizationDeadline?.cancel()
        self.upstream?.close(promise: nil)
    }

    func bound(_ context: ChannelHandlerContext) -> (NIOLoopBound<ClientConnectionHandler>, NIOLoopBound<ChannelHandlerContext>) {
        (NIOLoopBound(self, eventLoop: context.eventLoop), NIOLoopBound(context, eventLoop: context.eventLoop))
    }
}

@available(*, unavailable)
extension ClientConnectionHandler: Sendable {}
