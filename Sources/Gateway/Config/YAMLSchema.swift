/// How one mapping of the configuration file is read: its keys, in the order they are read and listed in
/// messages, each with how its value is stored.
///
/// **Adding a key** is one entry in the schema of its mapping (`GatewayConfiguration+YAML.swift` and the
/// `…YAML` files next to it), plus its row in README's configuration reference and its documented
/// example in `config/example.yaml`; limits that span keys go to `GatewayConfiguration+Validation.swift`.
/// **Adding a mapping** is a schema, a `.section` (or `.list`) entry in its parent, and a line in
/// ``YAMLConfigurationReader/sections`` (which `OperationsDocumentationTests` compares with README).
///
/// ```swift
/// static let yaml = YAMLSchema<Self>([
///     .duration("idle", \.idle),
///     .optional("access_log") { value, field, reader throws(ConfigurationError) in … },
/// ])
/// ```
struct YAMLSchema<Value>: Sendable {
    typealias Read = @Sendable (inout Value, YAMLField, YAMLConfigurationReader) throws(ConfigurationError) -> Void

    /// One key of the mapping.
    struct Key: Sendable {
        var name: String
        /// A required key that is absent or empty is an error; an optional one keeps the default.
        var isRequired: Bool
        var read: Read

        /// A key whose absence (or empty value) keeps the default.
        static func optional(_ name: String, _ read: @escaping Read) -> Key {
            Key(name: name, isRequired: false, read: read)
        }

        /// A key that must be present and not empty.
        static func required(_ name: String, _ read: @escaping Read) -> Key {
            Key(name: name, isRequired: true, read: read)
        }
    }

    var keys: [Key]

    init(_ keys: [Key]) { self.keys = keys }

    /// The key names, in schema order.
    var names: [String] { self.keys.map(\.name) }

    /// Reads the mapping `field` into `value`, key by key in schema order. Unknown keys are errors (with
    /// a did-you-mean suggestion); keys that are absent or empty keep the value's defaults. Returns the
    /// mapping for checks that span keys.
    @discardableResult
    func read(
        _ field: YAMLField,
        into value: inout Value,
        with reader: YAMLConfigurationReader
    ) throws(ConfigurationError) -> YAMLMapping {
        let mapping = try YAMLMapping(field, keys: self.names)
        for key in self.keys {
            let entry = key.isRequired ? try mapping.required(key.name) : mapping.optional(key.name)
            guard let entry else { continue }
            try key.read(&value, entry, reader)
        }
        return mapping
    }
}

// MARK: - Keys for common value kinds

extension YAMLSchema.Key {
    /// A nested mapping read with its own schema into the value's default.
    static func section<Section>(
        _ name: String,
        _ keyPath: WritableKeyPath<Value, Section> & Sendable,
        _ schema: YAMLSchema<Section>
    ) -> Self {
        .optional(name) { value, field, reader throws(ConfigurationError) in
            try schema.read(field, into: &value[keyPath: keyPath], with: reader)
        }
    }

    /// A whole number (``YAMLField/count()``).
    static func count(_ name: String, _ keyPath: WritableKeyPath<Value, Int> & Sendable) -> Self {
        .optional(name) { value, field, _ throws(ConfigurationError) in value[keyPath: keyPath] = try field.count() }
    }

    /// A whole number in `range`; `why` explains the range in the error.
    static func count(
        _ name: String,
        _ keyPath: WritableKeyPath<Value, Int> & Sendable,
        in range: ClosedRange<Int>,
        _ why: String = ""
    ) -> Self {
        .optional(name) { value, field, _ throws(ConfigurationError) in
            value[keyPath: keyPath] = try field.count(in: range, why)
        }
    }

    /// A size in bytes (``YAMLField/size()``).
    static func size(_ name: String, _ keyPath: WritableKeyPath<Value, Int> & Sendable) -> Self {
        .optional(name) { value, field, _ throws(ConfigurationError) in value[keyPath: keyPath] = try field.size() }
    }

    /// A duration with units (``YAMLField/duration()``).
    static func duration(_ name: String, _ keyPath: WritableKeyPath<Value, Duration> & Sendable) -> Self {
        .optional(name) { value, field, _ throws(ConfigurationError) in value[keyPath: keyPath] = try field.duration() }
    }

    /// A duration, or `off` for `nil`.
    static func durationOrOff(_ name: String, _ keyPath: WritableKeyPath<Value, Duration?> & Sendable) -> Self {
        .optional(name) { value, field, _ throws(ConfigurationError) in
            value[keyPath: keyPath] = try field.isOff() ? nil : field.duration()
        }
    }

    /// `true` or `false`.
    static func bool(_ name: String, _ keyPath: WritableKeyPath<Value, Bool> & Sendable) -> Self {
        .optional(name) { value, field, _ throws(ConfigurationError) in value[keyPath: keyPath] = try field.bool() }
    }

    /// A list of strings.
    static func strings(_ name: String, _ keyPath: WritableKeyPath<Value, [String]> & Sendable) -> Self {
        .optional(name) { value, field, _ throws(ConfigurationError) in value[keyPath: keyPath] = try field.strings() }
    }
}
