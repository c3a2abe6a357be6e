import Foundation
import TLSShim

@testable import Gateway

/// A temporary directory with a TLS listener's `cert.pem` and `key.pem` (and the test CA as `ca.pem`),
/// which a reload test rewrites between reloads; removed on deinit.
final class ReloadCertificateDirectory: Sendable {
    let directory: URL

    init() throws {
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-reload-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        try GatewayTLSTests.ca.certificatePEM.write(toFile: self.path("ca.pem"), atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(at: self.directory) }

    func path(_ name: String) -> String { self.directory.appendingPathComponent(name).path }

    /// A listener TLS configuration that reads `cert.pem` and `key.pem` from this directory (at start and
    /// at every reload).
    var listenerTLS: TLSServerConfiguration {
        TLSServerConfiguration(defaultIdentity: TLSIdentity(certificateChain: .file(self.path("cert.pem")), privateKey: .file(self.path("key.pem"))))
    }

    /// A certificate for `localhost` with `commonName`, issued by the test CA.
    static func certificate(_ commonName: String) throws -> TLSGeneratedCertificate {
        try TLSCertificateGenerator.make(
            TLSCertificateRequest(commonName: commonName) { $0.dnsNames = ["localhost"] },
            issuedBy: GatewayTLSTests.ca
        )
    }

    /// Installs a new certificate for `localhost` with `commonName` (and its key).
    func install(commonName: String) throws {
        let certificate = try Self.certificate(commonName)
        try self.install(certificate: certificate.certificatePEM, key: certificate.privateKeyPEM)
    }

    /// Writes `cert.pem` and `key.pem` (mode 0600, as `PrivateKeyFiles` wants for the key); `nil` removes
    /// the file, for the refused-reload cases.
    func install(certificate: String?, key: String?) throws {
        for (name, contents) in [("cert.pem", certificate), ("key.pem", key)] {
            try? FileManager.default.removeItem(atPath: self.path(name))
            guard let contents else { continue }
            try contents.write(toFile: self.path(name), atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: self.path(name))
        }
    }
}
