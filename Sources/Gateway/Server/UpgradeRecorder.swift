import Frames
import NIOCore
import TLSShim

/// The one place where a connection's upgrade is recorded: its ``ConnectionRecord`` (one access-log
/// line when the connection ends, DESIGN §6) and the metrics of each outcome. The protocol steps
/// (``ClientConnectionStateMachine``) only say what happened; ``ClientConnectionHandler`` tells this
/// recorder.
struct UpgradeRecorder {
    private(set) var record: ConnectionRecord
    let metrics: GatewayMetrics
    let accessLog: AccessLog

    init(record: ConnectionRecord, metrics: GatewayMetrics, accessLog: AccessLog) {
        self.record = record
        self.metrics = metrics
        self.accessLog = accessLog
    }

    /// The client's TLS handshake completed. An HTTP/2 stream records its connection's TLS without
    /// counting the certificate again (`countsClientCertificate: false`).
    mutating func clientTLSEstablished(_ info: TLSConnectionInfo, countsClientCertificate: Bool = true) {
        self.record.tlsVersion = info.version.description
        self.record.tlsCipher = info.cipherSuite
        self.record.clientCertificateSubject = info.peerCertificate?.subject
        if countsClientCertificate, info.clientCertificateRequested {
            self.metrics.clientCertificate(listener: self.record.listener, info.peerCertificate == nil ? .notPresented : .verified)
        }
    }

    /// The client address learnt after accept (a PROXY protocol header, or `client_address: chain`;
    /// issue #11).
    mutating func clientAddressResolved(_ address: IPAddress) {
        self.record.clientAddress = address.description
    }

    /// The request matched a route.
    mutating func routed(_ request: ClientUpgradeRequest) {
        self.record.route = request.route.route.pathPrefix
    }

    /// The pool picked `upstream` for this connection.
    mutating func upstreamPicked(_ upstream: GatewayConfiguration.Upstream) {
        self.record.upstream = upstream.url
    }

    func upstreamConnected(route: String, member: String, after start: NIODeadline) {
        self.metrics.upstreamConnected(route: route, member: member, seconds: Double((NIODeadline.now() - start).nanoseconds) / 1e9)
    }

    func upstreamConnectFailed(route: String, member: String, timedOut: Bool) {
        self.metrics.upstreamConnectFailed(route: route, member: member, timedOut: timedOut)
    }

    /// A TLS handshake failed on `leg`: recorded with close code 1015 (never sent in a Close frame,
    /// RFC 6455 §7.4.1) and counted by class.
    mutating func tlsHandshakeFailed(leg: Side, _ error: TLSError) {
        self.record.closeCode = Int(CloseCode.tlsHandshakeFailure.rawValue)
        self.record.closedBy = "gateway"
        self.metrics.tlsHandshakeFailed(leg: leg, error)
        if leg == .client, let outcome = ClientCertificateOutcome(failure: error.code) {
            self.metrics.clientCertificate(listener: self.record.listener, outcome)
        }
    }

    /// The handshake was refused with `rejection`: counted, and the connection's line is written.
    mutating func refused(_ rejection: HandshakeRejection) {
        self.metrics.upgradeRefused(listener: self.record.listener, rejection)
        self.record.status = rejection.response.status
        self.record.refusal = rejection.reason
        self.accessLog.record(self.record)
    }

    /// The connection ended without an answer: the connection's line is written.
    mutating func aborted(_ reason: String) {
        self.record.refusal = reason
        self.accessLog.record(self.record)
    }

    /// The client was answered 101.
    mutating func switched(subprotocol: String?, extensions: ClientConnectionHandler.ExtensionOutcome) {
        self.record.clientExtensions = extensions.clientAnswer
        self.record.upstreamExtensions = extensions.upstreamAgreement
        // RFC 8441 §5: an HTTP/2 stream is answered 200, an HTTP/1.1 upgrade 101.
        self.record.status = self.record.httpProtocol == ClientAnswerEncoding.http2.label ? 200 : 101
        self.record.subprotocol = subprotocol
    }

    /// The relay started on `route`: the session is counted as open, and when it finishes its figures
    /// and close are counted and the connection's line is written.
    func relayStarted(_ session: RelaySession, route: String) {
        var record = self.record
        let accessLog = self.accessLog
        let metrics = self.metrics
        session.operations.metrics = metrics
        metrics.sessionOpened(listener: record.listener, route: route)
        // Issue #14: messages and bytes reach the counters as they flow; the end flushes the rest.
        let counters = metrics.trafficCounters(listener: record.listener, route: route)
        session.traffic = RelayTraffic(messages: counters.messages, bytes: counters.bytes)
        metrics.sessionOpened(listener: record.listener, protocol: record.httpProtocol)
        session.onFinish = { outcome, stats in
            metrics.sessionClosed(listener: record.listener, route: route)
            record.clientMessages = stats.client.messages
            record.clientBytes = stats.client.bytes
            record.upstreamMessages = stats.upstream.messages
            record.upstreamBytes = stats.upstream.bytes
            record.closeCode = outcome?.code.map { Int($0.rawValue) }
            record.closedBy = outcome?.closedBy
            accessLog.record(record)
        }
    }
}
