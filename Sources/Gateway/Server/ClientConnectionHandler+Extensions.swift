import Frames

/// The extension policy of the handshake (DESIGN §1.6–1.8, §4): what is offered upstream, what the
/// client is answered, and the counters for each decision.
extension ClientConnectionHandler {
    /// What the handshake settled about extensions.
    struct ExtensionOutcome {
        /// The `Sec-WebSocket-Extensions` value of the 101 to the client, if any.
        var clientAnswer: String?
        /// The upstream leg's agreement as a header value (for the access log), if any.
        var upstreamAgreement: String?
        var compression: RelayCompression
    }

    /// The permessage-deflate element offered upstream when the route's upstream leg negotiates. The
    /// client's offers are never forwarded: the gateway terminates the extension per hop.
    ///
    /// Issue #10 item 7: not offered when `budget` cannot hold what the upstream leg may cost; counted in
    /// `wsgate_compression_memory_declines_total{route, side}`.
    static func upstreamDeflateOffer(
        _ request: ClientUpgradeRequest,
        budget: CompressionMemoryBudget? = nil,
        metrics: GatewayMetrics? = nil
    ) -> ExtensionOffer? {
        let policy = request.route.route.extensions.permessageDeflate
        guard policy.upstream.isNegotiate else { return nil }
        if let budget, !budget.fits(RelayCompression(policy: policy).upstreamLegMemory(nil)) {
            metrics?.compressionMemoryDeclined(route: request.route.route.label, side: .upstream)
            return nil
        }
        return PerMessageDeflate.clientOffer(policy.preferences)
    }

    /// Decides the client leg once the upstream's answer is known, and counts every decision:
    /// `wsgate_extension_decisions_total{route, side, extension, decision}` once per side, with
    /// `decision` one of `negotiated`, `declined` (negotiate, but no acceptable offer or the upstream
    /// did not accept), `stripped` (policy strip, and on the client leg the client offered it) and
    /// `not-offered` (the client offered nothing); `wsgate_extensions_dropped_total{route, side}` for
    /// each offered extension the gateway does not implement (never forwarded).
    ///
    /// When both legs negotiate, the client is answered with the upstream's parameters if its offer
    /// allows that answer, so compressed payloads can be forwarded verbatim.
    static func negotiateExtensions(
        _ request: ClientUpgradeRequest,
        upstreamDeflate: PerMessageDeflateParameters?,
        metrics: GatewayMetrics,
        budget: CompressionMemoryBudget? = nil
    ) -> ExtensionOutcome {
        let policy = request.route.route.extensions.permessageDeflate
        let route = request.route.route.label
        func decision(_ side: Side, _ decision: ExtensionDecision) {
            metrics.extensionDecided(route: route, side: side, extension: PerMessageDeflate.extensionName, decision)
        }
        let offers = request.extensionOffers
        let clientOffersDeflate = offers.contains { PerMessageDeflate.isPerMessageDeflate($0.name) }
        let others = offers.filter { !PerMessageDeflate.isPerMessageDeflate($0.name) }.count
        metrics.droppedExtensions(route: route, side: .client, count: others)

        var outcome = ExtensionOutcome(compression: RelayCompression(policy: policy))
        if policy.upstream.isNegotiate {
            decision(.upstream, upstreamDeflate == nil ? .declined : .negotiated)
            outcome.compression.upstream = upstreamDeflate
            outcome.upstreamAgreement = upstreamDeflate?.description
        } else {
            decision(.upstream, .stripped)
        }

        if policy.client.isNegotiate {
            let negotiation = PerMessageDeflate.negotiateAsServer(
                offers: offers,
                preferences: policy.preferences,
                matching: upstreamDeflate
            )
            if let (parameters, response) = negotiation.accepted,
                Self.reserveCompressionMemory(&outcome.compression, client: parameters, budget: budget, metrics: metrics, route: route)
            {
                decision(.client, .negotiated)
                outcome.compression.client = parameters
                outcome.clientAnswer = ExtensionHeader.serialize([response])
            } else {
                decision(.client, clientOffersDeflate ? .declined : .notOffered)
            }
        } else {
            decision(.client, clientOffersDeflate ? .stripped : .notOffered)
        }
        if outcome.compression.reservation == nil {
            _ = Self.reserveCompressionMemory(&outcome.compression, client: nil, budget: budget, metrics: metrics, route: route)
        }
        return outcome
    }

    /// Issue #10 item 7: reserves what the agreed legs may hold in zlib memory (the upstream agreement
    /// already in `compression`, plus the `client` agreement about to be answered). Returns false when
    /// the budget cannot hold the client leg: it is then declined (the connection opens plain), counted
    /// in `wsgate_compression_memory_declines_total`. An upstream agreement is already made and is
    /// reserved regardless (its offer was checked against the budget, so only a race overshoots).
    private static func reserveCompressionMemory(
        _ compression: inout RelayCompression,
        client: PerMessageDeflateParameters?,
        budget: CompressionMemoryBudget?,
        metrics: GatewayMetrics,
        route: String
    ) -> Bool {
        guard let budget else { return true }
        let upstreamBytes = compression.upstream.map { compression.upstreamLegMemory($0) } ?? 0
        let clientBytes = client.map { compression.clientLegMemory($0) } ?? 0
        guard upstreamBytes + clientBytes > 0 else { return true }
        if let reservation = budget.reserve(upstreamBytes + clientBytes) {
            compression.reservation = reservation
            return true
        }
        if upstreamBytes > 0 { compression.reservation = budget.reserve(upstreamBytes, force: true) }
        guard clientBytes > 0 else { return true }
        metrics.compressionMemoryDeclined(route: route, side: .client)
        return false
    }
}
