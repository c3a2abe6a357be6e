import Testing

@testable import Gateway

/// The policy sections of the YAML schema (issue #5 B–D): values, defaults, `off`, and errors that name
/// their key path.
@Suite struct GatewayConfigurationPolicyYAMLTests {
    private static func document(listener: String = "", route: String = "", extra: String = "") -> String {
        """
        listeners: [{address: "127.0.0.1:8080"\(listener)}]
        routes: [{upstreams: ["ws://127.0.0.1:9000"]\(route)}]
        \(extra)
        """
    }

    @Test func everyPolicyKeyIsRead() throws {
        let yaml = Self.document(
            listener: ", max_connections: 500",
            route: """
                , origins: {allow: ["https://app.example", "https://*.example.com"], null_origin: allow, missing_origin: refuse, mixed_content: allow},
                rate_limits: {client: {messages: {rate: 100, burst: 200}, bytes: {rate: 1MiB, burst: 2MiB}, control_frames: off, action: throttle},
                upstream: {messages: {rate: 50}}}
                """,
            extra: """
                connection_limits: {per_ip_connections: 20, per_ip_handshakes: {rate: 5, burst: 10}}
                timeouts: {ping_interval: 15s, pong_deadline: 5s, max_lifetime: 1h}
                """
        )
        let configuration = try GatewayConfiguration(yaml: yaml)
        #expect(configuration.listeners[0].maxConnections == 500)
        let route = configuration.routes[0]
        #expect(route.origins.allow == ["https://app.example", "https://*.example.com"])
        #expect(route.origins.null == .allow && route.origins.missing == .refuse && route.origins.mixedContent == .allow)
        #expect(route.rateLimits.client.messages == .init(perSecond: 100, burst: 200))
        #expect(route.rateLimits.client.bytes == .init(perSecond: 1 << 20, burst: 2 << 20))
        #expect(route.rateLimits.client.controlFrames == nil)
        #expect(route.rateLimits.client.action == .throttle)
        #expect(route.rateLimits.upstream.messages == .init(perSecond: 50, burst: 50), "burst defaults to the rate")
        #expect(route.rateLimits.upstream.controlFrames == .init(perSecond: 100, burst: 100))
        #expect(route.rateLimits.upstream.action == .close)
        #expect(configuration.connectionLimits.perIPConnections == 20)
        #expect(configuration.connectionLimits.perIPHandshakes == .init(perSecond: 5, burst: 10))
        #expect(configuration.timeouts.pingInterval == .seconds(15))
        #expect(configuration.timeouts.pongDeadline == .seconds(5))
        #expect(configuration.timeouts.maxLifetime == .seconds(3600))
    }

    @Test func defaultsFollowDesignSection7() throws {
        let configuration = try GatewayConfiguration(yaml: Self.document())
        #expect(configuration.timeouts.pingInterval == .seconds(30))
        #expect(configuration.timeouts.pongDeadline == .seconds(20))
        #expect(configuration.timeouts.maxLifetime == nil)
        #expect(configuration.timeouts.idle == .seconds(120))
        #expect(configuration.timeouts.close == .seconds(10))
        #expect(configuration.listeners[0].maxConnections == nil)
        #expect(configuration.connectionLimits == .init())
        let route = configuration.routes[0]
        #expect(route.origins == .init())
        #expect(route.origins.null == .refuse && route.origins.missing == .allow && route.origins.mixedContent == .refuse)
        #expect(route.rateLimits.client.controlFrames == .init(perSecond: 100, burst: 100))
        #expect(route.rateLimits.client.messages == nil && route.rateLimits.client.bytes == nil)
        #expect(configuration.timeouts.frame == .seconds(30))
        let off = try GatewayConfiguration(yaml: Self.document(extra: "timeouts: {ping_interval: off, max_lifetime: off, frame: off}"))
        #expect(off.timeouts.pingInterval == nil && off.timeouts.maxLifetime == nil && off.timeouts.frame == nil)
        let frame = try GatewayConfiguration(yaml: Self.document(extra: "timeouts: {frame: 5s}"))
        #expect(frame.timeouts.frame == .seconds(5))
    }

    @Test(arguments: [
        (
            ConfigurationError.Code.invalidValue, document(route: ", origins: {allow: [\"https://a.example/x\"]}"), "routes[0].origins.allow[0]",
            "is not an origin"
        ),
        (.invalidValue, document(route: ", origins: {null_origin: maybe}"), "routes[0].origins.null_origin", "\"maybe\" is not allow or refuse"),
        (.unknownKey, document(route: ", origins: {nul_origin: allow}"), "routes[0].origins.nul_origin", "did you mean \"null_origin\""),
        (
            .invalidValue, document(route: ", rate_limits: {client: {action: drop}}"), "routes[0].rate_limits.client.action",
            "is not an action (use throttle or close)"
        ),
        (
            .outOfRange, document(route: ", rate_limits: {client: {messages: {rate: 0}}}"), "routes[0].rate_limits.client.messages.rate",
            "must be greater than zero"
        ),
        (
            .outOfRange, document(route: ", rate_limits: {client: {bytes: {rate: 1MiB, burst: 0}}}"), "routes[0].rate_limits.client.bytes.burst",
            "must be greater than zero"
        ),
        (
            .missingKey, document(route: ", rate_limits: {client: {messages: {burst: 5}}}"), "routes[0].rate_limits.client.messages.rate",
            "required key is missing"
        ),
        (.unknownKey, document(route: ", rate_limits: {server: {}}"), "routes[0].rate_limits.server", "unknown key"),
        (.outOfRange, document(listener: ", max_connections: 0"), "listeners[0].max_connections", "must be greater than zero"),
        (
            .outOfRange, document(extra: "connection_limits: {per_ip_connections: -1}"), "connection_limits.per_ip_connections",
            "must be greater than zero"
        ),
        (
            .invalidValue, document(extra: "connection_limits: {per_ip_handshakes: {rate: x}}"), "connection_limits.per_ip_handshakes.rate",
            "is not a whole number"
        ),
        (.outOfRange, document(extra: "connection_limits: {ipv6_prefix: 0}"), "connection_limits.ipv6_prefix", "out of range 1–128"),
        (.outOfRange, document(extra: "connection_limits: {ipv6_prefix: 129}"), "connection_limits.ipv6_prefix", "out of range 1–128"),
        (.invalidValue, document(extra: "connection_limits: {ipv6_prefix: /64}"), "connection_limits.ipv6_prefix", "is not a whole number"),
        (.invalidValue, document(extra: "timeouts: {ping_interval: 30}"), "timeouts.ping_interval", "has no unit"),
        (.outOfRange, document(extra: "timeouts: {pong_deadline: 0s}"), "timeouts.pong_deadline", "must be greater than zero"),
        (.outOfRange, document(extra: "timeouts: {max_lifetime: 0s}"), "timeouts.max_lifetime", "must be greater than zero"),
        (.outOfRange, document(extra: "timeouts: {frame: 0s}"), "timeouts.frame", "must be greater than zero"),
    ])
    func errorsNameTheirKeyPath(code: ConfigurationError.Code, yaml: String, keyPath: String, message: String) {
        do {
            _ = try GatewayConfiguration(yaml: yaml)
            Issue.record("parsed: \(yaml)")
        } catch {
            #expect(error.code == code, "\(error)")
            #expect(error.keyPath == keyPath, "\(error)")
            #expect(error.message.contains(message), "\(error)")
        }
    }

    @Test func theExampleConfigurationParses() throws {
        let path = #filePath.replacingOccurrences(of: "Tests/GatewayTests/GatewayConfiguration+PolicyYAMLTests.swift", with: "config/example.yaml")
        let configuration = try GatewayConfiguration.load(path: path)
        #expect(configuration.routes[0].origins.allow.contains("https://*.example.com"))
        #expect(configuration.routes[0].rateLimits.client.messages != nil)
        // Issue #11 §3: caps on by default in the shipped example.
        #expect(configuration.listeners.allSatisfy { $0.maxConnections != nil })
        #expect(configuration.connectionLimits.perIPConnections != nil && configuration.connectionLimits.perIPHandshakes != nil)
        #expect(configuration.connectionLimits.ipv6Prefix == 64)
    }

    @Test func ipv6PrefixIsReadAndDefaultsTo64() throws {
        #expect(try GatewayConfiguration(yaml: Self.document(extra: "")).connectionLimits.ipv6Prefix == 64)
        #expect(try GatewayConfiguration(yaml: Self.document(extra: "connection_limits: {ipv6_prefix: 56}")).connectionLimits.ipv6Prefix == 56)
    }
}
