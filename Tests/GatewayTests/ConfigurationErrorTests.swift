import Testing

@testable import Gateway

/// `ConfigurationError`: a typed code, a key path, a message for people.
@Suite struct ConfigurationErrorTests {
    @Test func descriptionJoinsKeyPathAndMessage() {
        #expect(ConfigurationError(.invalidValue, keyPath: "limits.max_frame", message: "bad").description == "limits.max_frame: bad")
        #expect(ConfigurationError(.syntax, keyPath: "", message: "bad").description == "bad")
    }

    @Test func codesAreDistinctAndNamed() {
        let codes: [ConfigurationError.Code] = [
            .unreadableFile, .syntax, .emptyDocument, .unknownKey, .missingKey, .wrongType, .invalidValue, .outOfRange, .conflict,
        ]
        #expect(Set(codes).count == codes.count)
        #expect(ConfigurationError.Code.unknownKey.description == "unknownKey")
    }

    @Test func yamlErrorsAreSyntaxErrorsWithoutAKeyPath() {
        for yaml in ["a: [", "a: 1\na: 2", "--- a\n--- b"] {
            do {
                _ = try GatewayConfiguration(yaml: yaml)
                Issue.record("\(yaml) parsed")
            } catch {
                #expect(error.code == .syntax && error.keyPath == "", "\(error)")
            }
        }
        #expect(
            throws: ConfigurationError(.emptyDocument, keyPath: "", message: "the configuration is empty: it needs at least `listeners` and `routes`")
        ) {
            try GatewayConfiguration(yaml: "")
        }
    }
}
