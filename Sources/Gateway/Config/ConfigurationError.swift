import Yams

/// A configuration that cannot be used: what kind of problem (``Code``), where, and what is wrong.
///
/// `keyPath` names the place in the YAML file in the file's own spelling (`routes[1].upstreams[0]`,
/// `limits.max_message`); it is empty for errors about the file as a whole (a YAML syntax error, a file
/// that cannot be read). Programs and tests compare `code` and `keyPath`; `message` is for the person
/// editing the file and may be reworded.
public struct ConfigurationError: Error, CustomStringConvertible, Hashable, Sendable {
    /// The kind of problem. A struct over a private enum (STYLE P9), so codes can be added without
    /// breaking a caller's `switch`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case unreadableFile
            case syntax
            case emptyDocument
            case unknownKey
            case missingKey
            case wrongType
            case invalidValue
            case outOfRange
            case conflict
        }

        private let base: Base

        /// The file is missing, a directory, unreadable or not UTF-8.
        public static let unreadableFile = Code(base: .unreadableFile)
        /// Not well-formed YAML (including duplicate keys in one mapping).
        public static let syntax = Code(base: .syntax)
        /// The document has no content.
        public static let emptyDocument = Code(base: .emptyDocument)
        /// A key the schema does not have at that position (a typo must not fall back to a default).
        public static let unknownKey = Code(base: .unknownKey)
        /// A required key (or list element) is absent or has no value.
        public static let missingKey = Code(base: .missingKey)
        /// A list where a mapping belongs, a mapping where a string belongs, and so on.
        public static let wrongType = Code(base: .wrongType)
        /// A value of the right shape with the wrong content: not a duration, not a host name.
        public static let invalidValue = Code(base: .invalidValue)
        /// A number outside its allowed range (ports, zero limits, too large).
        public static let outOfRange = Code(base: .outOfRange)
        /// Two settings that contradict each other (a duplicate address, a watermark order).
        public static let conflict = Code(base: .conflict)

        public var description: String { self.base.rawValue }
    }

    public var code: Code
    /// Where: a dotted key path with list indices, for example `listeners[0].tls.certificate`.
    public var keyPath: String
    /// What is wrong, written for the person editing the file.
    public var message: String

    public init(_ code: Code, keyPath: String, message: String) {
        self.code = code
        self.keyPath = keyPath
        self.message = message
    }

    /// `"keyPath: message"`, or the message alone when there is no key path.
    public var description: String {
        self.keyPath.isEmpty ? self.message : "\(self.keyPath): \(self.message)"
    }
}

extension ConfigurationError {
    /// A YAML syntax error, with its line and column (1-based).
    init(yamlError error: any Error) {
        guard let yamlError = error as? YamlError else {
            self.init(.syntax, keyPath: "", message: "YAML error: \(error)")
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
            self.init(.syntax, keyPath: "", message: located(context, problem, mark))
        case .parser(let context, let problem, let mark, _):
            self.init(.syntax, keyPath: "", message: located(context, problem, mark))
        case .composer(let context, let problem, let mark, _):
            // libyaml's composer context is the first half of the sentence ("expected a single document in
            // the stream" … "but found another document"), and its mark is not useful.
            let sentence = context.map { "\($0.text) \(problem)" } ?? problem
            self.init(.syntax, keyPath: "", message: "YAML error at line \(mark.line), column \(mark.column): \(sentence)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.map { quote($0) }.joined(separator: ", ")
            let mark = context.mark
            self.init(
                .syntax,
                keyPath: "",
                message: "YAML error at line \(mark.line), column \(mark.column): duplicate key \(keys) in one mapping"
            )
        case .reader(let problem, _, _, _):
            self.init(.syntax, keyPath: "", message: "YAML input error: \(problem)")
        case .no, .memory, .writer, .emitter, .representer, .dataCouldNotBeDecoded:
            self.init(.syntax, keyPath: "", message: "YAML error: \(yamlError)")
        }
    }
}

/// A value as it appears in messages: in double quotes, with Swift escapes (`"10 MB"`).
func quote(_ text: String) -> String {
    String(reflecting: text)
}
