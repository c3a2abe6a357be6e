/// The YAML schema of the policy sections (issue #5 B–D), ``YAMLSchema``s like the rest of the file
/// (`GatewayConfiguration+YAML.swift`); documented in `config/example.yaml`. Their validation is at the
/// end of this file.
///
/// ```yaml
/// connection_limits: { per_ip_connections: 100, per_ip_handshakes: { rate: 20, burst: 40 }, ipv6_prefix: 64 }
/// listeners: [{ address: 0.0.0.0:8443, max_connections: 10000 }]
/// routes:
///   - origins: { allow: ["https://app.example", "https://*.example.com"], null_origin: refuse,
///                missing_origin: allow, mixed_content: refuse }
///     rate_limits:
///       client: { messages: { rate: 100, burst: 200 }, bytes: { rate: 1MiB, burst: 2MiB },
///                 control_frames: { rate: 100, burst: 100 }, action: close }
///       upstream: { control_frames: off }
/// timeouts: { ping_interval: 30s, pong_deadline: 20s, max_lifetime: 1h }
/// ```
extension GatewayConfiguration.ConnectionLimits {
    static let yaml = YAMLSchema<Self>([
        .optional("per_ip_connections") { value, field, _ throws(ConfigurationError) in
            value.perIPConnections = try field.isOff() ? nil : field.count()
        },
        .optional("per_ip_handshakes") { value, field, reader throws(ConfigurationError) in
            value.perIPHandshakes = try reader.rate(field, sizes: false)
        },
        .optional("ipv6_prefix") { value, field, _ throws(ConfigurationError) in
            value.ipv6Prefix = try field.count(in: 1...128, " (an IPv6 prefix length)")
        },
    ])
}

extension GatewayConfiguration.OriginPolicy {
    static let yaml = YAMLSchema<Self>([
        .strings("allow", \.allow),
        .optional("null_origin") { value, field, _ throws(ConfigurationError) in value.null = try Self.decision(field) },
        .optional("missing_origin") { value, field, _ throws(ConfigurationError) in value.missing = try Self.decision(field) },
        .optional("mixed_content") { value, field, _ throws(ConfigurationError) in
            value.mixedContent = try Self.decision(field)
        },
    ])

    static func decision(_ field: YAMLField) throws(ConfigurationError) -> Decision {
        try field.word(Decision.init(rawValue:), expected: "allow or refuse")
    }
}

extension GatewayConfiguration.RateLimits {
    static let yaml = YAMLSchema<Self>([
        .section("client", \.client, GatewayConfiguration.DirectionRateLimits.yaml),
        .section("upstream", \.upstream, GatewayConfiguration.DirectionRateLimits.yaml),
    ])
}

extension GatewayConfiguration.DirectionRateLimits {
    static let yaml = YAMLSchema<Self>([
        .optional("messages") { value, field, reader throws(ConfigurationError) in
            value.messages = try reader.rate(field, sizes: false)
        },
        .optional("bytes") { value, field, reader throws(ConfigurationError) in value.bytes = try reader.rate(field, sizes: true) },
        .optional("control_frames") { value, field, reader throws(ConfigurationError) in
            value.controlFrames = try reader.rate(field, sizes: false)
        },
        .optional("action") { value, field, _ throws(ConfigurationError) in
            value.action = try field.word(
                GatewayConfiguration.RateLimitAction.init(rawValue:),
                expected: "an action (use throttle or close)"
            )
        },
    ])
}

/// `{ rate: N, burst: M }` as written: counts, or sizes for byte limits; `burst` defaults to `rate`.
struct RateDraft {
    var sizes: Bool
    var rate = 0
    var burst: Int?

    static let yaml = YAMLSchema<Self>([
        .required("rate") { value, field, _ throws(ConfigurationError) in
            value.rate = try value.sizes ? field.size() : field.count()
        },
        .optional("burst") { value, field, _ throws(ConfigurationError) in
            value.burst = try value.sizes ? field.size() : field.count()
        },
    ])
}

extension YAMLConfigurationReader {
    /// A ``RateDraft`` mapping, or `off` for `nil`.
    func rate(_ field: YAMLField, sizes: Bool) throws(ConfigurationError) -> GatewayConfiguration.Rate? {
        if try field.isOff() { return nil }
        var draft = RateDraft(sizes: sizes)
        try RateDraft.yaml.read(field, into: &draft, with: self)
        return GatewayConfiguration.Rate(perSecond: draft.rate, burst: draft.burst ?? draft.rate)
    }
}

// MARK: - Validation of the policy settings

extension GatewayConfiguration {
    /// Policy rules: origin `allow` entries are origins or `scheme://*.suffix` patterns; rates, bursts and
    /// connection caps are above zero; the pong deadline and the maximum lifetime are above zero.
    func validatePolicies(at root: ConfigPath) throws(ConfigurationError) {
        for (index, listener) in self.listeners.enumerated() {
            if let limit = listener.maxConnections, limit <= 0 {
                throw root.key("listeners").index(index).key("max_connections").error(.outOfRange, "must be greater than zero (found \(limit))")
            }
        }
        let connections = root.key("connection_limits")
        if let limit = self.connectionLimits.perIPConnections, limit <= 0 {
            throw connections.key("per_ip_connections").error(.outOfRange, "must be greater than zero (found \(limit))")
        }
        try self.connectionLimits.perIPHandshakes?.validate(at: connections.key("per_ip_handshakes"))
        _ = try self.compiledOriginPolicies()
        for (index, route) in self.routes.enumerated() {
            let path = root.key("routes").index(index).key("rate_limits")
            for (name, limits) in [("client", route.rateLimits.client), ("upstream", route.rateLimits.upstream)] {
                try limits.messages?.validate(at: path.key(name).key("messages"))
                try limits.bytes?.validate(at: path.key(name).key("bytes"))
                try limits.controlFrames?.validate(at: path.key(name).key("control_frames"))
            }
        }
        let timeouts = root.key("timeouts")
        if let interval = self.timeouts.pingInterval, interval <= .zero {
            throw timeouts.key("ping_interval").error(.outOfRange, "must be greater than zero (found \(interval)); use off to disable")
        }
        if self.timeouts.pongDeadline <= .zero {
            throw timeouts.key("pong_deadline").error(.outOfRange, "must be greater than zero (found \(self.timeouts.pongDeadline))")
        }
        if let lifetime = self.timeouts.maxLifetime, lifetime <= .zero {
            throw timeouts.key("max_lifetime").error(.outOfRange, "must be greater than zero (found \(lifetime)); use off for no limit")
        }
    }
}

extension GatewayConfiguration.Rate {
    fileprivate func validate(at path: ConfigPath) throws(ConfigurationError) {
        guard self.perSecond > 0 else { throw path.key("rate").error(.outOfRange, "must be greater than zero (found \(self.perSecond))") }
        guard self.burst > 0 else { throw path.key("burst").error(.outOfRange, "must be greater than zero (found \(self.burst))") }
    }
}
