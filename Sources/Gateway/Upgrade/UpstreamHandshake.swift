import Frames
import NIOCore
import NIOHTTP1
import TLSShim

/// The upgrade request the gateway sends upstream and the checks on the upstream's answer
/// (DESIGN §1.6–1.7).
struct UpstreamHandshake: Equatable {
    /// The fresh `Sec-WebSocket-Key` of this request (never the client's).
    let key: String
    let subprotocolsOffered: [String]
    /// The permessage-deflate element offered upstream (the route's upstream leg negotiates), or nil.
    let deflateOffer: ExtensionOffer?

    /// Headers that describe one hop and are never forwarded (RFC 9110 §7.6.1), plus those the gateway
    /// writes itself.
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authorization", "proxy-authenticate", "host", "content-length",
        "sec-websocket-key", "sec-websocket-version", "sec-websocket-protocol", "sec-websocket-extensions",
        "sec-websocket-accept",
    ]

    init(key: String = HandshakeKey.makeKey(), subprotocolsOffered: [String], deflateOffer: ExtensionOffer? = nil) {
        self.key = key
        self.subprotocolsOffered = subprotocolsOffered
        self.deflateOffer = deflateOffer
    }

    /// The request head toward `upstream`, written as the bytes that go on the wire (issue #15: no
    /// `HTTPHeaders`, no `HTTPRequestEncoder`): `GET target HTTP/1.1`, then the client's end-to-end
    /// headers (hop-by-hop ones and any named in `Connection` removed), `Host` of the upstream,
    /// `X-Forwarded-For/-Proto/-Host` and `Forwarded` (RFC 7239) from ``ForwardingHeaders`` (`peer` is
    /// the connection's peer after any PROXY header; the client's forwarding headers are kept only when
    /// `peerIsTrusted`), a fresh key, the filtered subprotocol offer and the gateway's own extension offer
    /// (never the client's), and `X-Forwarded-Client-Cert` for `clientCertificate` (the client's own copy
    /// is always removed). The authorization stage's `grant` (issue #13) is applied last: the client's
    /// copies of the headers it adds or removes are dropped, its query parameters and subprotocol entries
    /// are stripped, then its headers are added (never a hop-by-hop or handshake header, never a value
    /// with CR, LF or NUL).
    func requestHead(
        for client: ClientUpgradeRequest,
        upstream: GatewayConfiguration.Upstream,
        peer: IPAddress?,
        peerIsTrusted: Bool,
        clientUsedTLS: Bool,
        clientCertificate: TLSPeerCertificate? = nil,
        grant: AuthorizationGrant = .none
    ) -> ByteBuffer {
        let connectionNamed = Self.connectionNamedTokens(client.head.headers)
        let target = grant.forwardedTarget(
            RequestPath.upstreamTarget(client.target, routePrefix: client.route.route.pathPrefix, memberPath: upstream.path)
        )
        let removedByGrant = grant.lowercasedRemovedHeaderNames
        let subprotocolsOffered = grant.offeredSubprotocols(self.subprotocolsOffered)
        var bytes = ByteBuffer()
        bytes.reserveCapacity(512 + target.utf8.count)
        bytes.writeStaticString("GET ")
        bytes.writeString(target)
        bytes.writeStaticString(" HTTP/1.1\r\nHost: ")
        let defaultPort = upstream.scheme == .wss ? 443 : 80
        if upstream.host.contains(":") {
            bytes.writeStaticString("[")
            bytes.writeString(upstream.host)
            bytes.writeStaticString("]")
        } else {
            bytes.writeString(upstream.host)
        }
        if upstream.port != defaultPort {
            bytes.writeStaticString(":")
            bytes.writeString(String(upstream.port))
        }
        bytes.writeStaticString("\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ")
        bytes.writeString(self.key)
        bytes.writeStaticString("\r\nSec-WebSocket-Version: 13\r\n")
        if !subprotocolsOffered.isEmpty {
            Self.writeHeader("Sec-WebSocket-Protocol", subprotocolsOffered.joined(separator: ", "), to: &bytes)
        }
        if let deflateOffer = self.deflateOffer {
            Self.writeHeader("Sec-WebSocket-Extensions", ExtensionHeader.serialize([deflateOffer]), to: &bytes)
        }
        for (name, value) in client.head.headers {
            // Most of an upgrade request's headers are hop-by-hop: compared without a lowercased copy.
            if Self.isHopByHop(name) { continue }
            let lower = name.lowercased()
            if let connectionNamed, connectionNamed.contains(lower) { continue }
            // Forwarding headers are rewritten below: believed only from a trusted proxy (issue #11 §1).
            if ForwardingHeaders.clientSentNames.contains(lower) { continue }
            // Only the gateway vouches for a client certificate (issue #13): a client's copy never passes.
            if lower == ClientCertificateHeader.lowercasedName { continue }
            // Only the authorizer vouches for what it adds; what it removes never reaches the upstream.
            if removedByGrant.contains(lower) { continue }
            guard Self.isSafeHeaderValue(value) else { continue }
            Self.writeHeader(name, value, to: &bytes)
        }
        if peerIsTrusted {
            let hop = ForwardingHeaders.Hop(peer: peer, peerIsTrusted: true, usedTLS: clientUsedTLS, host: client.authority)
            for (name, value) in ForwardingHeaders.headers(incoming: client.head.headers.lazy.map { (name: $0.name, value: $0.value) }, hop: hop) {
                Self.writeHeader(name, value, to: &bytes)
            }
        } else {
            // What ``ForwardingHeaders/headers(incoming:hop:)`` gives for a peer that is not trusted (none of
            // the client's forwarding headers count), written without its arrays (issue #15).
            let proto = clientUsedTLS ? "https" : "http"
            Self.writeHeader("X-Forwarded-For", peer?.description ?? "unknown", to: &bytes)
            Self.writeHeader("X-Forwarded-Proto", proto, to: &bytes)
            Self.writeHeader("X-Forwarded-Host", client.authority.value, to: &bytes)
            Self.writeHeader("Forwarded", ForwardingHeaders.forwardedElement(for: peer, host: client.authority.value, proto: proto), to: &bytes)
        }
        if let clientCertificate {
            let value = ClientCertificateHeader.value(for: clientCertificate)
            if Self.isSafeHeaderValue(value) { Self.writeHeader(ClientCertificateHeader.name, value, to: &bytes) }
        }
        for (name, value) in grant.addHeaders where !Self.hopByHop.contains(name.lowercased()) && Self.isSafeHeaderValue(value) {
            Self.writeHeader(name, value, to: &bytes)
        }
        bytes.writeStaticString("\r\n")
        return bytes
    }

    /// ``hopByHop`` as a list, for comparing without lowercasing.
    private static let hopByHopNames = Array(hopByHop)

    /// Whether `name` is in ``hopByHop``, ignoring ASCII case, without allocating.
    static func isHopByHop(_ name: String) -> Bool {
        let count = name.utf8.count
        for candidate in Self.hopByHopNames where candidate.utf8.count == count {
            if name.utf8.elementsEqual(candidate.utf8, by: { ($0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0) == $1 }) { return true }
        }
        return false
    }

    /// The lowercased tokens the client's `Connection` headers name (RFC 9110 §7.6.1: removed before
    /// forwarding) that are not hop-by-hop anyway; nil when there are none (the usual `Connection: Upgrade`).
    static func connectionNamedTokens(_ headers: HTTPHeaders) -> Set<String>? {
        var named: Set<String>?
        for (name, value) in headers where name.utf8.count == 10 && name.lowercased() == "connection" {
            for token in HTTPSyntax.lowercasedTokens([value]) where !Self.hopByHop.contains(token) {
                if named == nil { named = [] }
                named!.insert(token)
            }
        }
        return named
    }

    private static func writeHeader(_ name: String, _ value: String, to bytes: inout ByteBuffer) {
        bytes.writeString(name)
        bytes.writeStaticString(": ")
        bytes.writeString(value)
        bytes.writeStaticString("\r\n")
    }

    /// No CR or LF inside a value (NIO's decoder already refuses them; this keeps the guarantee local).
    private static func isSafeHeaderValue(_ value: String) -> Bool {
        !value.utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == 0 })
    }

    /// What the upstream's answer means.
    enum Verdict: Equatable {
        /// A valid 101: relay frames; `subprotocol` is the one the upstream chose (if any), `deflate` the
        /// permessage-deflate parameters it accepted (nil: none).
        case accepted(subprotocol: String?, deflate: PerMessageDeflateParameters?)
        /// An invalid 101: 502 to the client with the reason.
        case invalid(String)
        /// Not a 101: relay this status to the client, then close both.
        case refused(status: Int)
    }

    /// Checks a response head (DESIGN §1.7): only a 101 with `Upgrade: websocket`, `Connection: upgrade`,
    /// the exact accept value for our key, extensions only as offered (RFC 7692 §7 checks) and a
    /// subprotocol we offered switches to frames.
    /// A status outside 100–599 is invalid (RFC 9110 §15: a client "SHOULD process the response as if it
    /// had a 5xx"; NIO's decoder passes any three digits): a 502, never relayed as the client's answer.
    func check(_ head: HTTPResponseHead) -> Verdict {
        guard (100...599).contains(head.status.code) else { return .invalid("status \(head.status.code) outside 100–599") }
        guard head.status.code == 101 else { return .refused(status: Int(head.status.code)) }
        let headers = head.headers
        guard HTTPSyntax.lowercasedTokens(headers["Upgrade"]) == ["websocket"] else {
            return .invalid("101 without Upgrade: websocket")
        }
        guard HTTPSyntax.lists("upgrade", in: headers["Connection"]) else {
            return .invalid("101 without Connection: upgrade")
        }
        let accept = headers["Sec-WebSocket-Accept"]
        guard accept.count == 1, HTTPSyntax.trimmingOWS(accept[0]) == HandshakeKey.acceptValue(forKey: self.key) else {
            return .invalid("wrong or missing Sec-WebSocket-Accept")
        }
        // RFC 6455 §4.1 and RFC 7692 §7: only what was offered, with valid parameters.
        let deflate: PerMessageDeflateParameters?
        do {
            let values = headers["Sec-WebSocket-Extensions"]
            let elements = HTTPSyntax.commaList(values).isEmpty ? [] : try ExtensionHeader.parse(values)
            deflate = try PerMessageDeflate.validateResponse(elements, offered: self.deflateOffer)
        } catch {
            return .invalid("Sec-WebSocket-Extensions: \(error.detail)")
        }
        let protocols = HTTPSyntax.commaList(headers["Sec-WebSocket-Protocol"])
        switch protocols.count {
        case 0:
            return .accepted(subprotocol: nil, deflate: deflate)
        case 1 where self.subprotocolsOffered.contains(protocols[0]):
            return .accepted(subprotocol: protocols[0], deflate: deflate)
        default:
            return .invalid("subprotocol the gateway did not offer: \(protocols.joined(separator: ", "))")
        }
    }
}
