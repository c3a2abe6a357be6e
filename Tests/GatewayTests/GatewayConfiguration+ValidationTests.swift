import TLSShim
import Testing

@testable import Gateway

/// `GatewayConfiguration.validate()` on configurations built in code (YAML documents that break a rule
/// are in the invalid-document table of `GatewayConfiguration+YAMLTests`).
@Suite struct GatewayConfigurationValidationTests {
    @Test func validateChecksConfigurationsBuiltInCode() throws {
        var configuration = GatewayConfiguration(
            listeners: [.init(host: "0.0.0.0", port: 70000)],
            routes: [.init(upstreams: [.init(scheme: .ws, host: "a", port: 80)])]
        )
        #expect(throws: ConfigurationError(.outOfRange, keyPath: "listeners[0].port", message: "70000 is out of range 1–65535")) {
            try configuration.validate()
        }
        configuration.listeners[0].port = 8080
        try configuration.validate()
        configuration.routes[0].upstreams[0].path = "x"
        #expect(throws: ConfigurationError(.invalidValue, keyPath: "routes[0].upstreams[0]", message: #"path "x" must start with "/""#)) {
            try configuration.validate()
        }
        configuration.routes[0].upstreams = []
        #expect(throws: ConfigurationError(.missingKey, keyPath: "routes[0].upstreams", message: "at least one upstream is required")) {
            try configuration.validate()
        }
    }

    @Test func tlsFilesAreNamedAndInMemoryIdentitiesAreNotChecked() throws {
        var configuration = GatewayConfiguration(
            listeners: [.init(host: "0.0.0.0", port: 8443)],
            routes: [.init(upstreams: [.init(scheme: .wss, host: "a", port: 443)])]
        )
        configuration.listeners[0].tls = TLSServerConfiguration(defaultIdentity: TLSIdentity(certificateChain: .file(""), privateKey: .file("k")))
        #expect(
            throws: ConfigurationError(.invalidValue, keyPath: "listeners[0].tls.certificate", message: "expected a file path, found an empty string")
        ) {
            try configuration.validate()
        }
        configuration.listeners[0].tls = TLSServerConfiguration(defaultIdentity: TLSIdentity(certificateChain: .pem("x"), privateKey: .pem("y")))
        try configuration.validate()
        configuration.routes[0].upstreamTLS = .init(serverName: "not a name")
        #expect(
            throws: ConfigurationError(.invalidValue, keyPath: "routes[0].upstream_tls.server_name", message: #""not a name" is not a host name"#)
        ) {
            try configuration.validate()
        }
        configuration.routes[0].upstreamTLS = .init(serverName: "a.internal")
        configuration.routes[0].upstreams[0].scheme = .ws
        #expect(throws: ConfigurationError(.conflict, keyPath: "routes[0].upstream_tls", message: "is set but no upstream of this route uses wss://"))
        {
            try configuration.validate()
        }
    }
}
