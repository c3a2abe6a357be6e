import NIOCore
import NIOHTTP1
import TLSShim

/// Edge (issue #11): the client address of `client_address: chain`, and the SNI/Host match.
extension ClientConnectionHandler {
    /// With `client_address: chain`, the right-most untrusted `X-Forwarded-For` address of a trusted
    /// peer becomes the client address of the logs, the handshake rate and the per-IP connection cap.
    /// The cap was left open at accept for such a peer (``admitsClientAddressAtHead``): the address
    /// resolved here is counted now, until the connection closes, and a full cap is 503 (as nginx's
    /// `limit_conn`), answered before anything reaches an upstream.
    func resolveClientAddress(_ head: HTTPRequestHead, channel: (any Channel)?) -> HandshakeRejection? {
        guard case .chain = self.environment.configuration.clientAddress else { return nil }
        let client = ForwardingHeaders.clientAddress(
            peer: self.peer,
            forwardedFor: head.headers["X-Forwarded-For"],
            source: .chain,
            trusted: self.environment.trustedProxies
        )
        if let client { self.recorder.clientAddressResolved(client) }
        guard self.admitsClientAddressAtHead, let channel, let address = (client ?? self.peer)?.description else { return nil }
        if self.environment.admitProxiedAddress(address, channel: channel, listener: self.recorder.record.listener) { return nil }
        return HandshakeRejection(503, "too many connections from this address", reason: "ip-connections")
    }

    /// The client address as the rest of the gateway uses it (logs, caps, rate limits): the PROXY
    /// header's source or the `client_address: chain` result when there is one, else the socket's peer.
    var resolvedClientAddress: IPAddress? {
        self.recorder.record.clientAddress.flatMap { IPAddress($0) } ?? self.peer
    }

    /// `require_sni_host_match`: a Host that is not the TLS SNI name is 421 Misdirected Request
    /// (RFC 9110 §15.5.20), which rules out domain fronting (SNI of one site, Host of another). No SNI
    /// at all does not match either. Case and one trailing dot are ignored.
    func sniHostRejection(_ request: ClientUpgradeRequest) -> HandshakeRejection? {
        guard self.requireSNIHostMatch, self.clientUsedTLS else { return nil }
        func normalized(_ name: String) -> String {
            let lower = name.lowercased()
            return lower.hasSuffix(".") ? String(lower.dropLast()) : lower
        }
        if let sni = self.serverName, normalized(sni) == normalized(request.host) { return nil }
        return HandshakeRejection(421, "the Host does not match the TLS server name (SNI) of this connection", reason: "sni-host-mismatch")
    }

    /// Always on a TLS listener: a Host that selects (as the SNI callback would: exact names, then
    /// wildcards, else the default) a TLS name whose client-certificate settings differ from those of
    /// the name the handshake selected is 421 Misdirected Request (RFC 9110 §15.5.20), as nginx does
    /// when the Host's server has other client verification. Routing follows Host and the certificate
    /// check follows SNI, so without this a client could shake hands under a name that asks for no
    /// certificate and reach the routes of one that requires it. Same settings: routed by Host.
    func clientAuthenticationHostRejection(_ request: ClientUpgradeRequest) -> HandshakeRejection? {
        guard self.clientUsedTLS, let scope = self.clientAuthenticationScope, scope.hostHasOtherSettings(request.host) else {
            return nil
        }
        return HandshakeRejection(
            421,
            "the Host names a TLS server name with other client certificate settings than the one of this connection (SNI)",
            reason: "sni-host-mismatch"
        )
    }
}
