import Yams

/// A position in the document: `routes[1].upstreams[0]`.
struct ConfigPath: Hashable, Sendable, CustomStringConvertible {
    var description: String = ""

    func key(_ name: String) -> ConfigPath {
        ConfigPath(description: self.description.isEmpty ? name : "\(self.description).\(name)")
    }

    func index(_ index: Int) -> ConfigPath {
        ConfigPath(description: "\(self.description)[\(index)]")
    }

    func error(_ code: ConfigurationError.Code, _ message: String) -> ConfigurationError {
        ConfigurationError(code, keyPath: self.description, message: message)
    }
}

/// One node of the document with its key path; the typed accessors throw errors that name the path.
/// Quantities (sizes, durations) are read in `QuantitySyntax.swift`.
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

    /// Whether the node is a scalar that YAML's core schema resolves to `tag` (`true` is a bool).
    func isScalar(resolvedAs tag: Tag.Name) -> Bool {
        guard case .scalar(let scalar) = self.node else { return false }
        return scalar.resolvedTagName == tag
    }

    /// The scalar's text as written (quotes removed). `8443`, `10s` and `"1.2"` all come back as text.
    func string() throws(ConfigurationError) -> String {
        guard case .scalar(let scalar) = self.node, scalar.resolvedTagName != .null else {
            throw self.path.error(.wrongType, "expected a string, found \(self.kind)")
        }
        return scalar.string
    }

    /// A list; each element carries its index in the path.
    func list() throws(ConfigurationError) -> [YAMLField] {
        guard case .sequence(let sequence) = self.node else {
            throw self.path.error(.wrongType, "expected a list, found \(self.kind)")
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

    /// `true` or `false` (YAML 1.2 core schema spellings: `true`, `True`, `TRUE`, and the same for false).
    func bool() throws(ConfigurationError) -> Bool {
        switch try self.string() {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        case let other: throw self.path.error(.invalidValue, "\(quote(other)) is not a boolean (use true or false)")
        }
    }

    /// A count: a whole number, no unit.
    func count() throws(ConfigurationError) -> Int {
        let text = try self.string()
        let digits = text.hasPrefix("-") ? text.dropFirst() : Substring(text)
        guard !digits.isEmpty, digits.allSatisfy(\.isASCIIDigit) else {
            throw self.path.error(.invalidValue, "\(quote(text)) is not a whole number")
        }
        guard let value = Int(text) else { throw self.path.error(.outOfRange, "\(text) is too large") }
        return value
    }

    /// A count within `range`; `why` is appended to the out-of-range message.
    func count(in range: ClosedRange<Int>, _ why: String = "") throws(ConfigurationError) -> Int {
        let value = try self.count()
        guard range.contains(value) else {
            throw self.path.error(.outOfRange, "\(value) is out of range \(range.lowerBound)–\(range.upperBound)\(why)")
        }
        return value
    }

    /// One of a fixed set of words (`negotiate`, `strip`); `expected` completes "is not …" in the error.
    func word<Value>(_ parse: (String) -> Value?, expected: String) throws(ConfigurationError) -> Value {
        let text = try self.string()
        guard let value = parse(text) else { throw self.path.error(.invalidValue, "\(quote(text)) is not \(expected)") }
        return value
    }

    /// Whether a scalar says `off`.
    func isOff() throws(ConfigurationError) -> Bool {
        guard case .scalar = self.node else { return false }
        return try self.string() == "off"
    }
}

extension Node.Scalar {
    /// The tag the default resolver gives the scalar (`null` for `~`, an empty value or `null`).
    var resolvedTagName: Tag.Name { Tag.Name(rawValue: Node.scalar(self).tag.rawValue) }
}

extension Character {
    /// One of `0`–`9` (a combining mark after a digit makes it another character).
    var isASCIIDigit: Bool { self.isASCII && ("0"..."9").contains(self) }
}

/// A mapping checked against the keys the schema allows at its position (`YAMLSchema` builds one).
struct YAMLMapping {
    var path: ConfigPath
    private var values: [String: Node] = [:]

    init(_ field: YAMLField, keys allowed: [String]) throws(ConfigurationError) {
        self.path = field.path
        guard case .mapping(let mapping) = field.node else {
            let keys = allowed.joined(separator: ", ")
            throw field.path.error(.wrongType, "expected a mapping (with keys \(keys)), found \(field.kind)")
        }
        for (keyNode, value) in mapping {
            guard case .scalar(let keyScalar) = keyNode else {
                let kind = YAMLField(node: keyNode, path: field.path).kind
                throw field.path.error(.wrongType, "keys must be plain strings, found \(kind)")
            }
            let key = keyScalar.string
            guard allowed.contains(key) else {
                throw field.path.key(key).error(.unknownKey, Self.unknownKeyMessage(key, allowed: allowed))
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

    /// True when the key is written with no value (`key:`, `key: null`, `key: ~`), which ``optional(_:)``
    /// reads as absent.
    func hasNoValue(_ key: String) -> Bool {
        self.values[key] != nil && self.optional(key) == nil
    }

    /// The key's value, which must be present and not empty.
    func required(_ key: String) throws(ConfigurationError) -> YAMLField {
        guard let field = self.optional(key) else {
            let problem = self.values[key] == nil ? "required key is missing" : "required key has no value"
            throw self.path.key(key).error(.missingKey, problem)
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
