import Frames
import TLSShim

/// Every metric the gateway exports, with its type and labels: the README's metrics list is checked
/// against it by a test (`OperationsDocumentationTests`), so that a new metric is documented.
extension GatewayMetrics {
    struct Descriptor: Sendable, Equatable {
        enum Kind: String, Sendable { case counter, gauge, histogram }
        var name: String
        var kind: Kind
        var labels: [String]
        var help: String
    }

    static let catalog: [Descriptor] = [
        .init(name: "wsgate_connections_accepted_total", kind: .counter, labels: ["listener"], help: "TCP connections accepted"),
        .init(name: "wsgate_connections_total", kind: .counter, labels: ["listener", "route"], help: "WebSocket connections established (101 sent)"),
        .init(name: "wsgate_connections_open", kind: .gauge, labels: ["listener", "route"], help: "WebSocket connections being relayed now"),
        .init(name: "wsgate_upgrades_refused_total", kind: .counter, labels: ["listener", "reason", "status"], help: "upgrade requests answered with an HTTP error"),
        .init(name: "wsgate_messages_total", kind: .counter, labels: ["listener", "route", "direction"], help: "messages relayed, added when the connection ends"),
        .init(name: "wsgate_bytes_total", kind: .counter, labels: ["listener", "route", "direction"], help: "payload bytes relayed, added when the connection ends"),
        .init(name: "wsgate_close_codes_total", kind: .counter, labels: ["side", "code", "by"], help: "close codes per leg, sent by the peer or by the gateway (1006: TCP lost, 1015: TLS handshake failed)"),
        .init(name: "wsgate_tls_handshake_failures_total", kind: .counter, labels: ["leg", "class"], help: "failed TLS handshakes by leg and class"),
        .init(name: "wsgate_protocol_violations_total", kind: .counter, labels: ["side", "rule"], help: "RFC 6455 violations by the side that broke the rule"),
        .init(name: "wsgate_upstream_connect_seconds", kind: .histogram, labels: ["route", "member"], help: "time to connect to an upstream member (TCP)"),
        .init(name: "wsgate_upstream_connect_failures_total", kind: .counter, labels: ["route", "member", "reason"], help: "failed connects to an upstream member"),
        .init(name: "wsgate_reloads_total", kind: .counter, labels: ["result"], help: "SIGHUP reloads, applied or refused"),
        .init(name: "wsgate_draining", kind: .gauge, labels: [], help: "1 while the gateway drains"),
        .init(name: "wsgate_drained_connections_total", kind: .counter, labels: ["result"], help: "connections ended by a drain: closed (handshake done) or forced (deadline)"),
        // Policies (issue #5).
        .init(name: "wsgate_origin_decisions_total", kind: .counter, labels: ["route", "side", "decision", "reason"], help: "origin checks and the rule that decided"),
        .init(name: "wsgate_rate_limit_decisions_total", kind: .counter, labels: ["side", "limit", "action"], help: "rate limits reached"),
        .init(name: "wsgate_connection_limit_refusals_total", kind: .counter, labels: ["listener", "limit"], help: "connections refused by a cap"),
        .init(name: "wsgate_keepalive_timeouts_total", kind: .counter, labels: ["side"], help: "legs closed for an unanswered keep-alive ping"),
        .init(name: "wsgate_max_lifetime_closes_total", kind: .counter, labels: [], help: "connections closed at their maximum lifetime"),
        // permessage-deflate (issue #5 A).
        .init(name: "wsgate_extension_decisions_total", kind: .counter, labels: ["route", "side", "extension", "decision"], help: "permessage-deflate decision per leg at each 101"),
        .init(name: "wsgate_extensions_dropped_total", kind: .counter, labels: ["route", "side"], help: "offered extensions the gateway does not implement (never forwarded)"),
    ]

    /// Histogram buckets (seconds) for the upstream connect latency.
    static let connectSecondsBuckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

    /// A label value from a human description: the part before " (", lower-case, non-alphanumerics as
    /// `_` ("reserved bit set (RFC 6455 §5.2)" → `reserved_bit_set`). Bounded by the set of codes.
    static func slug(_ text: String) -> String {
        let head = text.components(separatedBy: " (").first ?? text
        var out = ""
        for scalar in head.lowercased().unicodeScalars {
            let keep = ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar)
            if keep {
                out.unicodeScalars.append(scalar)
            } else if !out.hasSuffix("_") {
                out += "_"
            }
        }
        while out.hasSuffix("_") { out.removeLast() }
        return out
    }

    // MARK: Connection-level events (never per frame)

    func connectionAccepted(listener: String) {
        self.count("wsgate_connections_accepted_total", [("listener", listener)])
    }

    func sessionOpened(listener: String, route: String) {
        let dimensions = [("listener", listener), ("route", route)]
        self.count("wsgate_connections_total", dimensions)
        self.add("wsgate_connections_open", dimensions, 1)
    }

    /// A relayed connection ended: its per-direction figures, accumulated in the session, are added once.
    func sessionEnded(listener: String, route: String, clientToUpstream: (messages: Int, bytes: Int), upstreamToClient: (messages: Int, bytes: Int)) {
        self.add("wsgate_connections_open", [("listener", listener), ("route", route)], -1)
        for (direction, figures) in [("client_to_upstream", clientToUpstream), ("upstream_to_client", upstreamToClient)] {
            let dimensions = [("listener", listener), ("route", route), ("direction", direction)]
            if figures.messages > 0 { self.count("wsgate_messages_total", dimensions, by: Int64(figures.messages)) }
            if figures.bytes > 0 { self.count("wsgate_bytes_total", dimensions, by: Int64(figures.bytes)) }
        }
    }

    /// A close code on `side`'s leg: received from its peer, or sent (or, for 1006/1015, recorded) by the gateway.
    func close(side: String, code: CloseCode?, byPeer: Bool) {
        self.count(
            "wsgate_close_codes_total",
            [("side", side), ("code", Self.closeCodeLabel(code)), ("by", byPeer ? "peer" : "gateway")]
        )
    }

    /// The `code` label of a close code. A peer chooses its code, so only the RFC 6455 §7.4.1 codes
    /// (1000–1015: at most 16 values) are labelled by number; the registered and private ranges are
    /// `3xxx` and `4xxx`, anything else `other` (a peer must not be able to mint time series).
    /// No code at all is 1005, as RFC 6455 §7.1.5 says.
    static func closeCodeLabel(_ code: CloseCode?) -> String {
        guard let code else { return "1005" }
        switch code.rawValue {
        case 1000...1015: return String(code.rawValue)
        case 3000...3999: return "3xxx"
        case 4000...4999: return "4xxx"
        default: return "other"
        }
    }

    /// An upgrade request answered with an HTTP error. The gateway's own statuses are a fixed set and
    /// keep their number; a status relayed from an upstream (`upstream-refused`) is the upstream's
    /// choice, so it is labelled by class (`4xx`), or `other` outside 100–599.
    func upgradeRefused(listener: String, _ rejection: HandshakeRejection) {
        let status = rejection.response.status
        let label = rejection.reason == HandshakeRejection.upstreamRefusedReason ? Self.statusClassLabel(status) : String(status)
        self.count("wsgate_upgrades_refused_total", [("listener", listener), ("reason", rejection.reason), ("status", label)])
    }

    static func statusClassLabel(_ status: Int) -> String {
        (100...599).contains(status) ? "\(status / 100)xx" : "other"
    }

    /// A TLS handshake failed on `leg`; recorded as close code 1015 on that leg as well.
    func tlsHandshakeFailed(leg: String, _ error: TLSError) {
        self.count("wsgate_tls_handshake_failures_total", [("leg", leg), ("class", Self.slug(error.code.description))])
        self.close(side: leg, code: .tlsHandshakeFailure, byPeer: false)
    }

    func protocolViolation(side: String, _ error: FramesError) {
        self.count("wsgate_protocol_violations_total", [("side", side), ("rule", Self.slug(error.code.description))])
    }

    func upstreamConnected(route: String, member: String, seconds: Double) {
        self.recordSeconds("wsgate_upstream_connect_seconds", [("route", route), ("member", member)], seconds)
    }

    func upstreamConnectFailed(route: String, member: String, timedOut: Bool) {
        self.count(
            "wsgate_upstream_connect_failures_total",
            [("route", route), ("member", member), ("reason", timedOut ? "timeout" : "refused")]
        )
    }
}
