import TLSShim

/// TLS contexts compiled from the configuration, once, off the event loop (STYLE P8): one server
/// context provider per TLS listener, one client context per route with `wss://` members.
struct GatewayTLS: Sendable {
    var listeners: [String: TLSServerContextProvider] = [:]
    var routes: [Int: TLSClientContext] = [:]

    init(_ configuration: GatewayConfiguration) throws {
        for listener in configuration.listeners {
            guard let tls = listener.tls else { continue }
            do {
                let context = try TLSServerContext(configuration: Self.serverConfiguration(tls))
                self.listeners[listener.name] = TLSServerContextProvider(context)
            } catch {
                throw GatewayError("listener \(listener.name): cannot load its TLS certificates: \(error)")
            }
        }
        for (index, route) in configuration.routes.enumerated() where route.upstreams.contains(where: { $0.scheme == .wss }) {
            do {
                self.routes[index] = try TLSClientContext(configuration: Self.clientConfiguration(route.upstreams.first { $0.scheme == .wss }!.tls))
            } catch {
                throw GatewayError("route \(route.pathPrefix): cannot set up TLS toward its upstreams: \(error)")
            }
        }
    }

    static func serverConfiguration(_ tls: GatewayConfiguration.ServerTLS) -> TLSServerConfiguration {
        let identity =
            tls.inlineIdentity.map { TLSIdentity(certificateChain: .pem($0.certificatePEM), privateKey: .pem($0.privateKeyPEM)) }
            ?? TLSIdentity(certificateChain: .file(tls.certificatePath), privateKey: .file(tls.privateKeyPath))
        return TLSServerConfiguration(defaultIdentity: identity) {
            $0.minimumVersion = tls.minimumVersion == .v1_3 ? .tls1_3 : .tls1_2
            $0.virtualHosts = tls.sniCertificates.map {
                TLSVirtualHost(
                    serverNames: $0.serverNames,
                    identity: TLSIdentity(certificateChain: .file($0.certificatePath), privateKey: .file($0.privateKeyPath))
                )
            }
        }
    }

    static func clientConfiguration(_ tls: GatewayConfiguration.UpstreamTLS) -> TLSClientConfiguration {
        TLSClientConfiguration {
            $0.certificateVerification = tls.verify ? .fullVerification : .none
            if let ca = tls.caPath { $0.trustRoots = .certificates(.file(ca)) }
            if let certificate = tls.clientCertificatePath, let key = tls.clientPrivateKeyPath {
                $0.identity = TLSIdentity(certificateChain: .file(certificate), privateKey: .file(key))
            }
        }
    }
}

extension TLSError {
    /// The text a client or an operator reads: the class and OpenSSL's reason.
    var summary: String { "\(self.code): \(self.reason)" }
}
