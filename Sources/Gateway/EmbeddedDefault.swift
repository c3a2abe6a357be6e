/// The configuration `wsgate` runs with no arguments: ws on 127.0.0.1:8080 (and wss on 8443 once TLS
/// listeners are available) in front of the built-in demo upstream on an ephemeral port.
public enum EmbeddedDefault {
    public static let host = "127.0.0.1"
    public static let port = 8080
    public static let tlsPort = 8443

    /// The gateway configuration in front of a demo upstream listening on `upstreamPort`.
    public static func configuration(upstreamPort: Int, port: Int = EmbeddedDefault.port) -> GatewayConfiguration {
        GatewayConfiguration(
            listeners: [.init(name: "ws", host: host, port: port)],
            routes: [.init(pathPrefix: "/", upstreams: [.init(scheme: .ws, host: host, port: upstreamPort)])]
        )
    }
}
