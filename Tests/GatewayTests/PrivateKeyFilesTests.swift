import Foundation
import TLSShim
import Testing

@testable import Gateway

/// Issue #11 §4: a private key that other users can read is refused; one only the group can read is
/// allowed with a warning (Kubernetes secrets for non-root users look like that).
@Suite struct PrivateKeyFilesTests {
    @Test func verdictByMode() {
        #expect(PrivateKeyFiles.verdict(mode: 0o100600) == .ok)
        #expect(PrivateKeyFiles.verdict(mode: 0o100400) == .ok)
        #expect(PrivateKeyFiles.verdict(mode: 0o100640) == .groupReadable)
        #expect(PrivateKeyFiles.verdict(mode: 0o100440) == .groupReadable)
        #expect(PrivateKeyFiles.verdict(mode: 0o100644) == .exposed)
        #expect(PrivateKeyFiles.verdict(mode: 0o100604) == .exposed)
        #expect(PrivateKeyFiles.verdict(mode: 0o100620) == .exposed)
        #expect(PrivateKeyFiles.verdict(mode: 0o100602) == .exposed)
    }

    private func configuration(keyMode: Int, in directory: String) throws -> GatewayConfiguration {
        let key = directory + "/key.pem"
        try Data("not read by this check".utf8).write(to: URL(fileURLWithPath: key))
        try FileManager.default.setAttributes([.posixPermissions: keyMode], ofItemAtPath: key)
        var configuration = GatewayConfiguration(
            listeners: [.init(name: "tls", host: "127.0.0.1", port: 0)],
            routes: [.init(pathPrefix: "/", upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 1)])]
        )
        configuration.listeners[0].tls = TLSServerConfiguration(
            defaultIdentity: TLSIdentity(certificateChain: .file(directory + "/cert.pem"), privateKey: .file(key))
        )
        return configuration
    }

    @Test func aWorldReadableKeyIsRefusedAndAGroupReadableOneWarned() throws {
        let directory = NSTemporaryDirectory() + "wsgate-keys-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: directory) }

        #expect(throws: GatewayError.self) { try PrivateKeyFiles.check(try configuration(keyMode: 0o644, in: directory)) }
        let exposed = try configuration(keyMode: 0o644, in: directory)
        do {
            _ = try PrivateKeyFiles.check(exposed)
        } catch {
            #expect(error.description.contains("key.pem has mode 644"))
        }
        // The environment (start and reload) refuses it before OpenSSL is asked to read the key.
        #expect(throws: GatewayError.self) { try GatewayEnvironment(try configuration(keyMode: 0o604, in: directory)) }

        let warnings = try PrivateKeyFiles.check(try configuration(keyMode: 0o640, in: directory))
        #expect(warnings.count == 1 && warnings[0].contains("readable by its group"))
        #expect(try PrivateKeyFiles.check(try configuration(keyMode: 0o600, in: directory)).isEmpty)
    }

    @Test func inlineIdentitiesAndMissingFilesAreLeftToTheLoader() throws {
        var configuration = GatewayConfiguration(
            listeners: [.init(name: "tls", host: "127.0.0.1", port: 0)],
            routes: [.init(pathPrefix: "/", upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 1)])]
        )
        configuration.listeners[0].tls = TLSServerConfiguration(defaultIdentity: TLSIdentity(certificateChain: .pem("c"), privateKey: .pem("k")))
        #expect(PrivateKeyFiles.paths(in: configuration).isEmpty)
        configuration.listeners[0].tls?.virtualHosts = [
            TLSVirtualHost(serverNames: ["a.example"], identity: TLSIdentity(certificateChain: .file("/v.pem"), privateKey: .file("/v.key")))
        ]
        var upstreamTLS = GatewayConfiguration.UpstreamTLS()
        upstreamTLS.configuration.identity = TLSIdentity(certificateChain: .file("/c.pem"), privateKey: .file("/c.key"))
        configuration.routes[0].upstreamTLS = upstreamTLS
        #expect(PrivateKeyFiles.paths(in: configuration) == ["/v.key", "/c.key"])
        configuration.listeners[0].tls = TLSServerConfiguration(
            defaultIdentity: TLSIdentity(certificateChain: .file("/nonexistent/c.pem"), privateKey: .file("/nonexistent/k.pem"))
        )
        #expect(try PrivateKeyFiles.check(configuration).isEmpty)
    }
}
