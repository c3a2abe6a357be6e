import Testing

@testable import Gateway

/// The `admin` section and `timeouts.drain` in YAML.
@Suite struct GatewayConfigurationOperationsTests {
    static func document(_ extra: String) -> String {
        """
        listeners:
          - address: 0.0.0.0:8080
        routes:
          - upstreams: [ws://127.0.0.1:9000]
        \(extra)
        """
    }

    @Test func defaultsAreAnAdminListenerOnLoopback9090AndA25SecondDrain() throws {
        let configuration = try GatewayConfiguration(yaml: Self.document(""))
        #expect(configuration.admin == GatewayConfiguration.Admin())
        #expect(configuration.admin.enabled && configuration.admin.host == "127.0.0.1" && configuration.admin.port == 9090)
        #expect(configuration.timeouts.drain == .seconds(25))
    }

    @Test func theAdminAddressAndTheDrainAreRead() throws {
        let configuration = try GatewayConfiguration(yaml: Self.document("admin:\n  address: \"[::1]:9100\"\ntimeouts:\n  drain: 1m"))
        #expect(configuration.admin.host == "::1" && configuration.admin.port == 9100)
        #expect(configuration.timeouts.drain == .seconds(60))
        #expect(try GatewayConfiguration(yaml: Self.document("admin:\n  address: off")).admin.enabled == false)
    }

    @Test(arguments: [
        (
            ConfigurationError.Code.invalidValue, "admin:\n  address: 9090", "admin.address",
            #""9090" has no port (use host:port, e.g. 0.0.0.0:8443 or [::]:8443)"#
        ),
        (.unknownKey, "admin:\n  port: 9090", "admin.port", #"unknown key "port" (valid keys: address, token_file, tap)"#),
        (
            .outOfRange, "admin:\n  tap:\n    max_taps: 0", "admin.tap.max_taps",
            "0 is out of range 1–64 (each tap may hold 4 MiB of queued events)"
        ),
        (
            .unknownKey, "admin:\n  tap:\n    redact: [x]", "admin.tap.redact",
            #"unknown key "redact" (valid keys: redact_headers, redact_query_parameters, max_taps)"#
        ),
        (.conflict, "admin:\n  address: 0.0.0.0:8080", "admin.address", "0.0.0.0:8080 is already used by listeners[0]"),
        (.outOfRange, "timeouts:\n  drain: 0s", "timeouts.drain", "must be greater than zero (found 0.0 seconds)"),
    ])
    func invalidOperationsSettingsNameTheKeyPath(code: ConfigurationError.Code, yaml: String, keyPath: String, message: String) {
        #expect(throws: ConfigurationError(code, keyPath: keyPath, message: message)) {
            try GatewayConfiguration(yaml: Self.document(yaml))
        }
    }

    @Test func aReloadMayNotMoveAListenerOrTheAdminListener() throws {
        let base = try GatewayConfiguration(yaml: Self.document(""))
        var routes = base
        routes.routes[0].pathPrefix = "/other"
        #expect(base.bindingDifference(from: routes) == nil)
        var moved = base
        moved.listeners[0].port = 8081
        #expect(base.bindingDifference(from: moved)?.contains("restart") == true)
        var admin = base
        admin.admin.port = 9191
        #expect(base.bindingDifference(from: admin)?.contains("admin") == true)
        // The token file and the tap settings are read again on reload (issue #14).
        var guarded = base
        guarded.admin.tokenFile = "/run/secrets/admin-token"
        guarded.admin.tap.maxTaps = 2
        #expect(base.bindingDifference(from: guarded) == nil)
    }

    @Test func theTokenFileAndTheTapSettingsAreRead() throws {
        let yaml = """
            admin:
              token_file: /run/secrets/admin-token
              tap:
                redact_headers: [X-Api-Key]
                redact_query_parameters: [session]
                max_taps: 2
            """
        let admin = try GatewayConfiguration(yaml: Self.document(yaml)).admin
        #expect(admin.tokenFile == "/run/secrets/admin-token")
        #expect(admin.tap.redactHeaders == ["X-Api-Key"] && admin.tap.redactQueryParameters == ["session"] && admin.tap.maxTaps == 2)
        #expect(GatewayConfiguration.Admin().tokenFile == nil && GatewayConfiguration.Admin().tap.maxTaps == 8)
    }
}
