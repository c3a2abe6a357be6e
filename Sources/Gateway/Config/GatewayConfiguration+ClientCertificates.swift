import Foundation
import TLSShim

/// Client certificates (mutual TLS, issue #13 §1): `client_auth` on a TLS listener and on each of its
/// `sni` entries, and `client_cert` on a route. Documented in `config/example.yaml` and the README.
///
/// `client_auth` at the listener applies to connections without SNI or with a name no `sni` entry
/// matches; an `sni` entry has its own and inherits nothing, so a name without `client_auth` asks for
/// no certificate.
extension GatewayConfiguration {
    /// What a route does with the client certificate of the connection (``Route/clientCertificate``).
    public enum ClientCertificatePolicy: String, Sendable, Hashable, CaseIterable {
        /// 403 without a verified client certificate (with `client_auth.mode: optional` on the listener,
        /// some routes can insist and others not); forwarded as with ``forward``.
        case require
        /// The verified certificate, if any, goes upstream in `X-Forwarded-Client-Cert` (the default).
        case forward
        /// Nothing is forwarded.
        case off
    }
}

extension TLSClientAuthentication {
    static let yaml = YAMLSchema<Self>([
        .required("ca") { value, field, reader throws(ConfigurationError) in
            value.trustRoots = .file(try reader.filePath(field))
        },
        .optional("mode") { value, field, _ throws(ConfigurationError) in
            value.mode = try field.word({ ["require": Mode.require, "optional": .optional][$0] }, expected: "require or optional")
        },
        .optional("depth") { value, field, _ throws(ConfigurationError) in
            value.verifyDepth = try field.count(in: TLSClientAuthentication.depthRange, " (intermediate CAs allowed below a trusted CA)")
        },
    ])

    /// The `client_auth` key of a listener's `tls` or of an `sni` entry.
    static func key<Value>(_ keyPath: WritableKeyPath<Value, TLSClientAuthentication?> & Sendable) -> YAMLSchema<Value>.Key {
        .optional("client_auth") { value, field, reader throws(ConfigurationError) in
            var authentication = TLSClientAuthentication(trustRoots: .file(""))
            try Self.yaml.read(field, into: &authentication, with: reader)
            value[keyPath: keyPath] = authentication
        }
    }

    /// Checks that hold without reading the file (code-built configurations too).
    func validate(at path: ConfigPath) throws(ConfigurationError) {
        if self.trustRoots.filePath?.isEmpty == true {
            throw path.key("ca").error(.invalidValue, "expected a file path, found an empty string")
        }
        guard Self.depthRange.contains(self.verifyDepth) else {
            throw path.key("depth").error(
                .outOfRange,
                "\(self.verifyDepth) is out of range \(Self.depthRange.lowerBound)–\(Self.depthRange.upperBound)"
            )
        }
    }

    /// Why the CA file cannot be used (missing, a directory, unreadable), or nil; read at start and on
    /// every reload, before the TLS contexts are built, so the error names the file and the key.
    func caFileProblem() -> String? {
        guard let path = self.trustRoots.filePath else { return nil }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return "\(path): no such file" }
        guard !isDirectory.boolValue else { return "\(path): is a directory" }
        guard FileManager.default.isReadableFile(atPath: path) else { return "\(path): permission denied" }
        return nil
    }
}

extension TLSServerConfiguration {
    /// Every `client_auth` with the key path it was configured under (`tls.client_auth`,
    /// `tls.sni[1].client_auth`).
    var clientAuthenticationSettings: [(path: String, authentication: TLSClientAuthentication)] {
        var settings: [(String, TLSClientAuthentication)] = []
        if let authentication = self.clientAuthentication { settings.append(("tls.client_auth", authentication)) }
        for (index, host) in self.virtualHosts.enumerated() {
            if let authentication = host.clientAuthentication { settings.append(("tls.sni[\(index)].client_auth", authentication)) }
        }
        return settings
    }
}
