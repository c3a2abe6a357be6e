/// What a TLS handshake negotiated, readable from ``TLSHandler/connectionInfo`` once
/// `TLSUserEvent.handshakeCompleted` has been fired (the gateway's access log records it,
/// ../shared/DESIGN.md §6).
public struct TLSConnectionInfo: Hashable, Sendable {
    /// The negotiated protocol version.
    public var version: TLSVersion
    /// The negotiated cipher suite, OpenSSL's name (`TLS_AES_128_GCM_SHA256`, `ECDHE-RSA-AES128-GCM-SHA256`).
    public var cipherSuite: String
    /// The SNI name the client sent (server side) or that was sent (client side); nil without SNI.
    public var serverName: String?
    /// The ALPN protocol both ends agreed on, if any.
    public var negotiatedProtocol: String?
    /// The peer certificate's subject in RFC 2253 form ("CN=api.example.com,O=Example"), if the peer
    /// presented one (always on the client side; on the server side only with mTLS).
    public var peerCertificateSubject: String?
    /// Whether the session was resumed (abbreviated handshake).
    public var sessionReused: Bool
    /// The peer's certificate. Server side: set only when the client presented one, which then
    /// verified against the trusted CAs (a certificate that does not verify fails the handshake) in
    /// this handshake or in the one that made the resumed session (resumption never crosses
    /// client-certificate settings, ``TLSServerContext``). Nil on the client side.
    public var peerCertificate: TLSPeerCertificate?
    /// Server side: whether this connection's virtual host asked for a client certificate.
    public var clientCertificateRequested: Bool
    /// Server side: the listener's TLS names and the one the handshake selected, to tell whether a
    /// `Host` names a TLS name with other client-certificate settings (``ClientAuthenticationScope/hostHasOtherSettings(_:)``).
    public var clientAuthentication: ClientAuthenticationScope?

    /// The TLS names of the server context a connection used, and the entry its SNI selected.
    public struct ClientAuthenticationScope: Hashable, Sendable {
        public var table: TLSClientAuthenticationTable
        /// The virtual host the SNI selected; nil: the default (no SNI, or an unknown name).
        public var selectedEntry: Int?

        public init(table: TLSClientAuthenticationTable, selectedEntry: Int?) {
            self.table = table
            self.selectedEntry = selectedEntry
        }

        /// Whether `host` (an HTTP `Host` without its port) selects, as the SNI would, a TLS name whose
        /// client-certificate settings differ from those of the name the handshake selected (mode,
        /// depth or CA set, or one checks and the other does not).
        public func hostHasOtherSettings(_ host: String) -> Bool {
            let hostEntry = self.table.entry(forServerName: host)
            guard hostEntry != self.selectedEntry else { return false }
            return self.table.key(forEntry: hostEntry) != self.table.key(forEntry: self.selectedEntry)
        }
    }

    public init(
        version: TLSVersion,
        cipherSuite: String,
        serverName: String?,
        negotiatedProtocol: String?,
        peerCertificateSubject: String?,
        sessionReused: Bool,
        peerCertificate: TLSPeerCertificate? = nil,
        clientCertificateRequested: Bool = false,
        clientAuthentication: ClientAuthenticationScope? = nil
    ) {
        self.version = version
        self.cipherSuite = cipherSuite
        self.serverName = serverName
        self.negotiatedProtocol = negotiatedProtocol
        self.peerCertificateSubject = peerCertificateSubject
        self.sessionReused = sessionReused
        self.peerCertificate = peerCertificate
        self.clientCertificateRequested = clientCertificateRequested
        self.clientAuthentication = clientAuthentication
    }
}

/// What identifies a verified client certificate (Envoy's `X-Forwarded-Client-Cert` fields).
public struct TLSPeerCertificate: Hashable, Sendable {
    /// Lower-case hex SHA-256 of the certificate's DER encoding.
    public var sha256Fingerprint: String
    /// The subject in RFC 2253 form (control and non-ASCII bytes escaped by OpenSSL).
    public var subject: String
    /// `uniformResourceIdentifier` subject alternative names (SPIFFE IDs), in certificate order.
    public var uris: [String]
    /// `dNSName` subject alternative names, in certificate order.
    public var dnsNames: [String]

    public init(sha256Fingerprint: String, subject: String, uris: [String] = [], dnsNames: [String] = []) {
        self.sha256Fingerprint = sha256Fingerprint
        self.subject = subject
        self.uris = uris
        self.dnsNames = dnsNames
    }
}
