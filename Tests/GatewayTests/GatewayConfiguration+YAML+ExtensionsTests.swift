import Testing

@testable import Gateway

/// The `extensions:` section of a route (GatewayConfiguration+YAML+Extensions.swift).
@Suite struct GatewayConfigurationYAMLExtensionsTests {
    private func parse(_ extensions: String) throws(ConfigurationError) -> GatewayConfiguration.PerMessageDeflatePolicy {
        let yaml = """
            listeners: [{address: "127.0.0.1:8080"}]
            routes: [{upstreams: ["ws://127.0.0.1:9000"], extensions: \(extensions)}]
            """
        return try GatewayConfiguration(yaml: yaml, baseDirectory: nil).routes[0].extensions.permessageDeflate
    }

    @Test func defaultsStripBothLegs() throws {
        let yaml = """
            listeners: [{address: "127.0.0.1:8080"}]
            routes: [{upstreams: ["ws://127.0.0.1:9000"]}]
            """
        let policy = try GatewayConfiguration(yaml: yaml, baseDirectory: nil).routes[0].extensions.permessageDeflate
        #expect(policy == GatewayConfiguration.PerMessageDeflatePolicy())
        #expect(!policy.client.isNegotiate && !policy.upstream.isNegotiate)
        #expect(policy.maxWindowBits == 15 && !policy.noContextTakeover && policy.compressionLevel == 1 && policy.memoryLevel == 8)
    }

    @Test func everyKey() throws {
        let policy = try self.parse(
            "{permessage_deflate: {client: negotiate, upstream: negotiate, max_window_bits: 10, no_context_takeover: true, compression_level: 6, memory_level: 5}}"
        )
        #expect(policy.client == .negotiate && policy.upstream == .negotiate)
        #expect(policy.maxWindowBits == 10 && policy.noContextTakeover && policy.compressionLevel == 6 && policy.memoryLevel == 5)
    }

    @Test(arguments: [
        (
            ConfigurationError.Code.invalidValue, "{permessage_deflate: {client: compress}}", "routes[0].extensions.permessage_deflate.client",
            "negotiate or strip"
        ),
        (.invalidValue, "{permessage_deflate: {upstream: yes}}", "routes[0].extensions.permessage_deflate.upstream", "negotiate or strip"),
        (.outOfRange, "{permessage_deflate: {max_window_bits: 8}}", "routes[0].extensions.permessage_deflate.max_window_bits", "8-bit window"),
        (.outOfRange, "{permessage_deflate: {max_window_bits: 16}}", "routes[0].extensions.permessage_deflate.max_window_bits", "out of range"),
        (.outOfRange, "{permessage_deflate: {compression_level: 10}}", "routes[0].extensions.permessage_deflate.compression_level", "out of range"),
        (.outOfRange, "{permessage_deflate: {memory_level: 0}}", "routes[0].extensions.permessage_deflate.memory_level", "out of range"),
        (.invalidValue, "{permessage_deflate: {no_context_takeover: 1}}", "routes[0].extensions.permessage_deflate.no_context_takeover", "boolean"),
        (.unknownKey, "{permessage_deflate: {clinet: negotiate}}", "routes[0].extensions.permessage_deflate.clinet", "did you mean"),
        (.unknownKey, "{permessage-deflate: {client: negotiate}}", "routes[0].extensions.permessage-deflate", "unknown key"),
        (.wrongType, "[permessage_deflate]", "routes[0].extensions", "expected a mapping"),
    ])
    func errorsNameTheKeyPath(code: ConfigurationError.Code, extensions: String, keyPath: String, message: String) {
        #expect {
            try self.parse(extensions)
        } throws: { error in
            guard let error = error as? ConfigurationError else { return false }
            return error.code == code && error.keyPath == keyPath && error.message.contains(message)
        }
    }
}
