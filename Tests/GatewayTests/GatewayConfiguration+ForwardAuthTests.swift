import Testing

@testable import Gateway

/// `routes[].auth.forward` (issue #13 §3): defaults, every key, and the errors.
@Suite struct GatewayConfigurationForwardAuthTests {
    static func parse(_ auth: String) throws(ConfigurationError) -> GatewayConfiguration {
        try GatewayConfiguration(
            yaml: """
                listeners: [{address: "127.0.0.1:8080"}]
                routes: [{upstreams: ["ws://127.0.0.1:9000"], auth: \(auth)}]
                """,
            baseDirectory: "/etc/wsgate"
        )
    }

    static func error(_ auth: String) -> ConfigurationError? {
        do {
            _ = try Self.parse(auth)
            return nil
        } catch {
            return error
        }
    }

    @Test func theDefaults() throws {
        let forward = try #require(try Self.parse("{forward: {url: \"http://auth.internal/check\"}}").routes[0].auth?.forward)
        #expect(forward.host == "auth.internal" && forward.port == 80 && forward.path == "/check")
        #expect(forward.timeout == .seconds(5))
        #expect(forward.requestHeaders == ["Cookie", "Authorization"])
        #expect(forward.copyHeaders.isEmpty)
        #expect(forward.maxConnections == 32 && forward.maxWaiting == 256 && forward.idleTimeout == .seconds(30))
    }

    @Test func everyKey() throws {
        let forward = try #require(
            try Self.parse(
                """
                {forward: {url: "http://[::1]:9090", timeout: 250ms, headers: [Cookie, X-Api-Key], copy_headers: [X-User],
                           max_connections: 4, max_waiting: 0, idle_timeout: 2s}}
                """
            ).routes[0].auth?.forward
        )
        #expect(forward.host == "::1" && forward.port == 9090 && forward.path == "/")
        #expect(forward.timeout == .milliseconds(250))
        #expect(forward.requestHeaders == ["Cookie", "X-Api-Key"] && forward.copyHeaders == ["X-User"])
        #expect(forward.maxConnections == 4 && forward.maxWaiting == 0 && forward.idleTimeout == .seconds(2))
    }

    @Test func errorsNameTheKey() {
        let https = Self.error("{forward: {url: \"https://auth.internal/\"}}")
        #expect(https?.keyPath == "routes[0].auth.forward.url")
        #expect(https?.message.contains("https:// is not supported") == true)
        #expect(Self.error("{forward: {url: \"ws://auth/\"}}")?.keyPath == "routes[0].auth.forward.url")
        #expect(Self.error("{forward: {url: \"http://auth/?q=1\"}}")?.keyPath == "routes[0].auth.forward.url")
        #expect(Self.error("{forward: {}}")?.code == .missingKey)
        #expect(Self.error("{forward: {url: \"http://a/\", timeout: 0s}}")?.keyPath == "routes[0].auth.forward.timeout")
        #expect(Self.error("{forward: {url: \"http://a/\", copy_headers: [\"bad name\"]}}")?.keyPath == "routes[0].auth.forward.copy_headers[0]")
        #expect(Self.error("{forward: {url: \"http://a/\", max_connections: 0}}")?.keyPath == "routes[0].auth.forward.max_connections")
        #expect(Self.error("{forwrd: {url: \"http://a/\"}}")?.code == .unknownKey)
    }
}
