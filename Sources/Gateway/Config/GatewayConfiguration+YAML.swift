import TLSShim

/// The schema of the configuration file, one ``YAMLSchema`` per mapping, documented in
/// `config/example.yaml` and README's configuration reference. The policy sections are in
/// `GatewayConfiguration+PolicyYAML.swift`, the extension policy in `GatewayConfiguration+YAML+Extensions.swift`,
/// the admin listener in `GatewayConfiguration+Operations.swift`.
///
/// To add a key: one entry in the schema of its mapping below (keys are read and listed in this order),
/// its README row and its `config/example.yaml` line; see ``YAMLSchema`` for the rest.
extension GatewayConfiguration {
    static let yaml = YAMLSchema<GatewayConfiguration>([
        .required("listeners") { value, field, reader throws(ConfigurationError) in
            value.listeners = try reader.list(field) { (entry) throws(ConfigurationError) in try reader.listener(entry) }
        },
        .required("routes") { value, field, reader throws(ConfigurationError) in
            value.routes = try reader.list(field) { (entry) throws(ConfigurationError) in try reader.route(entry) }
        },
        .section("limits", \.limits, Limits.yaml),
        .section("timeouts", \.timeouts, Timeouts.yaml),
        .optional("access_log") { value, field, reader throws(ConfigurationError) in
            value.accessLog = try reader.accessLog(field)
        },
        .section("connection_limits", \.connectionLimits, ConnectionLimits.yaml),
        .section("admin", \.admin, Admin.yaml),
        Edge.trustedProxiesKey,
        Edge.clientAddressKey,
        GatewayConfiguration.workersKey,
    ])
}

// MARK: - Listeners

extension GatewayConfiguration.Listener {
    static let yaml = YAMLSchema<Self>([
        .optional("name") { value, field, _ throws(ConfigurationError) in value.name = try field.string() },
        .required("address") { value, field, _ throws(ConfigurationError) in
            (value.host, value.port) = try HostSyntax.listenAddress(try field.string(), at: field.path)
        },
        .optional("tls") { value, field, reader throws(ConfigurationError) in
            var tls = TLSServerConfiguration(defaultIdentity: TLSIdentity(certificateChain: .file(""), privateKey: .file("")))
            try TLSServerConfiguration.yaml.read(field, into: &tls, with: reader)
            value.tls = tls
        },
        .optional("max_connections") { value, field, _ throws(ConfigurationError) in
            value.maxConnections = try field.count()
        },
        Edge.proxyProtocolKey,
        .bool("require_sni_host_match", \.requireSNIHostMatch),
    ])
}

extension TLSServerConfiguration {
    static let yaml = YAMLSchema<Self>([
        .required("certificate") { value, field, reader throws(ConfigurationError) in
            value.defaultIdentity.certificateChain = .file(try reader.filePath(field))
        },
        .required("key") { value, field, reader throws(ConfigurationError) in
            value.defaultIdentity.privateKey = .file(try reader.filePath(field))
        },
        .optional("min_version") { value, field, _ throws(ConfigurationError) in
            value.minimumVersion = try field.word(
                { ["1.2": TLSVersion.tls1_2, "1.3": .tls1_3][$0] },
                expected: #"a supported TLS version (use "1.2" or "1.3")"#
            )
        },
        .optional("sni") { value, field, reader throws(ConfigurationError) in
            value.virtualHosts = try reader.list(field) { (entry) throws(ConfigurationError) in
                var host = TLSVirtualHost(serverNames: [], identity: TLSIdentity(certificateChain: .file(""), privateKey: .file("")))
                try TLSVirtualHost.yaml.read(entry, into: &host, with: reader)
                return host
            }
        },
        TLSClientAuthentication.key(\.clientAuthentication),
        GatewayConfiguration.HTTP2Limits.listenerKey,
    ])
}

extension TLSVirtualHost {
    static let yaml = YAMLSchema<Self>([
        .required("names") { value, field, _ throws(ConfigurationError) in
            value.serverNames = try field.strings().map { $0.lowercased() }
        },
        .required("certificate") { value, field, reader throws(ConfigurationError) in
            value.identity.certificateChain = .file(try reader.filePath(field))
        },
        .required("key") { value, field, reader throws(ConfigurationError) in
            value.identity.privateKey = .file(try reader.filePath(field))
        },
        TLSClientAuthentication.key(\.clientAuthentication),
    ])
}

// MARK: - Routes

extension GatewayConfiguration.Route {
    static let yaml = YAMLSchema<Self>([
        .optional("hosts") { value, field, _ throws(ConfigurationError) in
            value.hosts = try field.strings().map { $0.lowercased() }
        },
        .optional("path") { value, field, _ throws(ConfigurationError) in value.pathPrefix = try field.string() },
        .required("upstreams") { value, field, reader throws(ConfigurationError) in
            value.upstreams = try reader.list(field) { (entry) throws(ConfigurationError) in
                try HostSyntax.upstream(try entry.string(), at: entry.path)
            }
        },
        .strings("subprotocols", \.subprotocols),
        .optional("upstream_tls") { value, field, reader throws(ConfigurationError) in
            var draft = UpstreamTLSDraft()
            let mapping = try UpstreamTLSDraft.yaml.read(field, into: &draft, with: reader)
            value.upstreamTLS = try draft.upstreamTLS(at: mapping.path)
        },
        .section("origins", \.origins, GatewayConfiguration.OriginPolicy.yaml),
        .section("rate_limits", \.rateLimits, GatewayConfiguration.RateLimits.yaml),
        .section("extensions", \.extensions, GatewayConfiguration.Extensions.yaml),
        .optional("client_cert") { value, field, _ throws(ConfigurationError) in
            value.clientCertificate = try field.word(
                { GatewayConfiguration.ClientCertificatePolicy(rawValue: $0) },
                expected: "require, forward or off"
            )
        },
        GatewayConfiguration.RouteAuthentication.routeKey,
    ])
}

/// `upstream_tls` as written: the client certificate and key are read apart and must come together.
struct UpstreamTLSDraft {
    var tls = GatewayConfiguration.UpstreamTLS()
    var clientCertificate: String?
    var clientKey: String?

    static let yaml = YAMLSchema<Self>([
        .optional("verify") { value, field, _ throws(ConfigurationError) in
            value.tls.configuration.certificateVerification = try field.bool() ? .fullVerification : .none
        },
        .optional("ca") { value, field, reader throws(ConfigurationError) in
            value.tls.configuration.trustRoots = .certificates(.file(try reader.filePath(field)))
        },
        .optional("server_name") { value, field, _ throws(ConfigurationError) in value.tls.serverName = try field.string() },
        .optional("client_certificate") { value, field, reader throws(ConfigurationError) in
            value.clientCertificate = try reader.filePath(field)
        },
        .optional("client_key") { value, field, reader throws(ConfigurationError) in
            value.clientKey = try reader.filePath(field)
        },
    ])

    func upstreamTLS(at path: ConfigPath) throws(ConfigurationError) -> GatewayConfiguration.UpstreamTLS {
        var tls = self.tls
        switch (self.clientCertificate, self.clientKey) {
        case (.some, .none): throw path.key("client_key").error(.missingKey, "required when client_certificate is set")
        case (.none, .some): throw path.key("client_certificate").error(.missingKey, "required when client_key is set")
        case (.some(let certificate), .some(let key)):
            tls.configuration.identity = TLSIdentity(certificateChain: .file(certificate), privateKey: .file(key))
        case (.none, .none): break
        }
        return tls
    }
}

// MARK: - Limits, timeouts, access log

extension GatewayConfiguration.Limits {
    static let yaml = YAMLSchema<Self>([
        .size("request_head", \.requestHeadBytes),
        .count("request_headers", \.requestHeaders),
        .size("max_frame", \.maxFrameSize),
        .size("max_message", \.maxMessageSize),
        .count("max_fragments", \.maxFragments),
        .size("buffer_high_watermark", \.bufferHighWatermark),
        .size("buffer_low_watermark", \.bufferLowWatermark),
        // Issue #10 item 7; absent or empty: a quarter of physical memory.
        .optional("compression_memory") { value, field, _ throws(ConfigurationError) in value.compressionMemory = try field.size() },
        .section("http2", \.http2, GatewayConfiguration.HTTP2Limits.yaml),
    ])
}

extension GatewayConfiguration.Timeouts {
    static let yaml = YAMLSchema<Self>([
        .duration("request_head", \.requestHead),
        .duration("tls_handshake", \.tlsHandshake),
        .duration("upstream_connect", \.upstreamConnect),
        .duration("upstream_handshake", \.upstreamHandshake),
        .duration("close", \.close),
        .duration("idle", \.idle),
        .durationOrOff("ping_interval", \.pingInterval),
        .duration("pong_deadline", \.pongDeadline),
        .durationOrOff("max_lifetime", \.maxLifetime),
        .duration("drain", \.drain),
        .durationOrOff("frame", \.frame),
        .duration("proxy_header", \.proxyHeader),
    ])
}

extension YAMLConfigurationReader {
    func listener(_ field: YAMLField) throws(ConfigurationError) -> GatewayConfiguration.Listener {
        var listener = GatewayConfiguration.Listener(host: "", port: 0)
        let mapping = try GatewayConfiguration.Listener.yaml.read(field, into: &listener, with: self)
        if mapping.optional("name") == nil {
            listener.name = GatewayConfiguration.Listener(host: listener.host, port: listener.port).name
        }
        return listener
    }

    func route(_ field: YAMLField) throws(ConfigurationError) -> GatewayConfiguration.Route {
        var route = GatewayConfiguration.Route(upstreams: [])
        let mapping = try GatewayConfiguration.Route.yaml.read(field, into: &route, with: self)
        // `auth:` with no value reads as absent, which would leave the route open: keep it as an empty
        // `auth`, which validation refuses with the route's name.
        if mapping.hasNoValue("auth") { route.auth = GatewayConfiguration.RouteAuthentication() }
        return route
    }

    /// `stdout`, `stderr`, `off` or a file path.
    func accessLog(_ field: YAMLField) throws(ConfigurationError) -> GatewayConfiguration.AccessLogDestination {
        switch try field.string() {
        case "stdout": return .standardOutput
        case "stderr": return .standardError
        case "off": return .off
        case "": throw field.path.error(.invalidValue, "expected stdout, stderr, off or a file path, found an empty string")
        case let text:
            if field.isScalar(resolvedAs: .bool) {
                // `access_log: false` would otherwise write to a file named "false".
                throw field.path.error(
                    .invalidValue,
                    "\(text) is not stdout, stderr, off or a file path (quote it if it is a file name)"
                )
            }
            return .file(try self.filePath(field))
        }
    }
}
