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
extension GatewayConfiguration.Extensions {
    static let yaml = YAMLSchema<Self>([
        .section("permessage_deflate", \.permessageDeflate, GatewayConfiguration.PerMessageDeflatePolicy.yaml)
    ])
}

extension GatewayConfiguration.PerMessageDeflatePolicy {
    static let yaml = YAMLSchema<Self>([
        .optional("client") { value, field, _ throws(ConfigurationError) in value.client = try Self.mode(field) },
        .optional("upstream") { value, field, _ throws(ConfigurationError) in value.upstream = try Self.mode(field) },
        .count("max_window_bits", \.maxWindowBits, in: 9...15, " (zlib cannot compress raw DEFLATE with an 8-bit window)"),
        .bool("no_context_takeover", \.noContextTakeover),
        .count("compression_level", \.compressionLevel, in: 0...9),
        .count("memory_level", \.memoryLevel, in: 1...9),
    ])

    private static func mode(_ field: YAMLField) throws(ConfigurationError) -> GatewayConfiguration.ExtensionMode {
        try field.word({ GatewayConfiguration.ExtensionMode($0) }, expected: "an extension mode (use negotiate or strip)")
    }
}
