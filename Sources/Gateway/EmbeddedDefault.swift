import NIOCore
import TLSShim

/// The configuration `wsgate` runs with no arguments: ws on 127.0.0.1:8080 and wss on 127.0.0.1:8443
/// (a self-signed certificate made at start, held in memory only) in front of the built-in demo
/// upstream on an ephemeral port, and the admin listener on 127.0.0.1:9090, as a configuration file
/// with no `admin` key gets.
///
/// It shows what the gateway does, not only what it refuses: the client leg negotiates
/// permessage-deflate (RFC 7692), which every browser offers, so a newcomer sees an extension answered
/// and the gateway inflate toward the demo upstream (which speaks none) and deflate its answers. A
/// configured route keeps `strip` as its default (README, "Configuration reference"): compression costs
/// memory and CPU per connection (a 15-bit deflater holds about 256 KiB) and, over TLS, leaks secrets
/// through compressed sizes (CRIME/BREACH) when a secret and attacker-chosen text share a message; that
/// is the operator's call per route, not a default.
public enum EmbeddedDefault {
    public static let host = "127.0.0.1"
    public static let port = 8080
    public static let tlsPort = 8443
    /// The admin listener's port (`/metrics`, `/healthz`, `/readyz`), the configuration's default.
    public static let adminPort = GatewayConfiguration.Admin().port

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

    /// The gateway configuration in front of a demo upstream listening on `upstreamPort`; the admin
    /// listener on `adminPort` (nil: none).
    public static func configuration(
        upstreamPort: Int,
        identity: TLSGeneratedCertificate,
        port: Int = EmbeddedDefault.port,
        tlsPort: Int = EmbeddedDefault.tlsPort,
        adminPort: Int? = EmbeddedDefault.adminPort
    ) -> GatewayConfiguration {
        var route = GatewayConfiguration.Route(pathPrefix: "/", upstreams: [.init(scheme: .ws, host: host, port: upstreamPort)])
        route.extensions.permessageDeflate.client = .negotiate
        var configuration = GatewayConfiguration(
            listeners: [
                .init(name: "ws", host: host, port: port),
                .init(name: "wss", host: host, port: tlsPort, tls: TLSServerConfiguration(defaultIdentity: identity.identity)),
            ],
            routes: [route]
        )
        if let adminPort {
            configuration.admin.host = host
            configuration.admin.port = adminPort
        } else {
            configuration.admin = .off
        }
        return configuration
    }

    /// What `wsgate` prints once it serves: the demo's URLs on the bound `listeners` (ws, then wss), the
    /// admin endpoints on `admin` (nil: the admin listener is off), and a command to try.
    public static func banner(listeners: [SocketAddress], admin: SocketAddress?, upstreamPort: Int) -> String {
        func url(_ scheme: String, _ address: SocketAddress?) -> String {
            guard let address, let port = address.port else { return "\(scheme)://\(host):?" }
            let ip = address.ipAddress ?? host
            return "\(scheme)://\(ip.contains(":") ? "[\(ip)]" : ip):\(port)"
        }
        let ws = url("ws", listeners.first)
        let wss = url("wss", listeners.dropFirst().first)
        var rows: [(String, String)] = [
            ("\(ws)/echo", "every message comes back (permessage-deflate when the client offers it)"),
            ("\(ws)/chat?name=you", "a chat room; who is online is broadcast on every join and leave"),
            ("\(wss)/echo", "the same over TLS (self-signed certificate made at start)"),
            ("http://\(host):\(upstreamPort)/?gateway=\(ws)", "the chat in a browser (a page the demo upstream serves)"),
        ]
        if let admin {
            let base = url("http", admin)
            rows += [
                ("\(base)/", "admin: the dashboard (live connections, counters, frame tap)"),
                ("\(base)/metrics", "admin: Prometheus metrics"),
                ("\(base)/healthz", "admin: 200 while the process serves"),
                ("\(base)/readyz", "admin: 200; 503 once a drain starts"),
            ]
        }
        let width = rows.map(\.0.count).max() ?? 0
        let table = rows.map { "  " + $0.0 + String(repeating: " ", count: width + 3 - $0.0.count) + $0.1 }
        var lines = ["wsgate is running on its embedded default, in front of a built-in demo upstream (\(host):\(upstreamPort))."]
        lines += table
        if admin == nil { lines.append("The admin listener is off.") }
        lines += ["Try it:", "  python3 -m websockets \(ws)/echo", "Stop with Ctrl-C."]
        return lines.joined(separator: "\n")
    }
}
