import Foundation
import Yams

/// A configuration that cannot be used: where it is wrong and what is wrong.
///
/// `keyPath` names the place in the YAML file in the file's own spelling (`routes[1].upstreams[0]`,
/// `limits.max_message`); it is empty for errors about the file as a whole (a YAML syntax error, a file
/// that cannot be read). Two errors are equal when both the place and the message are.
public struct ConfigurationError: Error, CustomStringConvertible, Hashable, Sendable {
    /// Where: a dotted key path with list indices, for example `listeners[0].tls.certificate`.
    public var keyPath: String
    /// What is wrong, written for the person editing the file.
    public var message: String

    public init(keyPath: String, message: String) {
        self.keyPath = keyPath
        self.message = message
    }

    /// `"keyPath: message"`, or the message alone when there is no key path.
    public var description: String {
        self.keyPath.isEmpty ? self.message : "\(self.keyPath): \(self.message)"
    }
}

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

    /// Parses a duration in human units: one or more `<whole number><unit>` parts with the units
    /// `h`, `m`, `s`, `ms` in that order, each at most once (`250ms`, `10s`, `2m`, `1h`, `1m30s`).
    /// Returns `nil` for anything else: a bare number, spaces, fractions, upper-case units, or a total
    /// over `Int64.max` nanoseconds (about 292 years).
    public static func parseDuration(_ text: String) -> Duration? {
        guard case .value(let duration) = DurationSyntax.parse(text) else { return nil }
        return duration
    }

    /// Parses a size in bytes: a whole number with an optional unit, case-sensitive: `B`; binary
    /// `KiB`, `MiB`, `GiB` (powers of 1,024); decimal `KB`, `MB`, `GB` (powers of 1,000, so `64KB` is
    /// 64,000). Returns `nil` for anything else, and when the result would overflow `Int`.
    public static func parseSize(_ text: String) -> Int? {
        guard case .value(let size) = SizeSyntax.parse(text) else { return nil }
        return size
    }
}

// MARK: - Errors from Yams and from the file system

extension ConfigurationError {
    /// A YAML syntax error, with its line and column (1-based).
    init(yamlError error: any Error) {
        guard let yamlError = error as? YamlError else {
            self.init(keyPath: "", message: "YAML error: \(error)")
            return
        }
        func located(_ context: YamlError.Context?, _ problem: String, _ mark: Mark) -> String {
            var text = "YAML syntax error at line \(mark.line), column \(mark.column): \(problem)"
            if let context {
                text += " (\(context.text) at line \(context.mark.line), column \(context.mark.column))"
            }
            return text
        }
        switch yamlError {
        case .scanner(let context, let problem, let mark, _):
            self.init(keyPath: "", message: located(context, problem, mark))
        case .parser(let context, let problem, let mark, _):
            self.init(keyPath: "", message: located(context, problem, mark))
        case .composer(let context, let problem, let mark, _):
            // libyaml's composer context is the first half of the sentence ("expected a single document in
            // the stream" … "but found another document"), and its mark is not useful.
            let sentence = context.map { "\($0.text) \(problem)" } ?? problem
            self.init(keyPath: "", message: "YAML error at line \(mark.line), column \(mark.column): \(sentence)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.map { quote($0) }.joined(separator: ", ")
            let mark = context.mark
            self.init(
                keyPath: "",
                message: "YAML error at line \(mark.line), column \(mark.column): duplicate key \(keys) in one mapping"
            )
        case .reader(let problem, _, _, _):
            self.init(keyPath: "", message: "YAML input error: \(problem)")
        case .no, .memory, .writer, .emitter, .representer, .dataCouldNotBeDecoded:
            self.init(keyPath: "", message: "YAML error: \(yamlError)")
        }
    }
}

/// Reads a whole file as UTF-8; failures say why (missing, a directory, unreadable, not UTF-8).
private func readConfigurationFile(atPath path: String, displayPath: String) throws(ConfigurationError) -> String {
    func failure(_ reason: String) -> ConfigurationError {
        ConfigurationError(keyPath: "", message: "cannot read configuration file \(quote(displayPath)): \(reason)")
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

// MARK: - Key paths and fields

/// A value as it appears in messages: in double quotes, with Swift escapes (`"10 MB"`).
func quote(_ text: String) -> String {
    String(reflecting: text)
}

/// A position in the document: `routes[1].upstreams[0]`.
struct ConfigPath: Hashable, Sendable, CustomStringConvertible {
    var description: String = ""

    func key(_ name: String) -> ConfigPath {
        ConfigPath(description: self.description.isEmpty ? name : "\(self.description).\(name)")
    }

    func index(_ index: Int) -> ConfigPath {
        ConfigPath(description: "\(self.description)[\(index)]")
    }

    func error(_ message: String) -> ConfigurationError {
        ConfigurationError(keyPath: self.description, message: message)
    }
}

/// One node of the document with its key path; the typed accessors throw errors that name the path.
struct YAMLField {
    var node: Node
    var path: ConfigPath

    /// What the node is, for "expected …, found …" messages.
    var kind: String {
        switch self.node {
        case .scalar(let scalar):
            return scalar.resolvedTagName == .null ? "nothing" : "the value \(quote(scalar.string))"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    /// The scalar's text as written (quotes removed). `8443`, `10s` and `"1.2"` all come back as text.
    func string() throws(ConfigurationError) -> String {
        guard case .scalar(let scalar) = self.node, scalar.resolvedTagName != .null else {
            throw self.path.error("expected a string, found \(self.kind)")
        }
        return scalar.string
    }

    /// A list; each element carries its index in the path.
    func list() throws(ConfigurationError) -> [YAMLField] {
        guard case .sequence(let sequence) = self.node else {
            throw self.path.error("expected a list, found \(self.kind)")
        }
        return sequence.enumerated().map { YAMLField(node: $0.element, path: self.path.index($0.offset)) }
    }

    /// A list of strings.
    func strings() throws(ConfigurationError) -> [String] {
        var result: [String] = []
        for element in try self.list() {
            result.append(try element.string())
        }
        return result
    }

    /// A mapping whose keys must all be in `keys`.
    func mapping(keys: [String]) throws(ConfigurationError) -> YAMLMapping {
        try YAMLMapping(self, keys: keys)
    }

    /// `true` or `false` (YAML 1.2 core schema spellings: `true`, `True`, `TRUE`, and the same for false).
    func bool() throws(ConfigurationError) -> Bool {
        switch try self.string() {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        case let other: throw self.path.error("\(quote(other)) is not a boolean (use true or false)")
        }
    }

    /// A count: a whole number, no unit.
    func count() throws(ConfigurationError) -> Int {
        let text = try self.string()
        let digits = text.hasPrefix("-") ? text.dropFirst() : Substring(text)
        guard !digits.isEmpty, digits.allSatisfy(\.isASCIIDigit) else {
            throw self.path.error("\(quote(text)) is not a whole number")
        }
        guard let value = Int(text) else { throw self.path.error("\(text) is too large") }
        return value
    }

    /// A size in bytes (``GatewayConfiguration/parseSize(_:)``).
    func size() throws(ConfigurationError) -> Int {
        let text = try self.string()
        switch SizeSyntax.parse(text) {
        case .value(let size): return size
        case .overflow: throw self.path.error("\(quote(text)) is too large (at most \(Int.max) bytes)")
        case .malformed, .bareNumber:
            throw self.path.error("\(quote(text)) is not a size (use B, KiB, MiB, GiB, KB, MB, GB)")
        }
    }

    /// A duration with units (``GatewayConfiguration/parseDuration(_:)``).
    func duration() throws(ConfigurationError) -> Duration {
        let text = try self.string()
        switch DurationSyntax.parse(text) {
        case .value(let duration): return duration
        case .bareNumber: throw self.path.error("\(text) has no unit: add one (ms, s, m, h), for example \(text)s")
        case .overflow: throw self.path.error("\(quote(text)) is too large (at most about 292 years)")
        case .malformed:
            throw self.path.error(
                "\(quote(text)) is not a duration (use ms, s, m, h, e.g. 250ms, 10s, 1m30s)"
            )
        }
    }
}

extension Node.Scalar {
    /// The tag the default resolver gives the scalar (`null` for `~`, an empty value or `null`).
    fileprivate var resolvedTagName: Tag.Name { Tag.Name(rawValue: Node.scalar(self).tag.rawValue) }
}

extension Character {
    /// One of `0`–`9` (a combining mark after a digit makes it another character).
    fileprivate var isASCIIDigit: Bool { self.isASCII && ("0"..."9").contains(self) }
}

/// A mapping checked against the keys the schema allows at its position.
struct YAMLMapping {
    var path: ConfigPath
    private var values: [String: Node] = [:]

    init(_ field: YAMLField, keys allowed: [String]) throws(ConfigurationError) {
        self.path = field.path
        guard case .mapping(let mapping) = field.node else {
            let keys = allowed.joined(separator: ", ")
            throw field.path.error("expected a mapping (with keys \(keys)), found \(field.kind)")
        }
        for (keyNode, value) in mapping {
            guard case .scalar(let keyScalar) = keyNode else {
                let kind = YAMLField(node: keyNode, path: field.path).kind
                throw field.path.error("keys must be plain strings, found \(kind)")
            }
            let key = keyScalar.string
            guard allowed.contains(key) else {
                throw field.path.key(key).error(Self.unknownKeyMessage(key, allowed: allowed))
            }
            self.values[key] = value
        }
    }

    /// The key's value; `nil` when the key is absent or has no value (`key:`, `key: ~`), which both mean
    /// "use the default".
    func optional(_ key: String) -> YAMLField? {
        guard let node = self.values[key] else { return nil }
        if case .scalar(let scalar) = node, scalar.resolvedTagName == .null { return nil }
        return YAMLField(node: node, path: self.path.key(key))
    }

    /// The key's value, which must be present and not empty.
    func required(_ key: String) throws(ConfigurationError) -> YAMLField {
        guard let field = self.optional(key) else {
            let problem = self.values[key] == nil ? "required key is missing" : "required key has no value"
            throw self.path.key(key).error(problem)
        }
        return field
    }

    /// `unknown key "idel" (did you mean "idle"?)`, or the list of valid keys when none is close.
    static func unknownKeyMessage(_ key: String, allowed: [String]) -> String {
        let closest = allowed.map { (name: $0, distance: editDistance($0, key)) }.min { $0.distance < $1.distance }
        if let closest, closest.distance <= max(1, min(3, key.count / 3)) {
            return "unknown key \(quote(key)) (did you mean \(quote(closest.name))?)"
        }
        return "unknown key \(quote(key)) (valid keys: \(allowed.joined(separator: ", ")))"
    }

    /// Edit distance with adjacent transpositions (optimal string alignment), for typo suggestions:
    /// `idel` is one edit from `idle`.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var d = Array(repeating: Array(repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
                }
            }
        }
        return d[a.count][b.count]
    }
}

// MARK: - Durations and sizes

/// The outcome of parsing a quantity, kept apart so that each failure gets its own message.
enum QuantityParseResult<Value: Hashable & Sendable>: Hashable, Sendable {
    case value(Value)
    /// Only digits: a duration needs a unit.
    case bareNumber
    case malformed
    case overflow
}

/// `1h`, `2m`, `10s`, `250ms` and combinations in descending unit order (`1h30m`, `1m30s`).
enum DurationSyntax {
    /// Units, largest first, with their size in nanoseconds.
    static let units: [(name: String, nanoseconds: Int64)] = [
        ("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000), ("ms", 1_000_000),
    ]

    static func parse(_ text: String) -> QuantityParseResult<Duration> {
        let scalars = Array(text.unicodeScalars)
        if !scalars.isEmpty, scalars.allSatisfy({ ("0"..."9").contains($0) }) { return .bareNumber }
        var total: Int64 = 0
        var nextUnit = 0  // index into `units`: each unit at most once, largest first
        var index = 0
        var overflowed = false
        guard !scalars.isEmpty else { return .malformed }
        while index < scalars.count {
            let digitsStart = index
            while index < scalars.count, ("0"..."9").contains(scalars[index]) { index += 1 }
            let unitStart = index
            while index < scalars.count, ("a"..."z").contains(scalars[index]) { index += 1 }
            guard digitsStart < unitStart, unitStart < index else { return .malformed }
            let unitName = String(String.UnicodeScalarView(scalars[unitStart..<index]))
            guard let unitIndex = units.firstIndex(where: { $0.name == unitName }), unitIndex >= nextUnit else {
                return .malformed
            }
            nextUnit = unitIndex + 1
            guard let number = Int64(String(String.UnicodeScalarView(scalars[digitsStart..<unitStart]))) else {
                overflowed = true
                continue
            }
            let (part, multiplyOverflow) = number.multipliedReportingOverflow(by: units[unitIndex].nanoseconds)
            let (sum, addOverflow) = total.addingReportingOverflow(part)
            if multiplyOverflow || addOverflow { overflowed = true }
            total = sum
        }
        return overflowed ? .overflow : .value(.nanoseconds(total))
    }
}

/// `512`, `512B`, `16KiB`, `1MiB`, `1GiB`, `64KB` (64,000), `1MB`, `1GB`.
enum SizeSyntax {
    static let units: [String: Int] = [
        "": 1, "B": 1,
        "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30,
        "KB": 1_000, "MB": 1_000_000, "GB": 1_000_000_000,
    ]

    static func parse(_ text: String) -> QuantityParseResult<Int> {
        let digits = text.prefix { $0.isASCIIDigit }
        guard !digits.isEmpty, let multiplier = units[String(text.dropFirst(digits.count))] else { return .malformed }
        guard let number = Int(digits) else { return .overflow }
        let (size, overflow) = number.multipliedReportingOverflow(by: multiplier)
        return overflow ? .overflow : .value(size)
    }
}

// MARK: - The schema

/// Walks the document by hand, so that every error names its key path.
struct YAMLConfigurationReader {
    var baseDirectory: String?

    func configuration(_ root: YAMLField) throws(ConfigurationError) -> GatewayConfiguration {
        let top = try root.mapping(keys: ["listeners", "routes", "limits", "timeouts", "access_log", "connection_limits", "admin"])
        var listeners: [GatewayConfiguration.Listener] = []
        for field in try top.required("listeners").list() {
            listeners.append(try self.listener(field))
        }
        var routes: [GatewayConfiguration.Route] = []
        for field in try top.required("routes").list() {
            routes.append(try self.route(field))
        }
        var configuration = GatewayConfiguration(listeners: listeners, routes: routes)
        if let field = top.optional("limits") { configuration.limits = try self.limits(field) }
        if let field = top.optional("timeouts") { configuration.timeouts = try self.timeouts(field) }
        if let field = top.optional("access_log") { configuration.accessLog = try self.accessLog(field) }
        if let field = top.optional("connection_limits") { configuration.connectionLimits = try self.connectionLimits(field) }
        if let field = top.optional("admin") { configuration.admin = try self.admin(field) }
        return configuration
    }

    // MARK: Listeners

    func listener(_ field: YAMLField) throws(ConfigurationError) -> GatewayConfiguration.Listener {
        let map = try field.mapping(keys: ["name", "address", "tls", "max_connections"])
        let addressField = try map.required("address")
        let (host, port) = try Self.listenAddress(try addressField.string(), at: addressField.path)
        var listener = GatewayConfiguration.Listener(
            name: try map.optional("name")?.string(),
            host: host,
            port: port,
            tls: try map.optional("tls").map { (field) throws(ConfigurationError) in try self.serverTLS(field) }
        )
        listener.maxConnections = try map.optional("max_connections")?.count()
        return listener
    }

    /// `host:port` or `[ipv6]:port`; the host comes back without brackets.
    static func listenAddress(
        _ text: String,
        at path: ConfigPath
    ) throws(ConfigurationError) -> (host: String, port: Int) {
        let example = "(use host:port, e.g. 0.0.0.0:8443 or [::]:8443)"
        let host: String
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw path.error("\(quote(text)) has no closing \"]\" \(example)")
            }
            host = String(text[text.index(after: text.startIndex)..<close])
            guard HostSyntax.isIPv6Literal(host) else {
                throw path.error("\(quote(host)) is not an IPv6 address")
            }
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw path.error("\(quote(text)) has no port \(example)") }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                throw path.error("\(quote(text)) has no port \(example)")
            }
            host = String(text[..<colon])
            portText = text[text.index(after: colon)...]
            guard !host.contains(":") else {
                throw path.error("\(quote(text)): put an IPv6 address in brackets, e.g. [::1]:8443")
            }
            guard !host.isEmpty else { throw path.error("\(quote(text)) has no host \(example)") }
            guard HostSyntax.isHostName(host) else {
                throw path.error("\(quote(host)) is not an IP address or host name")
            }
        }
        let port = try Self.port(portText, in: text, at: path)
        return (host, port)
    }

    /// A decimal port in 1–65535.
    static func port(_ text: Substring, in whole: String, at path: ConfigPath) throws(ConfigurationError) -> Int {
        guard !text.isEmpty, text.allSatisfy(\.isASCIIDigit) else {
            throw path.error("\(quote(whole)) has no valid port")
        }
        guard let port = Int(text), (1...65535).contains(port) else {
            throw path.error("port \(text) is out of range 1–65535")
        }
        return port
    }

    func serverTLS(_ field: YAMLField) throws(ConfigurationError) -> GatewayConfiguration.ServerTLS {
        let map = try field.mapping(keys: ["certificate", "key", "min_version", "sni"])
        var tls = GatewayConfiguration.ServerTLS(
            certificatePath: try self.filePath(try map.required("certificate")),
            privateKeyPath: try self.filePath(try map.required("key"))
        )
        if let versionField = map.optional("min_version") {
            let text = try versionField.string()
            guard let version = GatewayConfiguration.TLSVersion(rawValue: text) else {
                throw versionField.path.error(
                    "\(quote(text)) is not a supported TLS version (use \"1.2\" or \"1.3\")"
                )
            }
            tls.minimumVersion = version
        }
        if let sniField = map.optional("sni") {
            for entry in try sniField.list() {
                let entryMap = try entry.mapping(keys: ["names", "certificate", "key"])
                tls.sniCertificates.append(
                    GatewayConfiguration.SNICertificate(
                        serverNames: try entryMap.required("names").strings().map { $0.lowercased() },
                        certificatePath: try self.filePath(try entryMap.required("certificate")),
                        privateKeyPath: try self.filePath(try entryMap.required("key"))
                    )
                )
            }
        }
        return tls
    }

    // MARK: Routes

    func route(_ field: YAMLField) throws(ConfigurationError) -> GatewayConfiguration.Route {
        let map = try field.mapping(keys: ["hosts", "path", "upstreams", "subprotocols", "upstream_tls", "origins", "rate_limits", "extensions"])
        let upstreamTLS = try map.optional("upstream_tls").map { (field) throws(ConfigurationError) in
            try self.upstreamTLS(field)
        }
        var upstreams: [GatewayConfiguration.Upstream] = []
        for upstreamField in try map.required("upstreams").list() {
            var upstream = try Self.upstream(try upstreamField.string(), at: upstreamField.path)
            if upstream.scheme == .wss, let upstreamTLS { upstream.tls = upstreamTLS }
            upstreams.append(upstream)
        }
        if upstreamTLS != nil, !upstreams.isEmpty, !upstreams.contains(where: { $0.scheme == .wss }) {
            throw map.path.key("upstream_tls").error("is set but no upstream of this route uses wss://")
        }
        var route = GatewayConfiguration.Route(
            hosts: try map.optional("hosts")?.strings().map { $0.lowercased() } ?? [],
            pathPrefix: try map.optional("path")?.string() ?? "/",
            upstreams: upstreams,
            subprotocols: try map.optional("subprotocols")?.strings() ?? []
        )
        if let field = map.optional("origins") { route.origins = try self.originPolicy(field) }
        if let field = map.optional("rate_limits") { route.rateLimits = try self.rateLimits(field) }
        if let field = map.optional("extensions") { route.extensions = try self.extensions(field) }
        return route
    }

    /// `ws://host[:port][/path]` or `wss://…`; IPv6 literals in brackets. Default ports 80 and 443.
    static func upstream(
        _ text: String,
        at path: ConfigPath
    ) throws(ConfigurationError) -> GatewayConfiguration.Upstream {
        let quoted = quote(text)
        guard let separator = text.range(of: "://"),
            let scheme = GatewayConfiguration.Upstream.Scheme(rawValue: text[..<separator.lowerBound].lowercased())
        else {
            throw path.error("\(quoted) is not a ws:// or wss:// URL")
        }
        let afterScheme = text[separator.upperBound...]
        let authority = afterScheme.prefix { $0 != "/" }
        let pathPart = afterScheme.dropFirst(authority.count)
        if let bad = afterScheme.first(where: { $0 == "?" || $0 == "#" || $0.isWhitespace }) {
            let what = bad == "?" ? "a query" : bad == "#" ? "a fragment" : "white space"
            throw path.error("\(quoted) has \(what): an upstream URL is scheme, host, port and path only")
        }
        guard !authority.contains("@") else {
            throw path.error("\(quoted) has user information: credentials do not belong in the URL")
        }
        let host: String
        var portText: Substring? = nil
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw path.error("\(quoted) has no closing \"]\"") }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            guard HostSyntax.isIPv6Literal(host) else {
                throw path.error("\(quoted): \(quote(host)) is not an IPv6 address")
            }
            let rest = authority[authority.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { throw path.error("\(quoted) has text after the IPv6 address") }
                portText = rest.dropFirst()
            }
        } else {
            if let colon = authority.firstIndex(of: ":") {
                host = String(authority[..<colon])
                portText = authority[authority.index(after: colon)...]
            } else {
                host = String(authority)
            }
            guard !host.isEmpty else { throw path.error("\(quoted) has no host") }
            guard HostSyntax.isHostName(host) else {
                throw path.error("\(quoted): \(quote(host)) is not an IP address or host name")
            }
        }
        let port = try portText.map { (text) throws(ConfigurationError) in try Self.port(text, in: quoted, at: path) }
        return GatewayConfiguration.Upstream(
            scheme: scheme,
            host: host,
            port: port ?? (scheme == .ws ? 80 : 443),
            path: pathPart.isEmpty ? nil : String(pathPart)
        )
    }

    func upstreamTLS(_ field: YAMLField) throws(ConfigurationError) -> GatewayConfiguration.UpstreamTLS {
        let map = try field.mapping(keys: ["verify", "ca", "server_name", "client_certificate", "client_key"])
        var tls = GatewayConfiguration.UpstreamTLS()
        if let verify = map.optional("verify") { tls.verify = try verify.bool() }
        tls.caPath = try self.optionalFilePath(map.optional("ca"))
        tls.serverName = try map.optional("server_name")?.string()
        tls.clientCertificatePath = try self.optionalFilePath(map.optional("client_certificate"))
        tls.clientPrivateKeyPath = try self.optionalFilePath(map.optional("client_key"))
        return tls
    }

    // MARK: Limits, timeouts, access log

    func limits(_ field: YAMLField) throws(ConfigurationError) -> GatewayConfiguration.Limits {
        let map = try field.mapping(keys: [
            "request_head", "request_headers", "max_frame", "max_message", "max_fragments",
            "buffer_high_watermark", "buffer_low_watermark", "compression_memory",
        ])
        var limits = GatewayConfiguration.Limits()
        if let value = map.optional("request_head") { limits.requestHeadBytes = try value.size() }
        if let value = map.optional("request_headers") { limits.requestHeaders = try value.count() }
        if let value = map.optional("max_frame") { limits.maxFrameSize = try value.size() }
        if let value = map.optional("max_message") { limits.maxMessageSize = try value.size() }
        if let value = map.optional("max_fragments") { limits.maxFragments = try value.count() }
        if let value = map.optional("buffer_high_watermark") { limits.bufferHighWatermark = try value.size() }
        if let value = map.optional("buffer_low_watermark") { limits.bufferLowWatermark = try value.size() }
        if let value = map.optional("compression_memory") { limits.compressionMemory = try value.size() }
        return limits
    }

    func timeouts(_ field: YAMLField) throws(ConfigurationError) -> GatewayConfiguration.Timeouts {
        let map = try field.mapping(keys: [
            "request_head", "tls_handshake", "upstream_connect", "upstream_handshake", "close", "idle",
            "ping_interval", "pong_deadline", "max_lifetime", "drain",
        ])
        var timeouts = GatewayConfiguration.Timeouts()
        if let value = map.optional("request_head") { timeouts.requestHead = try value.duration() }
        if let value = map.optional("tls_handshake") { timeouts.tlsHandshake = try value.duration() }
        if let value = map.optional("upstream_connect") { timeouts.upstreamConnect = try value.duration() }
        if let value = map.optional("upstream_handshake") { timeouts.upstreamHandshake = try value.duration() }
        if let value = map.optional("close") { timeouts.close = try value.duration() }
        if let value = map.optional("idle") { timeouts.idle = try value.duration() }
        if let value = map.optional("drain") { timeouts.drain = try value.duration() }
        try self.keepAliveTimeouts(map, into: &timeouts)
        return timeouts
    }

    func accessLog(_ field: YAMLField) throws(ConfigurationError) -> GatewayConfiguration.AccessLogDestination {
        switch try field.string() {
        case "stdout": return .standardOutput
        case "stderr": return .standardError
        case "off": return .off
        case "": throw field.path.error("expected stdout, stderr, off or a file path, found an empty string")
        case let text:
            if case .scalar(let scalar) = field.node, scalar.resolvedTagName == .bool {
                // `access_log: false` would otherwise write to a file named "false".
                throw field.path.error(
                    "\(text) is not stdout, stderr, off or a file path (quote it if it is a file name)"
                )
            }
            return .file(try self.filePath(field))
        }
    }

    /// ``filePath(_:)`` for an optional key.
    func optionalFilePath(_ field: YAMLField?) throws(ConfigurationError) -> String? {
        guard let field else { return nil }
        return try self.filePath(field)
    }

    /// A file path, resolved against the base directory when relative.
    func filePath(_ field: YAMLField) throws(ConfigurationError) -> String {
        let text = try field.string()
        guard !text.isEmpty else { throw field.path.error("expected a file path, found an empty string") }
        guard let baseDirectory, !text.hasPrefix("/") else { return text }
        return joinPath(baseDirectory, text)
    }
}

// MARK: - Host syntax

/// Host names, IP literals and host patterns.
enum HostSyntax {
    /// An IPv4 dotted quad or a DNS name (RFC 1123 labels of letters, digits, `-`; `_` is tolerated for
    /// container service names). IPv4 literals satisfy the same grammar.
    static func isHostName(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 253 else { return false }
        return text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.unicodeScalars.allSatisfy(isLabelScalar)
        }
    }

    private static func isLabelScalar(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
            || scalar == "-" || scalar == "_"
    }

    /// An IPv6 address (without brackets), as `inet_pton` reads it.
    static func isIPv6Literal(_ text: String) -> Bool {
        var address = in6_addr()
        return inet_pton(AF_INET6, text, &address) == 1
    }

    /// A route host or SNI name: an exact name (or bracketed IPv6 literal) or `*.suffix`.
    static func isHostPattern(_ text: String) -> Bool {
        if text.hasPrefix("*.") { return isHostName(String(text.dropFirst(2))) }
        if text.hasPrefix("["), text.hasSuffix("]") { return isIPv6Literal(String(text.dropFirst().dropLast())) }
        return isHostName(text)
    }
}

// MARK: - Validation

extension GatewayConfiguration {
    /// Checks the configuration as a whole; ``init(yaml:baseDirectory:)`` calls it, and a configuration
    /// built in code can call it too. Key paths use the YAML names (`limits.buffer_low_watermark`).
    ///
    /// Rules: at least one listener and one route; ports in 1–65535; no two listeners on the same
    /// address or with the same name; TLS files named; SNI names and route hosts are exact names or
    /// `*.suffix`; route paths start with `/`; no two routes with the same path and an overlapping host;
    /// every route has an upstream; subprotocols are tokens (RFC 6455 §4.1, RFC 7230 §3.2.6); client
    /// certificate and key come together; limits and timeouts are above zero; the low watermark is below
    /// the high one.
    public func validate() throws(ConfigurationError) {
        let root = ConfigPath()
        try self.validateListeners(at: root.key("listeners"))
        try self.validateRoutes(at: root.key("routes"))
        try self.limits.validate(at: root.key("limits"))
        try self.timeouts.validate(at: root.key("timeouts"))
        try self.validatePolicies(at: root)
        try self.validateAdmin(at: root.key("admin"))
        if case .file(let path) = self.accessLog, path.isEmpty {
            throw root.key("access_log").error("expected stdout, stderr, off or a file path, found an empty string")
        }
    }

    private func validateListeners(at path: ConfigPath) throws(ConfigurationError) {
        guard !self.listeners.isEmpty else { throw path.error("at least one listener is required") }
        var addresses: [String: Int] = [:]
        var names: [String: Int] = [:]
        for (index, listener) in self.listeners.enumerated() {
            let listenerPath = path.index(index)
            guard HostSyntax.isHostName(listener.host) || HostSyntax.isIPv6Literal(listener.host) else {
                throw listenerPath.key("address").error(
                    "\(quote(listener.host)) is not an IP address or host name"
                )
            }
            guard (1...65535).contains(listener.port) else {
                throw listenerPath.key("port").error("\(listener.port) is out of range 1–65535")
            }
            let address = GatewayConfiguration.Listener(host: listener.host.lowercased(), port: listener.port).name
            if let other = addresses.updateValue(index, forKey: address) {
                throw listenerPath.key("address").error("\(address) is already used by listeners[\(other)]")
            }
            guard !listener.name.isEmpty else { throw listenerPath.key("name").error("must not be empty") }
            if let other = names.updateValue(index, forKey: listener.name) {
                throw listenerPath.key("name").error(
                    "\(quote(listener.name)) is already used by listeners[\(other)]"
                )
            }
            if let tls = listener.tls { try tls.validate(at: listenerPath.key("tls")) }
        }
    }

    private func validateRoutes(at path: ConfigPath) throws(ConfigurationError) {
        guard !self.routes.isEmpty else { throw path.error("at least one route is required") }
        for (index, route) in self.routes.enumerated() {
            let routePath = path.index(index)
            try route.validate(at: routePath)
            // Two routes with the same prefix and a common host pattern: the second could never match.
            for (otherIndex, other) in self.routes[..<index].enumerated() where other.pathPrefix == route.pathPrefix {
                if route.hosts.isEmpty && other.hosts.isEmpty {
                    throw routePath.error(
                        "routes[\(otherIndex)] already matches every host on path \(route.pathPrefix)"
                    )
                }
                if let host = route.hosts.first(where: other.hosts.contains) {
                    throw routePath.error(
                        "routes[\(otherIndex)] already matches host \(quote(host)) on path \(route.pathPrefix)"
                    )
                }
            }
        }
    }
}

/// TLS file paths may not be empty strings.
private func requireFilePath(_ path: String, at keyPath: ConfigPath) throws(ConfigurationError) {
    guard !path.isEmpty else { throw keyPath.error("expected a file path, found an empty string") }
}

extension GatewayConfiguration.ServerTLS {
    fileprivate func validate(at path: ConfigPath) throws(ConfigurationError) {
        if self.inlineIdentity == nil {
            try requireFilePath(self.certificatePath, at: path.key("certificate"))
            try requireFilePath(self.privateKeyPath, at: path.key("key"))
        }
        for (index, entry) in self.sniCertificates.enumerated() {
            let entryPath = path.key("sni").index(index)
            guard !entry.serverNames.isEmpty else {
                throw entryPath.key("names").error("at least one name is required")
            }
            for (nameIndex, name) in entry.serverNames.enumerated() where !HostSyntax.isHostPattern(name) {
                throw entryPath.key("names").index(nameIndex).error(
                    "\(quote(name)) is not a host name or a *.suffix pattern"
                )
            }
            try requireFilePath(entry.certificatePath, at: entryPath.key("certificate"))
            try requireFilePath(entry.privateKeyPath, at: entryPath.key("key"))
        }
    }
}

extension GatewayConfiguration.Route {
    fileprivate func validate(at path: ConfigPath) throws(ConfigurationError) {
        for (index, host) in self.hosts.enumerated() where !HostSyntax.isHostPattern(host) {
            throw path.key("hosts").index(index).error(
                "\(quote(host)) is not a host name or a *.suffix pattern"
            )
        }
        guard self.pathPrefix.hasPrefix("/") else {
            throw path.key("path").error("\(quote(self.pathPrefix)) must start with \"/\"")
        }
        if self.pathPrefix.contains(where: { $0 == "?" || $0 == "#" || $0.isWhitespace }) {
            throw path.key("path").error(
                "\(quote(self.pathPrefix)) must be a path only (no query, fragment or white space)"
            )
        }
        guard !self.upstreams.isEmpty else { throw path.key("upstreams").error("at least one upstream is required") }
        for (index, upstream) in self.upstreams.enumerated() {
            let upstreamPath = path.key("upstreams").index(index)
            guard HostSyntax.isHostName(upstream.host) || HostSyntax.isIPv6Literal(upstream.host) else {
                throw upstreamPath.error("\(quote(upstream.host)) is not an IP address or host name")
            }
            guard (1...65535).contains(upstream.port) else {
                throw upstreamPath.error("port \(upstream.port) is out of range 1–65535")
            }
            if let upstreamPathPrefix = upstream.path, !upstreamPathPrefix.hasPrefix("/") {
                throw upstreamPath.error("path \(quote(upstreamPathPrefix)) must start with \"/\"")
            }
            try upstream.tls.validate(at: path.key("upstream_tls"))
        }
        for (index, subprotocol) in self.subprotocols.enumerated() where !HTTPToken.isToken(subprotocol) {
            throw path.key("subprotocols").index(index).error(
                "\(quote(subprotocol)) is not a valid subprotocol name "
                    + "(an HTTP token: no spaces, commas or quotes)"
            )
        }
    }
}

extension GatewayConfiguration.UpstreamTLS {
    fileprivate func validate(at path: ConfigPath) throws(ConfigurationError) {
        if let serverName = self.serverName, !HostSyntax.isHostName(serverName) {
            throw path.key("server_name").error("\(quote(serverName)) is not a host name")
        }
        switch (self.clientCertificatePath, self.clientPrivateKeyPath) {
        case (.some, .none): throw path.key("client_key").error("required when client_certificate is set")
        case (.none, .some): throw path.key("client_certificate").error("required when client_key is set")
        case (.some, .some), (.none, .none): break
        }
    }
}

extension GatewayConfiguration.Limits {
    fileprivate func validate(at path: ConfigPath) throws(ConfigurationError) {
        let values: [(String, Int)] = [
            ("request_head", self.requestHeadBytes), ("request_headers", self.requestHeaders),
            ("max_frame", self.maxFrameSize), ("max_message", self.maxMessageSize),
            ("max_fragments", self.maxFragments), ("buffer_high_watermark", self.bufferHighWatermark),
            ("buffer_low_watermark", self.bufferLowWatermark), ("compression_memory", self.compressionMemory ?? 1),
        ]
        for (key, value) in values where value <= 0 {
            throw path.key(key).error("must be greater than zero (found \(value))")
        }
        guard self.bufferLowWatermark < self.bufferHighWatermark else {
            throw path.key("buffer_low_watermark").error(
                "\(self.bufferLowWatermark) bytes must be less than buffer_high_watermark "
                    + "(\(self.bufferHighWatermark) bytes)"
            )
        }
    }
}

extension GatewayConfiguration.Timeouts {
    fileprivate func validate(at path: ConfigPath) throws(ConfigurationError) {
        let values: [(String, Duration)] = [
            ("request_head", self.requestHead), ("tls_handshake", self.tlsHandshake),
            ("upstream_connect", self.upstreamConnect), ("upstream_handshake", self.upstreamHandshake),
            ("close", self.close), ("idle", self.idle), ("drain", self.drain),
        ]
        for (key, value) in values where value <= .zero {
            throw path.key(key).error("must be greater than zero (found \(value))")
        }
    }
}

/// RFC 7230 §3.2.6 `token`: what `Sec-WebSocket-Protocol` values are made of (RFC 6455 §4.1).
enum HTTPToken {
    static func isToken(_ text: String) -> Bool {
        !text.isEmpty
            && text.unicodeScalars.allSatisfy { scalar in
                ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
                    || "!#$%&'*+-.^_`|~".unicodeScalars.contains(scalar)
            }
    }
}
