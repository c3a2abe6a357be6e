/// The YAML schema of the policy sections (issue #5 B–D), read with the same machinery and key-path
/// errors as the rest of the file (`GatewayConfiguration+YAML.swift`); documented in
/// `config/example.yaml`.
///
/// ```yaml
/// connection_limits: { per_ip_connections: 100, per_ip_handshakes: { rate: 20, burst: 40 } }
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
extension YAMLConfigurationReader {
    func connectionLimits(_ field: YAMLField) throws(ConfigurationError) -> GatewayConfiguration.ConnectionLimits {
        let map = try field.mapping(keys: ["per_ip_connections", "per_ip_handshakes", "ipv6_prefix"])
        var limits = GatewayConfiguration.ConnectionLimits()
        if let value = map.optional("per_ip_connections"), !(try Self.isOff(value)) {
            limits.perIPConnections = try value.count()
        }
        if let value = map.optional("per_ip_handshakes") { limits.perIPHandshakes = try Self.rate(value, sizes: false) }
        if let value = map.optional("ipv6_prefix") { limits.ipv6Prefix = try value.count() }
        return limits
    }

    func originPolicy(_ field: YAMLField) throws(ConfigurationError) -> GatewayConfiguration.OriginPolicy {
        let map = try field.mapping(keys: ["allow", "null_origin", "missing_origin", "mixed_content"])
        var policy = GatewayConfiguration.OriginPolicy()
        if let value = map.optional("allow") { policy.allow = try value.strings() }
        if let value = map.optional("null_origin") { policy.null = try Self.decision(value) }
        if let value = map.optional("missing_origin") { policy.missing = try Self.decision(value) }
        if let value = map.optional("mixed_content") { policy.mixedContent = try Self.decision(value) }
        return policy
    }

    func rateLimits(_ field: YAMLField) throws(ConfigurationError) -> GatewayConfiguration.RateLimits {
        let map = try field.mapping(keys: ["client", "upstream"])
        var limits = GatewayConfiguration.RateLimits()
        if let value = map.optional("client") { limits.client = try self.directionRateLimits(value) }
        if let value = map.optional("upstream") { limits.upstream = try self.directionRateLimits(value) }
        return limits
    }

    func directionRateLimits(_ field: YAMLField) throws(ConfigurationError) -> GatewayConfiguration.DirectionRateLimits {
        let map = try field.mapping(keys: ["messages", "bytes", "control_frames", "action"])
        var limits = GatewayConfiguration.DirectionRateLimits()
        if let value = map.optional("messages") { limits.messages = try Self.rate(value, sizes: false) }
        if let value = map.optional("bytes") { limits.bytes = try Self.rate(value, sizes: true) }
        if let value = map.optional("control_frames") { limits.controlFrames = try Self.rate(value, sizes: false) }
        if let value = map.optional("action") {
            let text = try value.string()
            guard let action = GatewayConfiguration.RateLimitAction(rawValue: text) else {
                throw value.path.error("\(quote(text)) is not an action (use throttle or close)")
            }
            limits.action = action
        }
        return limits
    }

    /// `ping_interval` and `max_lifetime` (a duration or `off`) and `pong_deadline` (a duration).
    func keepAliveTimeouts(_ map: YAMLMapping, into timeouts: inout GatewayConfiguration.Timeouts) throws(ConfigurationError) {
        if let value = map.optional("ping_interval") {
            timeouts.pingInterval = try Self.isOff(value) ? nil : value.duration()
        }
        if let value = map.optional("pong_deadline") { timeouts.pongDeadline = try value.duration() }
        if let value = map.optional("max_lifetime") {
            timeouts.maxLifetime = try Self.isOff(value) ? nil : value.duration()
        }
    }

    /// `{ rate: N, burst: M }` (counts, or sizes for byte limits), or `off`. `burst` defaults to `rate`.
    static func rate(_ field: YAMLField, sizes: Bool) throws(ConfigurationError) -> GatewayConfiguration.Rate? {
        if case .scalar = field.node, try Self.isOff(field) { return nil }
        let map = try field.mapping(keys: ["rate", "burst"])
        let rateField = try map.required("rate")
        let rate = try sizes ? rateField.size() : rateField.count()
        let burst = try map.optional("burst").map { (field) throws(ConfigurationError) in try sizes ? field.size() : field.count() }
        return GatewayConfiguration.Rate(perSecond: rate, burst: burst ?? rate)
    }

    static func decision(_ field: YAMLField) throws(ConfigurationError) -> GatewayConfiguration.OriginPolicy.Decision {
        let text = try field.string()
        guard let decision = GatewayConfiguration.OriginPolicy.Decision(rawValue: text) else {
            throw field.path.error("\(quote(text)) is not allow or refuse")
        }
        return decision
    }

    /// Whether a scalar says `off`.
    static func isOff(_ field: YAMLField) throws(ConfigurationError) -> Bool {
        guard case .scalar = field.node else { return false }
        return try field.string() == "off"
    }
}

// MARK: - Validation of the policy settings

extension GatewayConfiguration {
    /// Policy rules: origin `allow` entries are origins or `scheme://*.suffix` patterns; rates, bursts and
    /// connection caps are above zero; the pong deadline and the maximum lifetime are above zero.
    func validatePolicies(at root: ConfigPath) throws(ConfigurationError) {
        for (index, listener) in self.listeners.enumerated() {
            if let limit = listener.maxConnections, limit <= 0 {
                throw root.key("listeners").index(index).key("max_connections").error("must be greater than zero (found \(limit))")
            }
        }
        let connections = root.key("connection_limits")
        if let limit = self.connectionLimits.perIPConnections, limit <= 0 {
            throw connections.key("per_ip_connections").error("must be greater than zero (found \(limit))")
        }
        try self.connectionLimits.perIPHandshakes?.validate(at: connections.key("per_ip_handshakes"))
        if !(1...128).contains(self.connectionLimits.ipv6Prefix) {
            throw connections.key("ipv6_prefix").error("must be a prefix length from 1 to 128 (found \(self.connectionLimits.ipv6Prefix))")
        }
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
            throw timeouts.key("ping_interval").error("must be greater than zero (found \(interval)); use off to disable")
        }
        if self.timeouts.pongDeadline <= .zero {
            throw timeouts.key("pong_deadline").error("must be greater than zero (found \(self.timeouts.pongDeadline))")
        }
        if let lifetime = self.timeouts.maxLifetime, lifetime <= .zero {
            throw timeouts.key("max_lifetime").error("must be greater than zero (found \(lifetime)); use off for no limit")
        }
    }
}

extension GatewayConfiguration.Rate {
    fileprivate func validate(at path: ConfigPath) throws(ConfigurationError) {
        guard self.perSecond > 0 else { throw path.key("rate").error("must be greater than zero (found \(self.perSecond))") }
        guard self.burst > 0 else { throw path.key("burst").error("must be greater than zero (found \(self.burst))") }
    }
}
