import Frames
import TLSShim

// The typed label values and label sets of the gateway's metrics. Every value set is bounded: by the
// code (enums), by the configuration (listener names, route labels, upstream URLs) or, for values a
// peer chooses, by the label type that renders them (``CloseCodeLabel``, ``UpgradeStatusLabel``).

/// A label value that is one of a small, fixed set (`side="client"`, `result="applied"`).
protocol MetricLabelValue: RawRepresentable<String>, Hashable, Sendable {}

extension Side: MetricLabelValue {}
extension RateLimiter.Limit: MetricLabelValue {}

/// Who ended a leg: its peer (a Close received, or TCP lost) or the gateway (a Close sent, or 1015).
enum ClosedBy: String, MetricLabelValue {
    case peer, gateway
}

/// The direction of relayed messages and bytes.
enum TrafficDirection: String, MetricLabelValue {
    case clientToUpstream = "client_to_upstream"
    case upstreamToClient = "upstream_to_client"
}

/// Why a connect to an upstream member failed.
enum ConnectFailureReason: String, MetricLabelValue {
    case refused, timeout
}

/// What became of a client certificate a TLS listener asked for (issue #13): verified, none sent where
/// that is allowed (`optional`), or the handshake failed for it (`missing`, `untrusted`, `expired`,
/// `invalid`, the classes of ``TLSError/Code``).
enum ClientCertificateOutcome: String, MetricLabelValue {
    case verified
    case notPresented = "not_presented"
    case missing, untrusted, expired, invalid

    /// The outcome of a failed client handshake, or nil when the failure was not about the certificate.
    init?(failure code: TLSError.Code) {
        switch code {
        case .clientCertificateRequired: self = .missing
        case .clientCertificateUntrusted: self = .untrusted
        case .clientCertificateExpired: self = .expired
        case .clientCertificateInvalid: self = .invalid
        default: return nil
        }
    }
}

/// A SIGHUP reload's result.
enum ReloadResult: String, MetricLabelValue {
    case applied, refused
}

/// How a connection a drain asked to end ended: close handshakes done, or still open at the deadline.
enum DrainEnd: String, MetricLabelValue {
    case closed, forced
}

/// An origin check's decision.
enum OriginDecision: String, MetricLabelValue {
    case allow, refuse
}

/// What a reached rate limit did.
enum RateLimitAction: String, MetricLabelValue {
    case throttle, close
}

/// Which connection cap refused a connection or an upgrade request.
enum ConnectionLimit: String, MetricLabelValue {
    case listenerConnections = "listener_connections"
    case ipConnections = "ip_connections"
    case ipHandshakeRate = "ip_handshake_rate"

    init(_ refusal: ConnectionAdmission.Refusal) {
        switch refusal {
        case .listenerConnections: self = .listenerConnections
        case .ipConnections: self = .ipConnections
        }
    }
}

/// The permessage-deflate decision on one leg at a 101.
/// Why a PROXY protocol listener closed a connection before any HTTP (issue #11).
enum ProxyProtocolRefusal: String, MetricLabelValue {
    case untrustedPeer = "untrusted-peer"
    case timeout = "proxy-protocol-timeout"
    case signature = "proxy-protocol-signature"
    case tooLong = "proxy-protocol-too-long"
    case malformedV1 = "proxy-protocol-malformed-v1"
    case versionOrCommand = "proxy-protocol-version-or-command"
    case family = "proxy-protocol-family"
    case shortAddress = "proxy-protocol-short-address"
    /// The carried address is over its per-IP cap.
    case refused = "proxy-protocol-refused"

    init(_ code: ProxyProtocolError.Code) {
        switch code {
        case .signature: self = .signature
        case .tooLong: self = .tooLong
        case .malformedV1: self = .malformedV1
        case .versionOrCommand: self = .versionOrCommand
        case .family: self = .family
        case .shortAddress: self = .shortAddress
        }
    }
}

enum ExtensionDecision: String, MetricLabelValue {
    /// Both ends agreed on it.
    case negotiated
    /// Policy `negotiate`, but no acceptable offer (or the upstream did not accept).
    case declined
    /// Policy `strip`, and (on the client leg) the client offered it.
    case stripped
    /// The client offered nothing.
    case notOffered = "not-offered"
}

/// The `code` label of a close code: the one place a close code becomes a label value. No code at all
/// is 1005 (RFC 6455 §7.1.5). A peer chooses its code, so only the RFC 6455 §7.4.1 codes (1000–1015:
/// at most 16 values) are labelled by number; the registered and private ranges are `3xxx` and
/// `4xxx`, anything else `other` (issue #11 §4: a peer must not be able to mint time series).
struct CloseCodeLabel: Hashable, Sendable {
    let code: CloseCode?

    init(_ code: CloseCode?) { self.code = code }

    var value: String {
        guard let code = self.code else { return "1005" }
        switch code.rawValue {
        case 1000...1015: return String(code.rawValue)
        case 3000...3999: return "3xxx"
        case 4000...4999: return "4xxx"
        default: return "other"
        }
    }
}

/// The `status` label of a refused upgrade: the one place a refusal's status becomes a label value.
/// The gateway's own statuses are a fixed set and keep their number; a status relayed from an
/// upstream (`upstream-refused`) is the upstream's choice, so it is labelled by class (`4xx`), or
/// `other` outside 100–599 (issue #11 §4).
struct UpgradeStatusLabel: Hashable, Sendable {
    let status: Int
    let reason: String

    init(_ rejection: HandshakeRejection) {
        self.status = rejection.response.status
        self.reason = rejection.reason
    }

    var value: String {
        guard self.reason == HandshakeRejection.upstreamRefusedReason else { return String(self.status) }
        return (100...599).contains(self.status) ? "\(self.status / 100)xx" : "other"
    }
}

// MARK: - Label sets, one per metric shape

struct NoLabels: MetricLabels {
    static let names: [String] = []
    var values: [String] { [] }
}

struct ListenerLabels: MetricLabels {
    var listener: String
    static let names = ["listener"]
    var values: [String] { [self.listener] }
}

/// What carried a WebSocket's handshake: `http1` or `h2` (``ClientAnswerEncoding/label``).
struct ListenerProtocolLabels: MetricLabels {
    var listener: String
    var `protocol`: String
    static let names = ["listener", "protocol"]
    var values: [String] { [self.listener, self.protocol] }
}

struct ListenerRouteLabels: MetricLabels {
    var listener: String
    var route: String
    static let names = ["listener", "route"]
    var values: [String] { [self.listener, self.route] }
}

struct UpgradeRefusalLabels: MetricLabels {
    var listener: String
    /// The rejection's reason (`ws-version`, `upstream-refused`, …) and status.
    var status: UpgradeStatusLabel
    static let names = ["listener", "reason", "status"]
    var values: [String] { [self.listener, self.status.reason, self.status.value] }
}

struct TrafficLabels: MetricLabels {
    var listener: String
    var route: String
    var direction: TrafficDirection
    static let names = ["listener", "route", "direction"]
    var values: [String] { [self.listener, self.route, self.direction.rawValue] }
}

struct CloseCodeLabels: MetricLabels {
    var side: Side
    var code: CloseCodeLabel
    var by: ClosedBy
    static let names = ["side", "code", "by"]
    var values: [String] { [self.side.rawValue, self.code.value, self.by.rawValue] }
}

struct TLSFailureLabels: MetricLabels {
    var leg: Side
    /// Rendered as a slug of its description (`certificate_not_trusted`); bounded by TLSShim's codes.
    var code: TLSError.Code
    static let names = ["leg", "class"]
    var values: [String] { [self.leg.rawValue, GatewayMetrics.slug(self.code.description)] }
}

struct ClientCertificateLabels: MetricLabels {
    var listener: String
    var outcome: ClientCertificateOutcome
    static let names = ["listener", "outcome"]
    var values: [String] { [self.listener, self.outcome.rawValue] }
}

struct AuthDecisionLabels: MetricLabels {
    var route: String
    /// `jwt` or `forward`.
    var method: String
    /// Bounded by each method's own set (forward: `allow`, `deny_401`, `deny_403`, `error`, `timeout`, …).
    var outcome: String
    static let names = ["route", "method", "outcome"]
    var values: [String] { [self.route, self.method, self.outcome] }
}

struct ProtocolViolationLabels: MetricLabels {
    var side: Side
    /// Rendered as a slug of its description (`reserved_bit_set`); bounded by Frames' codes.
    var rule: FramesError.Code
    static let names = ["side", "rule"]
    var values: [String] { [self.side.rawValue, GatewayMetrics.slug(self.rule.description)] }
}

struct UpstreamMemberLabels: MetricLabels {
    var route: String
    var member: String
    static let names = ["route", "member"]
    var values: [String] { [self.route, self.member] }
}

struct ConnectFailureLabels: MetricLabels {
    var route: String
    var member: String
    var reason: ConnectFailureReason
    static let names = ["route", "member", "reason"]
    var values: [String] { [self.route, self.member, self.reason.rawValue] }
}

struct ResultLabels<Value: MetricLabelValue>: MetricLabels {
    var result: Value
    static var names: [String] { ["result"] }
    var values: [String] { [self.result.rawValue] }
}

struct OriginDecisionLabels: MetricLabels {
    var route: String
    var side: Side
    var decision: OriginDecision
    /// The rule that decided (`listed`, `mixed-content`, …).
    var reason: CompiledOriginPolicy.Reason
    static let names = ["route", "side", "decision", "reason"]
    var values: [String] { [self.route, self.side.rawValue, self.decision.rawValue, self.reason.rawValue] }
}

struct RateLimitLabels: MetricLabels {
    var route: String
    var side: Side
    var limit: RateLimiter.Limit
    var action: RateLimitAction
    static let names = ["route", "side", "limit", "action"]
    var values: [String] { [self.route, self.side.rawValue, self.limit.rawValue, self.action.rawValue] }
}

struct ConnectionLimitLabels: MetricLabels {
    var listener: String
    var limit: ConnectionLimit
    static let names = ["listener", "limit"]
    var values: [String] { [self.listener, self.limit.rawValue] }
}

struct AcceptErrorLabels: MetricLabels {
    var listener: String
    var error: AcceptError
    static let names = ["listener", "error"]
    var values: [String] { [self.listener, self.error.rawValue] }
}

struct ProxyProtocolRefusalLabels: MetricLabels {
    var listener: String
    var reason: ProxyProtocolRefusal
    static let names = ["listener", "reason"]
    var values: [String] { [self.listener, self.reason.rawValue] }
}

struct RouteLabels: MetricLabels {
    var route: String
    static let names = ["route"]
    var values: [String] { [self.route] }
}

struct RouteSideLabels: MetricLabels {
    var route: String
    var side: Side
    static let names = ["route", "side"]
    var values: [String] { [self.route, self.side.rawValue] }
}

struct ExtensionDecisionLabels: MetricLabels {
    var route: String
    var side: Side
    var extensionName: String
    var decision: ExtensionDecision
    static let names = ["route", "side", "extension", "decision"]
    var values: [String] { [self.route, self.side.rawValue, self.extensionName, self.decision.rawValue] }
}
