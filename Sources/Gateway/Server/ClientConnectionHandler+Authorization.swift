import NIOCore

/// The authorization stage (issue #13, ``UpgradeAuthorizer``): the route's authorizers run one after
/// the other on this connection's event loop (`jwt`, then `forward`), stopping at the first refusal,
/// under one deadline (the sum of their own, plus a second). Each is told when the client goes away
/// (its channel's close future), so that an authorizer doing I/O stops at once.
extension ClientConnectionHandler {
    /// Slack over the authorizers' own deadlines: they answer first (with their own status) unless one
    /// of them is broken.
    static let authorizationDeadlineSlack = TimeAmount.seconds(1)

    /// Performs ``ClientConnectionStateMachine/Action/authorize(_:)``.
    func authorize(_ request: ClientUpgradeRequest, context: ChannelHandlerContext) {
        let authorizers = self.environment.authorizers[request.route.index]
        let (handler, boundContext) = self.bound(context)
        let deadline = authorizers.reduce(Self.authorizationDeadlineSlack) { $0 + $1.deadline }
        self.authorizationDeadline = context.eventLoop.scheduleTask(in: deadline) {
            handler.value.perform(handler.value.machine.authorizationDeadlinePassed(), context: boundContext.value)
        }
        self.runAuthorizers(authorizers[...], request: request, grant: .none, context: context)
    }

    /// Runs the first of `remaining`; on allow, the rest with the merged grant; at the end, reports the
    /// merged grant. Stops as soon as the machine left `authorizing` (client gone, deadline).
    private func runAuthorizers(
        _ remaining: ArraySlice<any UpgradeAuthorizer>,
        request: ClientUpgradeRequest,
        grant: AuthorizationGrant,
        context: ChannelHandlerContext
    ) {
        guard case .authorizing = self.machine.state else { return }
        guard let authorizer = remaining.first else {
            self.authorizationDeadline?.cancel()
            let action = self.machine.authorized(grant) { request, grant in self.plan(request, grant: grant, context: context) }
            return self.perform(action, context: context)
        }
        let (handler, boundContext) = self.bound(context)
        authorizer.authorize(
            AuthorizationContext(
                request: request,
                clientAddress: self.resolvedClientAddress,
                clientUsedTLS: self.clientUsedTLS,
                clientCertificate: self.clientCertificate,
                listener: self.recorder.record.listener
            ),
            on: context.eventLoop,
            abandoned: context.channel.closeFuture
        )
        .hop(to: context.eventLoop)
        .assumeIsolated()
        .whenComplete { result in
            let handler = handler.value
            let context = boundContext.value
            switch result {
            case .success(.allow(let more)):
                var merged = grant
                merged.merge(more)
                handler.runAuthorizers(remaining.dropFirst(), request: request, grant: merged, context: context)
            case .success(.deny(let rejection)):
                handler.authorizationDeadline?.cancel()
                handler.perform(handler.machine.authorizationRefused(rejection), context: context)
            case .failure(let error):
                // An authorizer that fails instead of answering is a broken dependency: never allow.
                handler.authorizationDeadline?.cancel()
                let rejection = HandshakeRejection(500, "authorization failed: \(error)", reason: "auth-error")
                handler.perform(handler.machine.authorizationRefused(rejection), context: context)
            }
        }
    }
}
