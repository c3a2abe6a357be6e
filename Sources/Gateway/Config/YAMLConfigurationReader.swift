import Foundation
import TLSShim
import Yams

// MARK: - Public entry points

extension GatewayConfiguration {
    /// Parses and validates a YAML configuration (the schema is documented in `config/example.yaml`).
    ///
    /// Keys are snake_case; an unknown key is an error (a typo must not silently fall back to a
    /// default). Durations need a unit (`250ms`, `10s`, `1m30s`), sizes may have one (`512`, `16KiB`,
    /// `64KB`). After parsing, ``validate()`` checks the value as a whole.
    ///
    /// - Parameters:
    ///   - yaml: The document.
    ///   - baseDirectory: Relative file paths (certificates, keys, CA bundles, the access-log file) are
    ///     resolved against it; `nil` leaves them as written.
    /// - Throws: ``ConfigurationError`` naming the key path and the problem.
    public init(yaml: String, baseDirectory: String? = nil) throws(ConfigurationError) {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw ConfigurationError(yamlError: error)
        }
        guard let root else {
            throw ConfigurationError(
                .emptyDocument,
                keyPath: "",
                message: "the configuration is empty: it needs at least `listeners` and `routes`"
            )
        }
        let reader = YAMLConfigurationReader(baseDirectory: baseDirectory)
        self = try reader.configuration(YAMLField(node: root, path: ConfigPath()))
        try self.validate()
    }

    /// Reads, parses and validates the configuration file at `path`. Relative paths inside it are
    /// resolved against the file's directory.
    ///
    /// > Note: This does blocking file I/O: call it at start-up or on reload, never on an event loop.
    public static func load(path: String) throws(ConfigurationError) -> GatewayConfiguration {
        let absolutePath = path.hasPrefix("/") ? path : joinPath(FileManager.default.currentDirectoryPath, path)
        let text = try readConfigurationFile(atPath: absolutePath, displayPath: path)
        let directory = (absolutePath as NSString).deletingLastPathComponent
        return try GatewayConfiguration(yaml: text, baseDirectory: directory)
    }
}

/// Reads the document with the schemas of `GatewayConfiguration+YAML.swift` and the files next to it
/// (``YAMLSchema``), so that every error names its key path. Holds what reading needs besides the
/// document: the directory relative file paths are resolved against.
struct YAMLConfigurationReader: Sendable {
    var baseDirectory: String?

    /// Every mapping of the schema with its place in the document in README's spelling (`[]` for "each
    /// list element"), for README's configuration reference (`OperationsDocumentationTests` compares
    /// the two key for key).
    static var sections: [(path: String, keys: [String])] {
        [
            ("", GatewayConfiguration.yaml.names),
            ("listeners[]", GatewayConfiguration.Listener.yaml.names),
            ("listeners[].tls", TLSServerConfiguration.yaml.names),
            ("listeners[].tls.sni[]", TLSVirtualHost.yaml.names),
            ("listeners[].tls.client_auth", TLSClientAuthentication.yaml.names),
            ("listeners[].tls.sni[].client_auth", TLSClientAuthentication.yaml.names),
            ("routes[]", GatewayConfiguration.Route.yaml.names),
            ("routes[].upstream_tls", UpstreamTLSDraft.yaml.names),
            ("routes[].origins", GatewayConfiguration.OriginPolicy.yaml.names),
            ("routes[].rate_limits", GatewayConfiguration.RateLimits.yaml.names),
            // Both directions share one schema, and every `{ rate, burst }` mapping another; README
            // documents them once under these placeholder names.
            ("routes[].rate_limits.<direction>", GatewayConfiguration.DirectionRateLimits.yaml.names),
            ("(rate)", RateDraft.yaml.names),
            ("routes[].extensions", GatewayConfiguration.Extensions.yaml.names),
            ("routes[].extensions.permessage_deflate", GatewayConfiguration.PerMessageDeflatePolicy.yaml.names),
            ("routes[].auth", GatewayConfiguration.RouteAuthentication.yaml.names),
            ("routes[].auth.jwt", GatewayConfiguration.JWTAuthentication.yaml.names),
            ("routes[].auth.forward", GatewayConfiguration.ForwardAuthentication.yaml.names),
            ("limits", GatewayConfiguration.Limits.yaml.names),
            ("limits.http2", GatewayConfiguration.HTTP2Limits.yaml.names),
            ("timeouts", GatewayConfiguration.Timeouts.yaml.names),
            ("connection_limits", GatewayConfiguration.ConnectionLimits.yaml.names),
            ("admin", GatewayConfiguration.Admin.yaml.names),
            ("admin.tap", GatewayConfiguration.Admin.Tap.yaml.names),
        ]
    }

    func configuration(_ root: YAMLField) throws(ConfigurationError) -> GatewayConfiguration {
        var configuration = GatewayConfiguration(listeners: [], routes: [])
        try GatewayConfiguration.yaml.read(root, into: &configuration, with: self)
        return configuration
    }

    /// A list whose elements are each read by `element`.
    func list<Element>(
        _ field: YAMLField,
        _ element: (YAMLField) throws(ConfigurationError) -> Element
    ) throws(ConfigurationError) -> [Element] {
        var result: [Element] = []
        for entry in try field.list() {
            result.append(try element(entry))
        }
        return result
    }

    /// A file path, resolved against the base directory when relative.
    func filePath(_ field: YAMLField) throws(ConfigurationError) -> String {
        let text = try field.string()
        guard !text.isEmpty else { throw field.path.error(.invalidValue, "expected a file path, found an empty string") }
        guard let baseDirectory, !text.hasPrefix("/") else { return text }
        return joinPath(baseDirectory, text)
    }
}

/// Reads a whole file as UTF-8; failures say why (missing, a directory, unreadable, not UTF-8).
private func readConfigurationFile(atPath path: String, displayPath: String) throws(ConfigurationError) -> String {
    func failure(_ reason: String) -> ConfigurationError {
        ConfigurationError(.unreadableFile, keyPath: "", message: "cannot read configuration file \(quote(displayPath)): \(reason)")
    }
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw failure("no such file")
    }
    guard !isDirectory.boolValue else { throw failure("it is a directory") }
    guard let data = FileManager.default.contents(atPath: path) else {
        throw failure(FileManager.default.isReadableFile(atPath: path) ? "read failed" : "permission denied")
    }
    guard let text = String(data: data, encoding: .utf8) else { throw failure("it is not UTF-8 text") }
    return text
}

/// `base/relative`, with `.` segments and repeated slashes removed (`..` is kept: it is the file
/// system's business).
func joinPath(_ base: String, _ relative: String) -> String {
    let segments = (base + "/" + relative).split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
    return (base.hasPrefix("/") ? "/" : "") + segments.joined(separator: "/")
}
