import TLSShim

/// The configuration `wsgate` runs with no arguments: ws on 127.0.0.1:8080 and wss on 127.0.0.1:8443
/// (a self-signed certificate made at start, held in memory only) in front of the built-in demo
/// upstream on an ephemeral port.
public enum EmbeddedDefault {
    public static let host = "127.0.0.1"
    public static let port = 8080
    public static let tlsPort = 8443

    /// A fresh self-signed certificate for `localhost` and 127.0.0.1 (ECDSA P-256, 30 days).
    public static func makeIdentity() throws -> TLSGeneratedCertificate {
        let certificate = try TLSCertificateGenerator.selfSigned(
            TLSCertificateRequest(commonName: "wsgate embedded default") {
                $0.dnsNames = ["localhost"]
                $0.ipAddresses = ["127.0.0.1", "::1"]
            }
        )
        return certificate
    }

    /// The gateway configuration in front of a demo upstream listening on `upstreamPort`.
    public static func configuration(
        upstreamPort: Int,
        identity: TLSGeneratedCertificate,
        port: Int = EmbeddedDefault.port,
        tlsPort: Int = EmbeddedDefault.tlsPort
    ) -> GatewayConfiguration {
        GatewayConfiguration(
            listeners: [
                .init(name: "ws", host: host, port: port),
                .init(name: "wss", host: host, port: tlsPort, tls: TLSServerConfiguration(defaultIdentity: identity.identity)),
            ],
            routes: [.init(pathPrefix: "/", upstreams: [.init(scheme: .ws, host: host, port: upstreamPort)])]
        )
    }
}
