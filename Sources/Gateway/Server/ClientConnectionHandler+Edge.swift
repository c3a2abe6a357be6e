import NIOHTTP1

/// Edge (issue #11): the client address of `client_address: chain`, and the SNI/Host match.
extension ClientConnectionHandler {
    /// With `client_address: chain`, the right-most untrusted `X-Forwarded-For` address of a trusted
    /// peer becomes the client address of the logs and the handshake rate.
    func resolveClientAddress(_ head: HTTPRequestHead) {
        guard case .chain = self.environment.configuration.clientAddress else { return }
        let client = ForwardingHeaders.clientAddress(
            peer: self.peer,
            forwardedFor: head.headers["X-Forwarded-For"],
            source: .chain,
            trusted: self.environment.trustedProxies
        )
        if let client { self.recorder.clientAddressResolved(client) }
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
}
