import CoreMetrics
import Frames
import TLSShim

// One method per recorded event, so each call site is one line with typed values. Every method records
// through a family declared in ``GatewayMetrics``; none builds a name or a label from a string.

extension GatewayMetrics {
    // MARK: Connection-level events (never per frame)

    func connectionAccepted(listener: String) {
        self.connectionsAccepted.increment(.init(listener: listener))
    }

    func sessionOpened(listener: String, route: String) {
        let labels = ListenerRouteLabels(listener: listener, route: route)
        self.connections.increment(labels)
        self.connectionsOpen.add(labels, 1)
    }

    /// A WebSocket opened over `protocol` (`http1`, `h2`; issue #16).
    func sessionOpened(listener: String, protocol: String) {
        self.connectionsByProtocol.increment(ListenerProtocolLabels(listener: listener, protocol: `protocol`))
    }

    /// A relayed connection ended: its per-direction figures, accumulated in the session, are added once.
    func sessionEnded(listener: String, route: String, clientToUpstream: (messages: Int, bytes: Int), upstreamToClient: (messages: Int, bytes: Int)) {
        self.connectionsOpen.add(.init(listener: listener, route: route), -1)
        for (direction, figures) in [(TrafficDirection.clientToUpstream, clientToUpstream), (.upstreamToClient, upstreamToClient)] {
            let labels = TrafficLabels(listener: listener, route: route, direction: direction)
            if figures.messages > 0 { self.messages.increment(labels, by: Int64(figures.messages)) }
            if figures.bytes > 0 { self.bytes.increment(labels, by: Int64(figures.bytes)) }
        }
    }

    /// A relayed connection ended; its traffic went to the counters as it flowed (``RelayTraffic``).
    func sessionClosed(listener: String, route: String) {
        self.connectionsOpen.add(.init(listener: listener, route: route), -1)
    }

    /// The message and byte counters of one connection's two directions, by source leg, for
    /// ``RelayTraffic`` (issue #14: counted as they flow, not at the end).
    func trafficCounters(listener: String, route: String) -> (messages: PerSide<Counter>, bytes: PerSide<Counter>) {
        let client = TrafficLabels(listener: listener, route: route, direction: .clientToUpstream)
        let upstream = TrafficLabels(listener: listener, route: route, direction: .upstreamToClient)
        return (
            PerSide(client: self.messages.counter(client), upstream: self.messages.counter(upstream)),
            PerSide(client: self.bytes.counter(client), upstream: self.bytes.counter(upstream))
        )
    }

    /// An upgrade request answered with an HTTP error.
    func upgradeRefused(listener: String, _ rejection: HandshakeRejection) {
        self.upgradesRefused.increment(.init(listener: listener, status: UpgradeStatusLabel(rejection)))
    }

    /// A close code on `side`'s leg: received from its peer, or sent (or, for 1006/1015, recorded) by the gateway.
    func close(side: Side, code: CloseCode?, byPeer: Bool) {
        self.closeCodes.increment(.init(side: side, code: CloseCodeLabel(code), by: byPeer ? .peer : .gateway))
    }

    /// A TLS handshake failed on `leg`; recorded as close code 1015 on that leg as well.
    func tlsHandshakeFailed(leg: Side, _ error: TLSError) {
        self.tlsHandshakeFailures.increment(.init(leg: leg, code: error.code))
        self.close(side: leg, code: .tlsHandshakeFailure, byPeer: false)
    }

    /// What became of a client certificate a listener asked for (issue #13).
    func clientCertificate(listener: String, _ outcome: ClientCertificateOutcome) {
        self.clientCertificates.increment(.init(listener: listener, outcome: outcome))
    }

    func protocolViolation(side: Side, _ error: FramesError) {
        self.protocolViolations.increment(.init(side: side, rule: error.code))
    }

    func upstreamConnected(route: String, member: String, seconds: Double) {
        self.upstreamConnectSeconds.record(.init(route: route, member: member), seconds)
    }

    func upstreamConnectFailed(route: String, member: String, timedOut: Bool) {
        self.upstreamConnectFailures.increment(.init(route: route, member: member, reason: timedOut ? .timeout : .refused))
    }

    // MARK: Operations

    func reloaded(_ result: ReloadResult) {
        self.reloads.increment(.init(result: result))
    }

    /// A drain started (`true`) or ended (`false`).
    func drainingChanged(_ draining: Bool) {
        self.draining.add(NoLabels(), draining ? 1 : -1)
    }

    func drained(_ end: DrainEnd, count: Int) {
        if count > 0 { self.drainedConnections.increment(.init(result: end), by: Int64(count)) }
    }

    // MARK: Policies (issue #5)

    /// An origin check on `route` (always the client's `Origin`), with the rule that decided.
    func originDecided(route: String, _ decision: OriginDecision, reason: CompiledOriginPolicy.Reason) {
        self.originDecisions.increment(.init(route: route, side: .client, decision: decision, reason: reason))
    }

    /// An authorizer's decision on an upgrade to `route` (issue #13).
    func authDecided(route: String, method: String, outcome: String) {
        self.authDecisions.increment(.init(route: route, method: method, outcome: outcome))
    }

    func rateLimited(route: String, side: Side, limit: RateLimiter.Limit, action: RateLimitAction) {
        self.rateLimitDecisions.increment(.init(route: route, side: side, limit: limit, action: action))
    }

    func connectionLimitRefused(listener: String, _ limit: ConnectionLimit) {
        self.connectionLimitRefusals.increment(.init(listener: listener, limit: limit))
    }

    func proxyProtocolRefused(listener: String, _ reason: ProxyProtocolRefusal) {
        self.proxyProtocolRefusals.increment(.init(listener: listener, reason: reason))
    }

    func acceptPaused(listener: String, _ error: AcceptError) {
        self.acceptErrors.increment(.init(listener: listener, error: error))
    }

    func keepAliveTimedOut(route: String, side: Side) {
        self.keepAliveTimeouts.increment(.init(route: route, side: side))
    }

    func frameDeadlineClosed(route: String, side: Side) {
        self.frameDeadlineCloses.increment(.init(route: route, side: side))
    }

    func maxLifetimeClosed(route: String) {
        self.maxLifetimeCloses.increment(.init(route: route))
    }

    // MARK: permessage-deflate (issue #5 A)

    func extensionDecided(route: String, side: Side, extension name: String, _ decision: ExtensionDecision) {
        self.extensionDecisions.increment(.init(route: route, side: side, extensionName: name, decision: decision))
    }

    func droppedExtensions(route: String, side: Side, count: Int) {
        if count > 0 { self.extensionsDropped.increment(.init(route: route, side: side), by: Int64(count)) }
    }

    // MARK: Compression (issue #10)

    /// Messages sent uncompressed toward `side` (a leg that negotiated compression) because deflating
    /// them did not make them smaller; added when the connection ends.
    func uncompressedMessages(route: String, side: Side, count: Int) {
        if count > 0 { self.compressionUncompressedMessages.increment(.init(route: route, side: side), by: Int64(count)) }
    }

    /// permessage-deflate not negotiated on `side` because `limits.compression_memory` was spent.
    func compressionMemoryDeclined(route: String, side: Side) {
        self.compressionMemoryDeclines.increment(.init(route: route, side: side))
    }
}
