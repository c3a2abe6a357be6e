import Frames
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOTLS
import TLSShim

/// Drives one client connection from its upgrade request to the relay (DESIGN §1): validates the
/// request, routes it, connects the upstream on the same event loop, sends the upstream request, checks
/// the answer, answers the client, and then replaces the HTTP handlers of both channels by
/// ``RelayHandler``s. Every refusal is an exact HTTP answer followed by closing the connection, and
/// nothing the client sends after a refused request is read.
final class ClientConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart

    fileprivate enum State {
        case awaitingHead
        /// The request is valid; the upstream is being connected and asked.
        case upstreamHandshake(ClientUpgradeRequest)
        case relaying
        case done
    }

    private let environment: GatewayEnvironment
    private let clientUsedTLS: Bool
    private var record: ConnectionRecord
    private var state: State = .awaitingHead
    private var headDeadline: Scheduled<Void>?
    private var upstreamDeadline: Scheduled<Void>?
    private var upstreamChannel: (any Channel)?

    init(environment: GatewayEnvironment, record: ConnectionRecord, clientUsedTLS: Bool) {
        self.environment = environment
        self.record = record
        self.clientUsedTLS = clientUsedTLS
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        self.headDeadline = context.eventLoop.scheduleTask(in: TimeAmount(self.environment.timeouts.requestHead)) {
            guard case .awaitingHead = handler.value.state else { return }
            handler.value.refuse(
                context: boundContext.value,
                HandshakeRejection(408, "the request head did not arrive in time", reason: "head-timeout")
            )
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            guard case .awaitingHead = self.state else {
                // A second request before the first was answered: pipelining is not an upgrade.
                return self.refuse(context: context, HandshakeRejection(400, "data before the handshake completed", reason: "early-data"))
            }
            self.headDeadline?.cancel()
            if self.environment.connections.isDraining {
                return self.refuse(context: context, HandshakeRejection(503, "the gateway is shutting down", reason: "draining"))
            }
            if let rejection = self.handshakeRateRejection() { return self.refuse(context: context, rejection) }
            switch ClientUpgradeRequest.validate(head, limits: self.environment.limits, routes: self.environment.routes) {
            case .failure(let rejection):
                self.refuse(context: context, rejection)
            case .success(let request):
                self.record.route = request.route.route.pathPrefix
                if let rejection = self.originRejection(request) { return self.refuse(context: context, rejection) }
                self.state = .upstreamHandshake(request)
                self.connectUpstream(context: context, request: request)
            }
        case .body, .end:
            // A GET upgrade request has no body (checked on its head); `.end` carries nothing.
            break
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event,
            let info = try? context.pipeline.syncOperations.handler(type: TLSHandler.self).connectionInfo
        {
            self.record.tlsVersion = info.version.description
            self.record.tlsCipher = info.cipherSuite
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let tlsError = error as? TLSError, tlsError.code.isHandshakeFailure {
            // No HTTP answer is possible (a plain HTTP request got its clear-text 400 from the TLS handler);
            // the connection is recorded as lost to a failed TLS handshake
            // (close code 1015, never sent in a Close frame: RFC 6455 §7.4.1).
            self.record.closeCode = Int(CloseCode.tlsHandshakeFailure.rawValue)
            self.record.closedBy = "gateway"
            self.environment.metrics.tlsHandshakeFailed(leg: .client, tlsError)
            return self.abort(context: context, refusal: "tls-handshake-failed: \(tlsError.summary)")
        }
        switch self.state {
        case .awaitingHead, .upstreamHandshake:
            if error is RequestBytesLimiter.LimitExceeded {
                if case .awaitingHead = self.state {
                    self.refuse(context: context, HandshakeRejection(431, "request head over \(self.environment.limits.requestHeadBytes) bytes", reason: "head-too-large"))
                } else {
                    self.refuse(context: context, HandshakeRejection(400, "data before the handshake completed", reason: "early-data"))
                }
            } else if error is HTTPParserError {
                let reason = self.state.isAwaitingHead ? "malformed request" : "data before the handshake completed"
                self.refuse(context: context, HandshakeRejection(400, reason, reason: self.state.isAwaitingHead ? "malformed" : "early-data"))
            } else {
                self.abort(context: context, refusal: "client error: \(error)")
            }
        case .relaying, .done:
            context.fireErrorCaught(error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch self.state {
        case .awaitingHead, .upstreamHandshake:
            self.abort(context: context, refusal: "client closed during the handshake")
        case .relaying, .done:
            break
        }
        context.fireChannelInactive()
    }

    // MARK: Upstream

    private func connectUpstream(context: ChannelHandlerContext, request: ClientUpgradeRequest) {
        let pool = self.environment.pools[request.route.index]
        let (member, upstream) = pool.pick()
        self.record.upstream = upstream.url
        let tlsContext = upstream.scheme == .wss ? self.environment.tls.routes[request.route.index] : nil
        let serverName = GatewayTLS.serverName(for: upstream, of: request.route.route)
        let tlsHandshakeTimeout = TimeAmount(self.environment.timeouts.upstreamHandshake)
        let handshake = UpstreamHandshake(subprotocolsOffered: request.subprotocols, deflateOffer: Self.upstreamDeflateOffer(request))
        let responsePromise = context.eventLoop.makePromise(of: UpstreamResponse.self)
        let limits = self.environment.limits
        let bootstrap = ClientBootstrap(group: context.eventLoop)
            .connectTimeout(TimeAmount(self.environment.timeouts.upstreamConnect))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: .init(low: limits.bufferLowWatermark, high: limits.bufferHighWatermark))
            .channelOption(.recvAllocator, value: RelayResources.receiveAllocator)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tlsContext {
                        try channel.pipeline.syncOperations.addHandler(
                            TLSHandler.client(context: tlsContext, serverName: serverName, configuration: .init { $0.handshakeTimeout = tlsHandshakeTimeout })
                        )
                    }
                    // The encoder sits before the decoder: the decoder watches outbound request parts.
                    try channel.pipeline.syncOperations.addHandler(HTTPRequestEncoder())
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes))
                    )
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandshakeHandler(promise: responsePromise))
                }
            }
        let clientAddress = context.channel.remoteAddress?.ipAddress
        let requestHead = handshake.requestHead(
            for: request,
            upstream: upstream,
            clientAddress: clientAddress,
            clientUsedTLS: self.clientUsedTLS
        )
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        self.upstreamDeadline = context.eventLoop.scheduleTask(
            in: TimeAmount(self.environment.timeouts.upstreamConnect + self.environment.timeouts.upstreamHandshake)
        ) {
            guard case .upstreamHandshake = handler.value.state else { return }
            handler.value.refuse(context: boundContext.value, HandshakeRejection(504, "the upstream did not answer in time", reason: "upstream-timeout"))
        }
        let metrics = self.environment.metrics
        let routeName = request.route.route.label
        let connectStart = NIODeadline.now()
        // An IP literal needs no resolution: NIO's `connect(host:port:)` runs getaddrinfo and Happy
        // Eyeballs for it anyway, about a third of the CPU of each proxied connection.
        let connecting: EventLoopFuture<any Channel>
        if let address = try? SocketAddress(ipAddress: upstream.host, port: upstream.port) {
            connecting = bootstrap.connect(to: address)
        } else {
            connecting = bootstrap.connect(host: upstream.host, port: upstream.port)
        }
        connecting.assumeIsolated().whenComplete { result in
            switch result {
            case .failure(let error):
                pool.report(member, success: false)
                let timedOut = (error as? ChannelError).map { if case .connectTimeout = $0 { true } else { false } } ?? false
                metrics.upstreamConnectFailed(route: routeName, member: upstream.url, timedOut: timedOut)
                handler.value.refuse(
                    context: boundContext.value,
                    timedOut
                        ? HandshakeRejection(504, "connecting to the upstream timed out", reason: "upstream-connect-timeout")
                        : HandshakeRejection(502, "cannot connect to the upstream", reason: "upstream-connect-failed")
                )
            case .success(let channel):
                pool.report(member, success: true)
                metrics.upstreamConnected(
                    route: routeName,
                    member: upstream.url,
                    seconds: Double((NIODeadline.now() - connectStart).nanoseconds) / 1e9
                )
                guard case .upstreamHandshake = handler.value.state else {
                    channel.close(promise: nil)
                    return
                }
                handler.value.upstreamChannel = channel
                channel.write(HTTPClientRequestPart.head(requestHead), promise: nil)
                channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            }
        }
        responsePromise.futureResult.assumeIsolated().whenComplete { result in
            handler.value.upstreamAnswered(context: boundContext.value, request: request, handshake: handshake, result: result)
        }
    }

    private func upstreamAnswered(
        context: ChannelHandlerContext,
        request: ClientUpgradeRequest,
        handshake: UpstreamHandshake,
        result: Result<UpstreamResponse, any Error>
    ) {
        guard case .upstreamHandshake = self.state else { return }
        switch result {
        case .failure(let error as TLSError) where error.code.isHandshakeFailure:
            // DESIGN §1.7: 502 with the classified reason; recorded as close code 1015.
            self.record.closeCode = Int(CloseCode.tlsHandshakeFailure.rawValue)
            self.record.closedBy = "gateway"
            self.environment.metrics.tlsHandshakeFailed(leg: .upstream, error)
            self.refuse(
                context: context,
                HandshakeRejection(
                    502,
                    "upstream TLS handshake failed: \(error.summary)",
                    reason: "upstream-tls-handshake-failed",
                    headers: [("X-Wsgate-Error", "upstream-tls-handshake-failed")]
                )
            )
        case .failure:
            self.refuse(context: context, HandshakeRejection(502, "the upstream closed the connection without answering", reason: "upstream-no-answer"))
        case .success(let response):
            switch handshake.check(response.head) {
            case .accepted(let subprotocol, let deflate):
                self.switchToRelay(context: context, request: request, subprotocol: subprotocol, upstreamDeflate: deflate)
            case .invalid(let why):
                self.refuse(context: context, HandshakeRejection(502, "invalid upgrade answer from the upstream: \(why)", reason: "upstream-invalid-101"))
            case .refused(let status):
                let headers = response.head.headers.filter { Self.relayedResponseHeaders.contains($0.name.lowercased()) }
                var body = response.body
                let relayed = HTTPResponse(
                    status: status,
                    reason: response.head.status.reasonPhrase,
                    headers: headers.map { ($0.name, $0.value) } + [("Connection", "close")],
                    body: body.readBytes(length: body.readableBytes) ?? []
                )
                self.refuse(context: context, HandshakeRejection(response: relayed, reason: HandshakeRejection.upstreamRefusedReason))
            }
        }
    }

    /// Headers of an upstream's non-101 answer that are relayed to the client; the rest (hop-by-hop,
    /// framing, WebSocket handshake headers) are not.
    static let relayedResponseHeaders: Set<String> = [
        "content-type", "content-language", "cache-control", "retry-after", "www-authenticate", "location",
        "set-cookie", "vary",
    ]

    // MARK: Switching to frames

    /// Step 1 of the switch: remove the HTTP decoders of both channels. `ByteToMessageHandler` hands over
    /// the bytes it still holds on a later tick and completes its removal after that, so collectors take
    /// those bytes and step 2 waits for both removals. (The upstream's decoder also watches outbound
    /// writes, so nothing may be written to the upstream until it is gone.)
    private func switchToRelay(
        context: ChannelHandlerContext,
        request: ClientUpgradeRequest,
        subprotocol: String?,
        upstreamDeflate: PerMessageDeflateParameters?
    ) {
        guard case .upstreamHandshake = self.state, let upstream = self.upstreamChannel else { return }
        do {
            // Bytes the client sent after its request, before our 101, are a violation (RFC 6455 §4.1:
            // the client waits for the answer).
            let clientCollector = LeftoverBytesCollector()
            let clientRemoved = try Self.removeDecoder(
                ByteToMessageHandler<HTTPRequestDecoder>.self,
                from: context.channel,
                collector: clientCollector
            )
            // Frames the upstream sent right behind its 101 are relayed once the relay is in place.
            let upstreamCollector = LeftoverBytesCollector()
            let upstreamPipeline = upstream.pipeline.syncOperations
            upstreamPipeline.removeHandler(try upstreamPipeline.handler(type: UpstreamHandshakeHandler.self), promise: nil)
            upstreamPipeline.removeHandler(try upstreamPipeline.handler(type: HTTPRequestEncoder.self), promise: nil)
            let upstreamRemoved = try Self.removeDecoder(
                ByteToMessageHandler<HTTPResponseDecoder>.self,
                from: upstream,
                collector: upstreamCollector
            )
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            clientRemoved.and(upstreamRemoved).assumeIsolated().whenComplete { _ in
                handler.value.finishSwitch(
                    context: boundContext.value,
                    request: request,
                    subprotocol: subprotocol,
                    upstreamDeflate: upstreamDeflate,
                    clientCollector: clientCollector,
                    upstreamCollector: upstreamCollector
                )
            }
        } catch {
            self.abort(context: context, refusal: "pipeline: \(error)")
        }
    }

    /// Puts `collector` right behind the decoder of type `type` and removes the decoder.
    private static func removeDecoder<Decoder: RemovableChannelHandler>(
        _ type: Decoder.Type,
        from channel: any Channel,
        collector: LeftoverBytesCollector
    ) throws -> EventLoopFuture<Void> {
        let pipeline = channel.pipeline.syncOperations
        let decoder = try pipeline.handler(type: type)
        try pipeline.addHandler(collector, position: .after(decoder))
        let removed = channel.eventLoop.makePromise(of: Void.self)
        pipeline.removeHandler(decoder, promise: removed)
        return removed.futureResult
    }

    /// Step 2: answer 101 and put ``RelayHandler``s on both channels (same event loop).
    private func finishSwitch(
        context: ChannelHandlerContext,
        request: ClientUpgradeRequest,
        subprotocol: String?,
        upstreamDeflate: PerMessageDeflateParameters?,
        clientCollector: LeftoverBytesCollector,
        upstreamCollector: LeftoverBytesCollector
    ) {
        guard case .upstreamHandshake = self.state, let upstream = self.upstreamChannel else { return }
        if let early = clientCollector.bytes, early.readableBytes > 0 {
            return self.refuse(context: context, HandshakeRejection(400, "data before the handshake completed", reason: "early-data"))
        }
        let pipeline = context.pipeline.syncOperations
        do {
            var headers: [(String, String)] = [
                ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", HandshakeKey.acceptValue(forKey: request.key)),
            ]
            if let subprotocol { headers.append(("Sec-WebSocket-Protocol", subprotocol)) }
            let extensions = Self.negotiateExtensions(request, upstreamDeflate: upstreamDeflate, metrics: self.environment.metrics)
            if let answer = extensions.clientAnswer { headers.append(("Sec-WebSocket-Extensions", answer)) }
            self.record.clientExtensions = extensions.clientAnswer
            self.record.upstreamExtensions = extensions.upstreamAgreement
            var bytes = context.channel.allocator.buffer(capacity: 256)
            HTTPResponse(status: 101, headers: headers).write(to: &bytes)
            context.writeAndFlush(NIOAny(bytes), promise: nil)
            self.record.status = 101
            self.record.subprotocol = subprotocol
            self.upstreamDeadline?.cancel()
            self.state = .relaying

            let session = RelaySession(
                eventLoop: context.eventLoop,
                limits: self.environment.limits,
                closeTimeout: TimeAmount(self.environment.timeouts.close),
                idleTimeout: TimeAmount(self.environment.timeouts.idle),
                policy: RelayPolicy(route: request.route.route, timeouts: self.environment.timeouts, metrics: self.environment.metrics),
                compression: extensions.compression
            )
            var record = self.record
            let accessLog = self.environment.accessLog
            // Operations (issue #6): metrics for the session, and the drain's hold on it.
            let metrics = self.environment.metrics
            let routeName = request.route.route.label
            session.operations.metrics = metrics
            metrics.sessionOpened(listener: record.listener, route: routeName)
            let boundSession = NIOLoopBound(session, eventLoop: context.eventLoop)
            self.environment.connections.attach(
                context.channel,
                drain: { boundSession.value.drain() },
                forceClose: { boundSession.value.forceClose() }
            )
            session.onFinish = { outcome, stats in
                metrics.sessionEnded(
                    listener: record.listener,
                    route: routeName,
                    clientToUpstream: (stats.client.messages, stats.client.bytes),
                    upstreamToClient: (stats.upstream.messages, stats.upstream.bytes)
                )
                record.clientMessages = stats.client.messages
                record.clientBytes = stats.client.bytes
                record.upstreamMessages = stats.upstream.messages
                record.upstreamBytes = stats.upstream.bytes
                record.closeCode = outcome?.code.map { Int($0.rawValue) }
                record.closedBy = outcome?.closedBy
                accessLog.record(record)
            }
            try pipeline.addHandler(RelayHandler(side: .client, session: session), position: .after(self))
            pipeline.removeHandler(clientCollector, promise: nil)
            if let limiter = try? pipeline.handler(type: RequestBytesLimiter.self) {
                pipeline.removeHandler(limiter, promise: nil)
            }
            let upstreamPipeline = upstream.pipeline.syncOperations
            try upstreamPipeline.addHandler(RelayHandler(side: .upstream, session: session), position: .after(upstreamCollector))
            upstreamPipeline.removeHandler(upstreamCollector, promise: nil)
            pipeline.removeHandler(self, promise: nil)
            if var early = upstreamCollector.bytes {
                session.read(from: .upstream, &early)
                session.readComplete(from: .upstream)
            }
            if !upstream.isActive { session.inactive(.upstream) }
        } catch {
            self.abort(context: context, refusal: "pipeline: \(error)")
        }
    }

    // MARK: Ending

    /// Answers `rejection` and closes the client connection (and the upstream, if any). Nothing the
    /// client sends afterwards is read.
    private func refuse(context: ChannelHandlerContext, _ rejection: HandshakeRejection) {
        guard self.end() else { return }
        self.environment.metrics.upgradeRefused(listener: self.record.listener, rejection)
        context.channel.setOption(.autoRead, value: false).whenComplete { _ in }
        var bytes = context.channel.allocator.buffer(capacity: 256)
        rejection.response.write(to: &bytes)
        context.writeAndFlush(NIOAny(bytes)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
        self.record.status = rejection.response.status
        self.record.refusal = rejection.reason
        self.environment.accessLog.record(self.record)
    }

    /// Ends the connection without an answer (the client is gone, or the pipeline broke).
    private func abort(context: ChannelHandlerContext, refusal: String) {
        guard self.end() else { return }
        context.close(promise: nil)
        self.record.refusal = refusal
        self.environment.accessLog.record(self.record)
    }

    /// Moves to `.done` once: stops the deadlines and closes the upstream. False if already ended.
    private func end() -> Bool {
        guard !self.state.isFinal else { return false }
        self.state = .done
        self.headDeadline?.cancel()
        self.upstreamDeadline?.cancel()
        self.upstreamChannel?.close(promise: nil)
        return true
    }
}

extension ClientConnectionHandler.State {
    fileprivate var isFinal: Bool {
        switch self {
        case .relaying, .done: true
        case .awaitingHead, .upstreamHandshake: false
        }
    }

    fileprivate var isAwaitingHead: Bool {
        if case .awaitingHead = self { return true }
        return false
    }
}

@available(*, unavailable)
extension ClientConnectionHandler: Sendable {}

// MARK: - Policies (issue #5 B–C): origin and per-IP handshake rate

extension ClientConnectionHandler {
    /// DESIGN §1.5: the route's origin policy, judged against this listener's scheme. Counted once per
    /// decision, allowed or refused.
    fileprivate func originRejection(_ request: ClientUpgradeRequest) -> HandshakeRejection? {
        let decision = self.environment.originPolicies[request.route.index].check(request.origin, listenerUsesTLS: self.clientUsedTLS)
        let route = request.route.route.label
        switch decision {
        case .allowed(let reason):
            self.environment.metrics.originDecided(route: route, .allow, reason: reason)
            return nil
        case .refused(let reason, let message):
            self.environment.metrics.originDecided(route: route, .refuse, reason: reason)
            return HandshakeRejection(403, message, reason: "origin-\(reason)")
        }
    }

    /// DESIGN §5: upgrade requests per second per client IP; over it, 429 with `Retry-After`.
    fileprivate func handshakeRateRejection() -> HandshakeRejection? {
        guard let retryAfter = self.environment.admission.admitHandshake(ip: self.record.clientAddress) else { return nil }
        self.environment.metrics.connectionLimitRefused(listener: self.record.listener, .ipHandshakeRate)
        return HandshakeRejection(
            429,
            "too many upgrade requests from this address",
            reason: "ip-handshake-rate",
            headers: [("Retry-After", String(max(1, retryAfter)))]
        )
    }
}
