/// Configuration for operating the gateway (issue #6): the admin listener. The drain deadline is
/// `timeouts.drain` (``GatewayConfiguration/Timeouts/drain``).
extension GatewayConfiguration {
    /// The admin listener: `/metrics` (Prometheus text), `/healthz`, `/readyz`. It is its own address,
    /// off the public listeners, and is meant for the local host or the pod network only.
    public struct Admin: Sendable, Hashable {
        /// Whether the admin listener runs. Default: on.
        public var enabled: Bool = true
        /// The address to bind. Default: 127.0.0.1.
        public var host: String = "127.0.0.1"
        /// Default: 9090.
        public var port: Int = 9090
        /// `admin.token_file` (issue #14): a file holding the bearer token that `/connections*` and `/tap`
        /// require (the dashboard page at `/` sends it from its `#token=`) (read at start and again on SIGHUP). `nil`: no token.
        public var tokenFile: String?
        /// `admin.tap` (issue #14): what the frame tap redacts, and how many taps may run at once.
        public var tap = Tap()

        public init() {}

        /// `admin.tap`.
        public struct Tap: Sendable, Hashable {
            /// Header names redacted in `open` events besides the built-in ones (case-insensitive).
            public var redactHeaders: [String] = []
            /// Query parameter names redacted in `open` events besides the built-in ones.
            public var redactQueryParameters: [String] = []
            /// Taps that may stream at once (a further `/tap` gets 503). Default: 8.
            public var maxTaps: Int = 8

            public init() {}

            static let yaml = YAMLSchema<Self>([
                .strings("redact_headers", \.redactHeaders),
                .strings("redact_query_parameters", \.redactQueryParameters),
                .count("max_taps", \.maxTaps, in: 1...64, " (each tap may hold 4 MiB of queued events)"),
            ])
        }

        /// No admin listener.
        public static var off: Admin {
            var admin = Admin()
            admin.enabled = false
            return admin
        }
    }
}

extension GatewayConfiguration.Admin {
    /// `admin: { address: host:port | off, token_file: path, tap: {…} }`.
    static let yaml = YAMLSchema<Self>([
        .optional("address") { value, field, _ throws(ConfigurationError) in
            let text = try field.string()
            if text == "off" {
                value.enabled = false
            } else {
                (value.host, value.port) = try HostSyntax.listenAddress(text, at: field.path)
            }
        },
        .optional("token_file") { value, field, reader throws(ConfigurationError) in
            value.tokenFile = try reader.filePath(field)
        },
        .section("tap", \.tap, Tap.yaml),
    ])
}

extension GatewayConfiguration {
    /// The admin address is not one of the listeners' addresses.
    func validateAdmin(at path: ConfigPath) throws(ConfigurationError) {
        guard self.admin.enabled else { return }
        guard (0...65535).contains(self.admin.port) else {
            throw path.key("address").error(.outOfRange, "port \(self.admin.port) is out of range 1–65535")
        }
        let address = Listener(host: self.admin.host.lowercased(), port: self.admin.port).name
        for (index, listener) in self.listeners.enumerated()
        where Listener(host: listener.host.lowercased(), port: listener.port).name == address {
            throw path.key("address").error(.conflict, "\(address) is already used by listeners[\(index)]")
        }
    }

    /// What a reload cannot change without rebinding sockets: the listeners' names, addresses and
    /// whether they terminate TLS, and the admin address. `nil` when `other` keeps them.
    func bindingDifference(from other: GatewayConfiguration) -> String? {
        func binding(_ listener: Listener) -> String {
            "\(listener.name)=\(listener.host):\(listener.port)\(listener.tls == nil ? "" : "+tls")"
        }
        let old = self.listeners.map(binding)
        let new = other.listeners.map(binding)
        if old != new {
            return "listeners changed (\(old.joined(separator: ", ")) → \(new.joined(separator: ", "))); "
                + "listener addresses are bound at start: restart to change them"
        }
        if self.eventLoopCount != other.eventLoopCount {
            return "workers changed (\(self.eventLoopCount) → \(other.eventLoopCount)); the event loops are made at start: restart to change them"
        }
        // The token file and the tap settings are read again on reload; only the binding is fixed.
        if self.admin.enabled != other.admin.enabled || self.admin.host != other.admin.host || self.admin.port != other.admin.port {
            return "the admin address changed; it is bound at start: restart to change it"
        }
        return nil
    }
}
