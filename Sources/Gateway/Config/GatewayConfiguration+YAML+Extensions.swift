import Frames

extension YAMLConfigurationReader {
    /// A route's `extensions:` mapping:
    ///
    /// ```yaml
    /// extensions:
    ///   permessage_deflate:
    ///     client: negotiate | strip        # default strip
    ///     upstream: negotiate | strip      # default strip
    ///     max_window_bits: 15              # 9–15, default 15
    ///     no_context_takeover: false       # default false
    ///     compression_level: 1             # 0–9, default 1
    ///     memory_level: 8                  # 1–9, default 8
    /// ```
    func extensions(_ field: YAMLField) throws(ConfigurationError) -> GatewayConfiguration.Extensions {
        let map = try field.mapping(keys: ["permessage_deflate"])
        var extensions = GatewayConfiguration.Extensions()
        if let deflate = map.optional("permessage_deflate") {
            extensions.permessageDeflate = try self.perMessageDeflate(deflate)
        }
        return extensions
    }

    func perMessageDeflate(_ field: YAMLField) throws(ConfigurationError) -> GatewayConfiguration.PerMessageDeflatePolicy {
        let map = try field.mapping(keys: [
            "client", "upstream", "max_window_bits", "no_context_takeover", "compression_level", "memory_level",
        ])
        var policy = GatewayConfiguration.PerMessageDeflatePolicy()
        func mode(_ key: String) throws(ConfigurationError) -> GatewayConfiguration.ExtensionMode? {
            guard let field = map.optional(key) else { return nil }
            let text = try field.string()
            guard let mode = GatewayConfiguration.ExtensionMode(text) else {
                throw field.path.error("\(quote(text)) is not an extension mode (use negotiate or strip)")
            }
            return mode
        }
        func number(_ key: String, _ range: ClosedRange<Int>, _ why: String) throws(ConfigurationError) -> Int? {
            guard let field = map.optional(key) else { return nil }
            let value = try field.count()
            guard range.contains(value) else {
                throw field.path.error("\(value) is out of range \(range.lowerBound)–\(range.upperBound)\(why)")
            }
            return value
        }
        if let client = try mode("client") { policy.client = client }
        if let upstream = try mode("upstream") { policy.upstream = upstream }
        if let bits = try number("max_window_bits", 9...15, " (zlib cannot compress raw DEFLATE with an 8-bit window)") {
            policy.maxWindowBits = bits
        }
        if let field = map.optional("no_context_takeover") { policy.noContextTakeover = try field.bool() }
        if let level = try number("compression_level", 0...9, "") { policy.compressionLevel = level }
        if let level = try number("memory_level", 1...9, "") { policy.memoryLevel = level }
        return policy
    }
}
