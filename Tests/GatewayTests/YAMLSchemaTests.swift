import Testing
import Yams

@testable import Gateway

/// The declarative schema (`YAMLSchema.swift`): one entry per key reads it, rejects unknown keys with
/// a suggestion, requires required keys, keeps defaults for absent or empty keys, and reads in schema
/// order.
@Suite struct YAMLSchemaTests {
    struct Sample: Equatable {
        var name = "default"
        var count = 1
        var wait: Duration = .seconds(1)
        var order: [String] = []
    }

    static let schema = YAMLSchema<Sample>([
        .required("name") { value, field, _ throws(ConfigurationError) in
            value.name = try field.string()
            value.order.append("name")
        },
        .count("count", \.count),
        .optional("wait") { value, field, _ throws(ConfigurationError) in
            value.wait = try field.duration()
            value.order.append("wait")
        },
    ])

    static func read(_ yaml: String) throws -> Sample {
        let node = try #require(try Yams.compose(yaml: yaml))
        var sample = Sample()
        try Self.schema.read(YAMLField(node: node, path: ConfigPath().key("sample")), into: &sample, with: YAMLConfigurationReader())
        return sample
    }

    static func error(_ yaml: String) throws -> ConfigurationError? {
        do {
            _ = try Self.read(yaml)
            return nil
        } catch let error as ConfigurationError {
            return error
        }
    }

    @Test func keysAreReadInSchemaOrderAndAbsentOrEmptyKeysKeepTheDefault() throws {
        #expect(try Self.read("{wait: 2s, name: a}") == Sample(name: "a", count: 1, wait: .seconds(2), order: ["name", "wait"]))
        #expect(try Self.read("{name: a, count: ~, wait: }") == Sample(name: "a", order: ["name"]))
        #expect(Self.schema.names == ["name", "count", "wait"])
    }

    @Test(arguments: [
        ("{name: a, cuont: 2}", ConfigurationError.Code.unknownKey, "sample.cuont", #"unknown key "cuont" (did you mean "count"?)"#),
        ("{name: a, zzz: 2}", .unknownKey, "sample.zzz", #"unknown key "zzz" (valid keys: name, count, wait)"#),
        ("{count: 2}", .missingKey, "sample.name", "required key is missing"),
        ("{name: }", .missingKey, "sample.name", "required key has no value"),
        ("[a]", .wrongType, "sample", "expected a mapping (with keys name, count, wait), found a list"),
        ("{name: a, count: x}", .invalidValue, "sample.count", #""x" is not a whole number"#),
    ])
    func errorsHaveACodeAndTheKeyPath(yaml: String, code: ConfigurationError.Code, keyPath: String, message: String) throws {
        #expect(try Self.error(yaml) == ConfigurationError(code, keyPath: keyPath, message: message))
    }

    @Test func everySectionOfTheReaderIsListedOnceWithDistinctKeys() {
        let sections = YAMLConfigurationReader.sections
        #expect(Set(sections.map(\.path)).count == sections.count)
        for section in sections {
            #expect(Set(section.keys).count == section.keys.count, "\(section.path) repeats a key")
        }
    }
}
