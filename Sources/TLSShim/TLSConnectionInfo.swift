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

    public init(
        version: TLSVersion,
        cipherSuite: String,
        serverName: String?,
        negotiatedProtocol: String?,
        peerCertificateSubject: String?,
        sessionReused: Bool
    ) {
        self.version = version
        self.cipherSuite = cipherSuite
        self.serverName = serverName
        self.negotiatedProtocol = negotiatedProtocol
        self.peerCertificateSubject = peerCertificateSubject
        self.sessionReused = sessionReused
    }
}
