import Frames
import TLSShim

/// Checks of the configuration as a whole, after reading (or on a configuration built in code).
extension GatewayConfiguration {
    /// Checks the configuration as a whole; ``init(yaml:baseDirectory:)`` calls it, and a configuration
    /// built in code can call it too. Key paths use the YAML names (`limits.buffer_low_watermark`).
    ///
    /// Rules: at least one listener and one route; ports in 1–65535; no two listeners on the same
    /// address or with the same name, and none named `admin` or `demo` (the built-in listeners' metrics
    /// label); TLS files named; SNI names and route hosts are exact names or `*.suffix`; route paths
    /// start with `/`; no two routes with the same path and an overlapping host; every route has an upstream; `upstream_tls` only on a route with `wss://` members; subprotocols
    /// are tokens (RFC 6455 §4.1, RFC 7230 §3.2.6); limits and timeouts are above zero; the low
    /// watermark is below the high one. (A client certificate without its key is a reading error: the
    /// configuration holds TLSShim's `TLSIdentity`, which has both.)
    public func validate() throws(ConfigurationError) {
        let root = ConfigPath()
        try self.validateListeners(at: root.key("listeners"))
        try self.validateRoutes(at: root.key("routes"))
        try self.limits.validate(at: root.key("limits"))
        try self.timeouts.validate(at: root.key("timeouts"))
        try self.validatePolicies(at: root)
        try self.validateAdmin(at: root.key("admin"))
        try self.validateEdge(at: root)
        if case .file(let path) = self.accessLog, path.isEmpty {
            throw root.key("access_log").error(.invalidValue, "expected stdout, stderr, off or a file path, found an empty string")
        }
    }

    private func validateListeners(at path: ConfigPath) throws(ConfigurationError) {
        guard !self.listeners.isEmpty else { throw path.error(.missingKey, "at least one listener is required") }
        var addresses: [String: Int] = [:]
        var names: [String: Int] = [:]
        for (index, listener) in self.listeners.enumerated() {
            let listenerPath = path.index(index)
            guard HostSyntax.isHostName(listener.host) || HostSyntax.isIPv6Literal(listener.host) else {
                throw listenerPath.key("address").error(
                    .invalidValue,
                    "\(quote(listener.host)) is not an IP address or host name"
                )
            }
            guard (1...65535).contains(listener.port) else {
                throw listenerPath.key("port").error(.outOfRange, "\(listener.port) is out of range 1–65535")
            }
            let address = GatewayConfiguration.Listener(host: listener.host.lowercased(), port: listener.port).name
            if let other = addresses.updateValue(index, forKey: address) {
                throw listenerPath.key("address").error(.conflict, "\(address) is already used by listeners[\(other)]")
            }
            guard !listener.name.isEmpty else { throw listenerPath.key("name").error(.invalidValue, "must not be empty") }
            // The built-in listeners' pauses are counted under these labels: one of ours would share their series.
            if let builtIn = Self.builtInListenerLabels[listener.name] {
                throw listenerPath.key("name").error(
                    .conflict,
                    "\(quote(listener.name)) is the metrics label of the built-in \(builtIn); choose another name"
                )
            }
            if let other = names.updateValue(index, forKey: listener.name) {
                throw listenerPath.key("name").error(
                    .conflict,
                    "\(quote(listener.name)) is already used by listeners[\(other)]"
                )
            }
            if let tls = listener.tls { try tls.validate(at: listenerPath.key("tls")) }
        }
    }

    /// The `listener` labels the gateway's own listeners use (``AcceptErrorPause``), and what they are.
    static let builtInListenerLabels = [
        AcceptErrorPause.adminListener: "admin listener",
        AcceptErrorPause.demoListener: "demo upstream",
    ]

    private func validateRoutes(at path: ConfigPath) throws(ConfigurationError) {
        guard !self.routes.isEmpty else { throw path.error(.missingKey, "at least one route is required") }
        for (index, route) in self.routes.enumerated() {
            let routePath = path.index(index)
            try route.validate(at: routePath)
            // Two routes with the same prefix and a common host pattern: the second could never match.
            for (otherIndex, other) in self.routes[..<index].enumerated() where other.pathPrefix == route.pathPrefix {
                if route.hosts.isEmpty && other.hosts.isEmpty {
                    throw routePath.error(
                        .conflict,
                        "routes[\(otherIndex)] already matches every host on path \(route.pathPrefix)"
                    )
                }
                if let host = route.hosts.first(where: other.hosts.contains) {
                    throw routePath.error(
                        .conflict,
                        "routes[\(otherIndex)] already matches host \(quote(host)) on path \(route.pathPrefix)"
                    )
                }
            }
        }
    }
}

/// TLS files are named: a file source's path is not empty (in-memory PEM is not checked here).
private func requireFilePath(_ source: TLSPEMSource, at keyPath: ConfigPath) throws(ConfigurationError) {
    guard source.filePath?.isEmpty != true else {
        throw keyPath.error(.invalidValue, "expected a file path, found an empty string")
    }
}

extension TLSServerConfiguration {
    fileprivate func validate(at path: ConfigPath) throws(ConfigurationError) {
        try requireFilePath(self.defaultIdentity.certificateChain, at: path.key("certificate"))
        try requireFilePath(self.defaultIdentity.privateKey, at: path.key("key"))
        for (index, entry) in self.virtualHosts.enumerated() {
            let entryPath = path.key("sni").index(index)
            guard !entry.serverNames.isEmpty else {
                throw entryPath.key("names").error(.missingKey, "at least one name is required")
            }
            for (nameIndex, name) in entry.serverNames.enumerated() where !HostSyntax.isHostPattern(name) {
                throw entryPath.key("names").index(nameIndex).error(
                    .invalidValue,
                    "\(quote(name)) is not a host name or a *.suffix pattern"
                )
            }
            try requireFilePath(entry.identity.certificateChain, at: entryPath.key("certificate"))
            try requireFilePath(entry.identity.privateKey, at: entryPath.key("key"))
            try entry.clientAuthentication?.validate(at: entryPath.key("client_auth"))
        }
        try self.clientAuthentication?.validate(at: path.key("client_auth"))
    }
}

extension GatewayConfiguration.Route {
    fileprivate func validate(at path: ConfigPath) throws(ConfigurationError) {
        for (index, host) in self.hosts.enumerated() where !HostSyntax.isHostPattern(host) {
            throw path.key("hosts").index(index).error(
                .invalidValue,
                "\(quote(host)) is not a host name or a *.suffix pattern"
            )
        }
        guard self.pathPrefix.hasPrefix("/") else {
            throw path.key("path").error(.invalidValue, "\(quote(self.pathPrefix)) must start with \"/\"")
        }
        if self.pathPrefix.contains(where: { $0 == "?" || $0 == "#" || $0.isWhitespace }) {
            throw path.key("path").error(
                .invalidValue,
                "\(quote(self.pathPrefix)) must be a path only (no query, fragment or white space)"
            )
        }
        // Requests are only routed on canonical paths (RequestPath), so a prefix in another spelling
        // could never match.
        if case .failure(let violation) = RequestPath.validate(target: self.pathPrefix) {
            throw path.key("path").error(.invalidValue, "\(quote(self.pathPrefix)) would never match a request: \(violation.rawValue)")
        }
        guard !self.upstreams.isEmpty else { throw path.key("upstreams").error(.missingKey, "at least one upstream is required") }
        for (index, upstream) in self.upstreams.enumerated() {
            let upstreamPath = path.key("upstreams").index(index)
            guard HostSyntax.isHostName(upstream.host) || HostSyntax.isIPv6Literal(upstream.host) else {
                throw upstreamPath.error(.invalidValue, "\(quote(upstream.host)) is not an IP address or host name")
            }
            guard (1...65535).contains(upstream.port) else {
                throw upstreamPath.error(.outOfRange, "port \(upstream.port) is out of range 1–65535")
            }
            if let upstreamPathPrefix = upstream.path, !upstreamPathPrefix.hasPrefix("/") {
                throw upstreamPath.error(.invalidValue, "path \(quote(upstreamPathPrefix)) must start with \"/\"")
            }
        }
        if let upstreamTLS = self.upstreamTLS {
            guard self.upstreams.contains(where: { $0.scheme == .wss }) else {
                throw path.key("upstream_tls").error(.conflict, "is set but no upstream of this route uses wss://")
            }
            try upstreamTLS.validate(at: path.key("upstream_tls"))
        }
        for (index, subprotocol) in self.subprotocols.enumerated() where !HTTPSyntax.isToken(subprotocol) {
            throw path.key("subprotocols").index(index).error(
                .invalidValue,
                "\(quote(subprotocol)) is not a valid subprotocol name "
                    + "(an HTTP token: no spaces, commas or quotes)"
            )
        }
        if let auth = self.auth, auth.isEmpty {
            throw path.key("auth").error(.missingKey, GatewayConfiguration.RouteAuthentication.emptyMessage(route: self.label))
        }
    }
}

extension GatewayConfiguration.UpstreamTLS {
    fileprivate func validate(at path: ConfigPath) throws(ConfigurationError) {
        if let serverName = self.serverName, !HostSyntax.isHostName(serverName) {
            throw path.key("server_name").error(.invalidValue, "\(quote(serverName)) is not a host name")
        }
        if let identity = self.configuration.identity {
            try requireFilePath(identity.certificateChain, at: path.key("client_certificate"))
            try requireFilePath(identity.privateKey, at: path.key("client_key"))
        }
    }
}

extension GatewayConfiguration.Limits {
    fileprivate func validate(at path: ConfigPath) throws(ConfigurationError) {
        let values: [(String, Int)] = [
            ("request_head", self.requestHeadBytes), ("request_headers", self.requestHeaders),
            ("max_frame", self.maxFrameSize), ("max_message", self.maxMessageSize),
            ("max_fragments", self.maxFragments), ("buffer_high_watermark", self.bufferHighWatermark),
            ("buffer_low_watermark", self.bufferLowWatermark), ("compression_memory", self.compressionMemory ?? 1),
        ]
        for (key, value) in values where value <= 0 {
            throw path.key(key).error(.outOfRange, "must be greater than zero (found \(value))")
        }
        guard self.bufferLowWatermark < self.bufferHighWatermark else {
            throw path.key("buffer_low_watermark").error(
                .conflict,
                "\(self.bufferLowWatermark) bytes must be less than buffer_high_watermark "
                    + "(\(self.bufferHighWatermark) bytes)"
            )
        }
        try self.http2.validate(at: path.key("http2"))
    }
}

extension GatewayConfiguration.Timeouts {
    fileprivate func validate(at path: ConfigPath) throws(ConfigurationError) {
        let values: [(String, Duration)] = [
            ("request_head", self.requestHead), ("tls_handshake", self.tlsHandshake),
            ("upstream_connect", self.upstreamConnect), ("upstream_handshake", self.upstreamHandshake),
            ("close", self.close), ("idle", self.idle), ("drain", self.drain),
        ]
        for (key, value) in values where value <= .zero {
            throw path.key(key).error(.outOfRange, "must be greater than zero (found \(value))")
        }
        if let frame = self.frame, frame <= .zero {
            throw path.key("frame").error(.outOfRange, "must be greater than zero (found \(frame)); use off for no deadline")
        }
    }
}
