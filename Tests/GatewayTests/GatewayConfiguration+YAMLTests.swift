import Foundation
import Testing

@testable import Gateway

/// A configuration in flow style with one part replaced; every other part is minimal and valid.
private func document(
    listeners: String = #"{address: "127.0.0.1:8080"}"#,
    routes: String = #"{upstreams: ["ws://127.0.0.1:9000"]}"#,
    extra: String = ""
) -> String {
    """
    listeners: [\(listeners)]
    routes: [\(routes)]
    \(extra)
    """
}

/// The error `GatewayConfiguration(yaml:)` throws, or `nil` when it parses.
private func parseError(_ yaml: String, baseDirectory: String? = nil) -> ConfigurationError? {
    do {
        _ = try GatewayConfiguration(yaml: yaml, baseDirectory: baseDirectory)
        return nil
    } catch {
        return error
    }
}

/// A document that must fail at `keyPath` with a message containing `message`.
struct InvalidDocument: Sendable, CustomTestStringConvertible {
    var yaml: String
    var keyPath: String
    var message: String

    var testDescription: String { "\(self.keyPath): \(self.message)" }
}

@Suite struct GatewayConfigurationYAMLTests {
    // MARK: Whole documents

    static let fullExample = """
        listeners:
          - name: public
            address: 0.0.0.0:8443
            tls:
              certificate: certs/gateway.pem
              key: certs/gateway.key
              min_version: "1.3"
              sni:
                - names: [api.example.com, "*.Example.org"]
                  certificate: certs/api.pem
                  key: /etc/ssl/api.key
          - address: "[::1]:8080"
        routes:
          - hosts: ["chat.example.com", "*.example.com"]
            path: /chat
            upstreams: ["ws://127.0.0.1:9000", "wss://app.internal:8443/socket", "wss://[::1]"]
            subprotocols: [chat.v1]
            upstream_tls: { verify: false, ca: certs/ca.pem, server_name: app.internal, client_certificate: c.pem, client_key: ./c.key }
          - upstreams: ["ws://backend"]
        limits: { request_head: 8KiB, request_headers: 50, max_frame: 64KB, max_message: 2MiB, max_fragments: 16, buffer_high_watermark: 1MiB, buffer_low_watermark: 512 }
        timeouts: { request_head: 5s, tls_handshake: 1m30s, upstream_connect: 250ms, upstream_handshake: 2m, close: 1h, idle: 45s }
        access_log: logs/access.log
        """

    @Test func fullExampleParsesToTheExpectedValue() throws {
        let parsed = try GatewayConfiguration(yaml: Self.fullExample, baseDirectory: "/etc/wsgate")

        var upstreamTLS = GatewayConfiguration.UpstreamTLS()
        upstreamTLS.verify = false
        upstreamTLS.caPath = "/etc/wsgate/certs/ca.pem"
        upstreamTLS.serverName = "app.internal"
        upstreamTLS.clientCertificatePath = "/etc/wsgate/c.pem"
        upstreamTLS.clientPrivateKeyPath = "/etc/wsgate/c.key"
        var limits = GatewayConfiguration.Limits()
        limits.requestHeadBytes = 8192
        limits.requestHeaders = 50
        limits.maxFrameSize = 64_000
        limits.maxMessageSize = 2 << 20
        limits.maxFragments = 16
        limits.bufferHighWatermark = 1 << 20
        limits.bufferLowWatermark = 512
        var timeouts = GatewayConfiguration.Timeouts()
        timeouts.requestHead = .seconds(5)
        timeouts.tlsHandshake = .seconds(90)
        timeouts.upstreamConnect = .milliseconds(250)
        timeouts.upstreamHandshake = .seconds(120)
        timeouts.close = .seconds(3600)
        timeouts.idle = .seconds(45)
        let expected = GatewayConfiguration(
            listeners: [
                .init(
                    name: "public",
                    host: "0.0.0.0",
                    port: 8443,
                    tls: .init(
                        certificatePath: "/etc/wsgate/certs/gateway.pem",
                        privateKeyPath: "/etc/wsgate/certs/gateway.key",
                        sniCertificates: [
                            .init(
                                serverNames: ["api.example.com", "*.example.org"],
                                certificatePath: "/etc/wsgate/certs/api.pem",
                                privateKeyPath: "/etc/ssl/api.key"
                            )
                        ],
                        minimumVersion: .v1_3
                    )
                ),
                .init(host: "::1", port: 8080),
            ],
            routes: [
                .init(
                    hosts: ["chat.example.com", "*.example.com"],
                    pathPrefix: "/chat",
                    upstreams: [
                        .init(scheme: .ws, host: "127.0.0.1", port: 9000),
                        .init(scheme: .wss, host: "app.internal", port: 8443, path: "/socket", tls: upstreamTLS),
                        .init(scheme: .wss, host: "::1", port: 443, tls: upstreamTLS),
                    ],
                    subprotocols: ["chat.v1"]
                ),
                .init(upstreams: [.init(scheme: .ws, host: "backend", port: 80)]),
            ],
            limits: limits,
            timeouts: timeouts,
            accessLog: .file("/etc/wsgate/logs/access.log")
        )
        #expect(parsed == expected)
        #expect(parsed.listeners[1].name == "[::1]:8080")
    }

    @Test func minimalConfigurationGetsEveryDefault() throws {
        let yaml = """
            listeners:
              - address: 127.0.0.1:8080
            routes:
              - upstreams: ["ws://127.0.0.1:9000"]
            """
        let parsed = try GatewayConfiguration(yaml: yaml)
        let expected = GatewayConfiguration(
            listeners: [.init(host: "127.0.0.1", port: 8080)],
            routes: [.init(upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 9000)])]
        )
        #expect(parsed == expected)
        #expect(parsed.listeners[0].name == "127.0.0.1:8080")
        #expect(parsed.listeners[0].tls == nil)
        #expect(parsed.routes[0].pathPrefix == "/")
        #expect(parsed.routes[0].hosts.isEmpty)
        #expect(parsed.limits == GatewayConfiguration.Limits())
        #expect(parsed.timeouts == GatewayConfiguration.Timeouts())
        #expect(parsed.accessLog == .standardOutput)
    }

    @Test func emptyValuesMeanTheDefault() throws {
        let parsed = try GatewayConfiguration(yaml: document(extra: "limits:\ntimeouts: ~\naccess_log:"))
        #expect(parsed.limits == GatewayConfiguration.Limits())
        #expect(parsed.timeouts == GatewayConfiguration.Timeouts())
        #expect(parsed.accessLog == .standardOutput)
    }

    @Test(arguments: [
        ("stdout", GatewayConfiguration.AccessLogDestination.standardOutput),
        ("stderr", .standardError),
        ("off", .off),
        ("/var/log/wsgate.log", .file("/var/log/wsgate.log")),
        ("access.log", .file("/srv/access.log")),
    ])
    func accessLogDestinations(text: String, expected: GatewayConfiguration.AccessLogDestination) throws {
        let parsed = try GatewayConfiguration(yaml: document(extra: "access_log: \(text)"), baseDirectory: "/srv")
        #expect(parsed.accessLog == expected)
    }

    @Test(arguments: [("1.2", GatewayConfiguration.TLSVersion.v1_2), ("\"1.3\"", .v1_3), ("'1.3'", .v1_3)])
    func tlsVersionsMayBeQuotedOrNot(text: String, expected: GatewayConfiguration.TLSVersion) throws {
        let listener = #"{address: "0.0.0.0:1", tls: {certificate: a, key: b, min_version: \#(text)}}"#
        let parsed = try GatewayConfiguration(yaml: document(listeners: listener))
        #expect(parsed.listeners[0].tls?.minimumVersion == expected)
    }

    // MARK: Upstream URLs

    @Test(arguments: [
        ("ws://127.0.0.1:9000", GatewayConfiguration.Upstream(scheme: .ws, host: "127.0.0.1", port: 9000)),
        ("ws://app", .init(scheme: .ws, host: "app", port: 80)),
        ("wss://app", .init(scheme: .wss, host: "app", port: 443)),
        ("WSS://app.internal:8443/socket", .init(scheme: .wss, host: "app.internal", port: 8443, path: "/socket")),
        ("ws://[::1]:9000/a/b", .init(scheme: .ws, host: "::1", port: 9000, path: "/a/b")),
        ("wss://[2001:db8::1]", .init(scheme: .wss, host: "2001:db8::1", port: 443)),
        ("ws://app/", .init(scheme: .ws, host: "app", port: 80, path: "/")),
    ])
    func upstreamURLs(text: String, expected: GatewayConfiguration.Upstream) throws {
        let parsed = try GatewayConfiguration(yaml: document(routes: "{upstreams: [\"\(text)\"]}"))
        #expect(parsed.routes[0].upstreams == [expected])
    }

    // MARK: Errors

    /// One invalid document per rule: the exact key path and a fragment of the message.
    static let invalidDocuments = invalidDocumentTable.map { InvalidDocument(yaml: $0.0, keyPath: $0.1, message: $0.2) }

    private static let invalidDocumentTable: [(String, String, String)] = [
        // Upstream URLs.
        (
            document(routes: #"{upstreams: ["ws://a:1"]}, {path: /x, upstreams: ["http://x"]}"#),
            "routes[1].upstreams[0]", #""http://x" is not a ws:// or wss:// URL"#
        ),
        (document(routes: #"{upstreams: ["127.0.0.1:9000"]}"#), "routes[0].upstreams[0]", "is not a ws:// or wss:// URL"),
        (document(routes: #"{upstreams: ["ws://h:70000"]}"#), "routes[0].upstreams[0]", "port 70000 is out of range 1–65535"),
        (document(routes: #"{upstreams: ["ws://h:0"]}"#), "routes[0].upstreams[0]", "port 0 is out of range 1–65535"),
        (document(routes: #"{upstreams: ["ws://h:"]}"#), "routes[0].upstreams[0]", "has no valid port"),
        (document(routes: #"{upstreams: ["ws://:80"]}"#), "routes[0].upstreams[0]", "has no host"),
        (document(routes: #"{upstreams: ["ws://h/p?q=1"]}"#), "routes[0].upstreams[0]", "has a query"),
        (document(routes: #"{upstreams: ["ws://u:p@h"]}"#), "routes[0].upstreams[0]", "has user information"),
        (document(routes: #"{upstreams: ["wss://[::1"]}"#), "routes[0].upstreams[0]", #"has no closing "]""#),
        (document(routes: #"{upstreams: ["wss://[nope]:1"]}"#), "routes[0].upstreams[0]", "is not an IPv6 address"),
        (document(routes: #"{upstreams: ["ws://bad host"]}"#), "routes[0].upstreams[0]", "has white space"),
        (document(routes: #"{upstreams: []}"#), "routes[0].upstreams", "at least one upstream is required"),
        (document(routes: #"{path: /}"#), "routes[0].upstreams", "required key is missing"),
        (document(routes: #"{upstreams: "ws://a"}"#), "routes[0].upstreams", #"expected a list, found the value "ws://a""#),
        // Sizes, counts, durations.
        (document(extra: "limits: {max_message: 10 MB}"), "limits.max_message", #""10 MB" is not a size (use B, KiB, MiB, GiB, KB, MB, GB)"#),
        (document(extra: "limits: {max_frame: 16kib}"), "limits.max_frame", "is not a size"),
        (document(extra: "limits: {max_frame: 99999999999GiB}"), "limits.max_frame", "is too large"),
        (document(extra: "limits: {request_headers: many}"), "limits.request_headers", #""many" is not a whole number"#),
        (document(extra: "limits: {max_fragments: 99999999999999999999}"), "limits.max_fragments", "is too large"),
        (document(extra: "limits: {max_frame: 0}"), "limits.max_frame", "must be greater than zero (found 0)"),
        (document(extra: "limits: {max_fragments: -1}"), "limits.max_fragments", "must be greater than zero (found -1)"),
        (
            document(extra: "limits: {buffer_low_watermark: 256KiB, buffer_high_watermark: 64KiB}"),
            "limits.buffer_low_watermark", "262144 bytes must be less than buffer_high_watermark (65536 bytes)"
        ),
        (document(extra: "limits: {buffer_low_watermark: 256KiB}"), "limits.buffer_low_watermark", "must be less than buffer_high_watermark"),
        (document(extra: "timeouts: {idle: 120}"), "timeouts.idle", "120 has no unit: add one (ms, s, m, h), for example 120s"),
        (document(extra: "timeouts: {close: 10 s}"), "timeouts.close", #""10 s" is not a duration (use ms, s, m, h, e.g. 250ms, 10s, 1m30s)"#),
        (document(extra: "timeouts: {close: 9999999999h}"), "timeouts.close", "is too large"),
        (document(extra: "timeouts: {upstream_connect: 0ms}"), "timeouts.upstream_connect", "must be greater than zero"),
        // Unknown keys, at every level.
        (document(extra: "timeouts: {idel: 10s}"), "timeouts.idel", #"unknown key "idel" (did you mean "idle"?)"#),
        (document(extra: "routs: []"), "routs", #"unknown key "routs" (did you mean "routes"?)"#),
        (document(extra: "colour: blue"), "colour", #"unknown key "colour" (valid keys: listeners, routes, limits, timeouts, access_log, connection_limits, admin, trusted_proxies, client_address)"#),
        (document(listeners: #"{adress: "1.2.3.4:5"}"#), "listeners[0].adress", #"unknown key "adress" (did you mean "address"?)"#),
        (document(routes: #"{upstreams: ["wss://a"], upstream_tls: {verfy: false}}"#), "routes[0].upstream_tls.verfy", "unknown key"),
        (document(extra: "limits: {max_message_size: 1MiB}"), "limits.max_message_size", "unknown key"),
        // Listeners.
        (document(listeners: #"{address: "0.0.0.0:70000"}"#), "listeners[0].address", "port 70000 is out of range 1–65535"),
        (document(listeners: #"{address: "0.0.0.0"}"#), "listeners[0].address", "has no port"),
        (document(listeners: #"{address: ":8080"}"#), "listeners[0].address", "has no host"),
        (document(listeners: #"{address: "::1:8080"}"#), "listeners[0].address", "put an IPv6 address in brackets"),
        (document(listeners: #"{address: "[::g]:8080"}"#), "listeners[0].address", #""::g" is not an IPv6 address"#),
        (document(listeners: #"{address: "bad_host!:8080"}"#), "listeners[0].address", "is not an IP address or host name"),
        (document(listeners: #"{name: x}"#), "listeners[0].address", "required key is missing"),
        (document(listeners: #"{address: }"#), "listeners[0].address", "required key has no value"),
        (document(listeners: ""), "listeners", "at least one listener is required"),
        ("routes: [{upstreams: [\"ws://a\"]}]", "listeners", "required key is missing"),
        ("listeners: {address: \"1.2.3.4:5\"}\nroutes: []", "listeners", "expected a list, found a mapping"),
        (
            document(listeners: #"{address: "127.0.0.1:8080"}, {address: "127.0.0.1:8080"}"#),
            "listeners[1].address", "127.0.0.1:8080 is already used by listeners[0]"
        ),
        (
            document(listeners: #"{address: "[::1]:8080"}, {address: "[::1]:8081"}, {address: "[::1]:8080"}"#),
            "listeners[2].address", "[::1]:8080 is already used by listeners[0]"
        ),
        (
            document(listeners: #"{name: a, address: "127.0.0.1:1"}, {name: a, address: "127.0.0.1:2"}"#),
            "listeners[1].name", #""a" is already used by listeners[0]"#
        ),
        // Listener TLS.
        (
            document(listeners: #"{address: "0.0.0.0:1", tls: {certificate: a, key: b, min_version: "1.1"}}"#),
            "listeners[0].tls.min_version", #""1.1" is not a supported TLS version (use "1.2" or "1.3")"#
        ),
        (document(listeners: #"{address: "0.0.0.0:1", tls: {certificate: a}}"#), "listeners[0].tls.key", "required key is missing"),
        (
            document(listeners: #"{address: "0.0.0.0:1", tls: {certificate: a, key: b, sni: [{names: [x], certificate: c}]}}"#),
            "listeners[0].tls.sni[0].key", "required key is missing"
        ),
        (
            document(listeners: #"{address: "0.0.0.0:1", tls: {certificate: a, key: b, sni: [{names: [x, "x.*"], certificate: c, key: d}]}}"#),
            "listeners[0].tls.sni[0].names[1]", #""x.*" is not a host name or a *.suffix pattern"#
        ),
        (
            document(listeners: #"{address: "0.0.0.0:1", tls: {certificate: a, key: b, sni: [{names: [], certificate: c, key: d}]}}"#),
            "listeners[0].tls.sni[0].names", "at least one name is required"
        ),
        // Routes.
        (document(routes: ""), "routes", "at least one route is required"),
        (document(routes: #"{path: chat, upstreams: ["ws://a"]}"#), "routes[0].path", #""chat" must start with "/""#),
        (document(routes: #"{path: "/chat?x", upstreams: ["ws://a"]}"#), "routes[0].path", "must be a path only"),
        (document(routes: #"{hosts: [a.com, "a.*.com"], upstreams: ["ws://a"]}"#), "routes[0].hosts[1]", #""a.*.com" is not a host name or a *.suffix pattern"#),
        (document(routes: #"{hosts: ["*"], upstreams: ["ws://a"]}"#), "routes[0].hosts[0]", "is not a host name or a *.suffix pattern"),
        (document(routes: #"{hosts: ["*example.com"], upstreams: ["ws://a"]}"#), "routes[0].hosts[0]", "is not a host name"),
        (document(routes: #"{hosts: ["chat.example.com:8443"], upstreams: ["ws://a"]}"#), "routes[0].hosts[0]", "is not a host name"),
        (
            document(routes: #"{upstreams: ["ws://a"]}, {path: /, upstreams: ["ws://b"]}"#),
            "routes[1]", "routes[0] already matches every host on path /"
        ),
        (
            document(routes: #"{hosts: [a.com, b.com], path: /x, upstreams: ["ws://a"]}, {hosts: [B.com], path: /x, upstreams: ["ws://b"]}"#),
            "routes[1]", #"routes[0] already matches host "b.com" on path /x"#
        ),
        (document(routes: #"{subprotocols: ["chat v1"], upstreams: ["ws://a"]}"#), "routes[0].subprotocols[0]", "is not a valid subprotocol name"),
        // Upstream TLS.
        (document(routes: #"{upstreams: ["wss://a"], upstream_tls: {client_certificate: c.pem}}"#), "routes[0].upstream_tls.client_key", "required when client_certificate is set"),
        (document(routes: #"{upstreams: ["wss://a"], upstream_tls: {client_key: c.key}}"#), "routes[0].upstream_tls.client_certificate", "required when client_key is set"),
        (document(routes: #"{upstreams: ["wss://a"], upstream_tls: {verify: yes}}"#), "routes[0].upstream_tls.verify", #""yes" is not a boolean (use true or false)"#),
        (document(routes: #"{upstreams: ["wss://a"], upstream_tls: {server_name: "a b"}}"#), "routes[0].upstream_tls.server_name", "is not a host name"),
        (document(routes: #"{upstreams: ["ws://a"], upstream_tls: {verify: true}}"#), "routes[0].upstream_tls", "is set but no upstream of this route uses wss://"),
        // Access log, document shape.
        (document(extra: "access_log: false"), "access_log", "false is not stdout, stderr, off or a file path"),
        (document(extra: #"access_log: """#), "access_log", "expected stdout, stderr, off or a file path"),
        (document(extra: "access_log: [stdout]"), "access_log", "expected a string, found a list"),
        ("", "", "the configuration is empty"),
        ("- a\n- b", "", "expected a mapping (with keys listeners, routes, limits, timeouts, access_log, connection_limits, admin, trusted_proxies, client_address), found a list"),
        ("{[a]: b}", "", "keys must be plain strings, found a list"),
    ]

    @Test(arguments: Self.invalidDocuments)
    func invalidDocumentsNameTheKeyPath(_ invalid: InvalidDocument) throws {
        let error = try #require(parseError(invalid.yaml), "parsed, but should fail at \(invalid.keyPath)")
        #expect(error.keyPath == invalid.keyPath, "\(error)")
        #expect(error.message.contains(invalid.message), "\(error)")
    }

    @Test func syntaxErrorsHaveLineAndColumn() throws {
        let yaml = "listeners:\n  - address: 127.0.0.1:8080\n routes: [\n"
        let error = try #require(parseError(yaml))
        #expect(error.keyPath == "")
        #expect(error.message.hasPrefix("YAML syntax error at line 3, column "), "\(error)")
        let unclosed = try #require(parseError("listeners: [{address: \"1.2.3.4:5\"}\nroutes: []"))
        #expect(unclosed.message.contains("YAML syntax error at line "), "\(unclosed)")
    }

    @Test func duplicateKeysAreErrorsWithTheirLine() throws {
        let error = try #require(parseError(document(extra: "timeouts:\n  idle: 1s\n  idle: 2s")))
        #expect(error.message.contains(#"duplicate key "idle""#), "\(error)")
        #expect(error.message.contains("line 4"), "\(error)")
    }

    @Test func descriptionJoinsKeyPathAndMessage() {
        #expect(ConfigurationError(keyPath: "limits.max_frame", message: "bad").description == "limits.max_frame: bad")
        #expect(ConfigurationError(keyPath: "", message: "bad").description == "bad")
    }

    @Test func validateChecksConfigurationsBuiltInCode() throws {
        var configuration = GatewayConfiguration(
            listeners: [.init(host: "0.0.0.0", port: 70000)],
            routes: [.init(upstreams: [.init(scheme: .ws, host: "a", port: 80)])]
        )
        #expect(throws: ConfigurationError(keyPath: "listeners[0].port", message: "70000 is out of range 1–65535")) {
            try configuration.validate()
        }
        configuration.listeners[0].port = 8080
        try configuration.validate()
        configuration.routes[0].upstreams[0].path = "x"
        #expect(throws: ConfigurationError(keyPath: "routes[0].upstreams[0]", message: #"path "x" must start with "/""#)) {
            try configuration.validate()
        }
        configuration.routes[0].upstreams = []
        #expect(throws: ConfigurationError(keyPath: "routes[0].upstreams", message: "at least one upstream is required")) {
            try configuration.validate()
        }
    }

    // MARK: Durations and sizes

    @Test(arguments: [
        ("250ms", Duration.milliseconds(250)),
        ("10s", .seconds(10)),
        ("90s", .seconds(90)),
        ("2m", .seconds(120)),
        ("1h", .seconds(3600)),
        ("1m30s", .seconds(90)),
        ("1h30m", .seconds(5400)),
        ("1h2m3s4ms", .milliseconds(3_723_004)),
        ("0s", .zero),
        ("2562047h", .seconds(2_562_047 * 3600)),
    ])
    func validDurations(text: String, expected: Duration) {
        #expect(GatewayConfiguration.parseDuration(text) == expected)
    }

    @Test(arguments: [
        ("10", QuantityParseResult<Duration>.bareNumber),
        ("0", .bareNumber),
        ("", .malformed),
        ("s", .malformed),
        ("ms", .malformed),
        ("10 s", .malformed),
        (" 10s", .malformed),
        ("10s ", .malformed),
        ("1.5s", .malformed),
        ("-1s", .malformed),
        ("+1s", .malformed),
        ("10S", .malformed),
        ("10sec", .malformed),
        ("1d", .malformed),
        ("10us", .malformed),
        ("30s1m", .malformed),
        ("1s1s", .malformed),
        ("1m30", .malformed),
        ("2562048h", .overflow),
        ("9223372036854775808ms", .overflow),
        ("9223372036854775807s", .overflow),
        ("2562047h1h", .malformed),
    ])
    func invalidDurations(text: String, expected: QuantityParseResult<Duration>) {
        #expect(DurationSyntax.parse(text) == expected)
        #expect(GatewayConfiguration.parseDuration(text) == nil)
    }

    @Test(arguments: [
        ("0", 0),
        ("512", 512),
        ("512B", 512),
        ("16KiB", 16_384),
        ("1MiB", 1_048_576),
        ("1GiB", 1_073_741_824),
        ("64KB", 64_000),
        ("1MB", 1_000_000),
        ("2GB", 2_000_000_000),
        ("8589934591GiB", Int.max - (1 << 30) + 1),
        ("9223372036854775807", Int.max),
    ])
    func validSizes(text: String, expected: Int) {
        #expect(GatewayConfiguration.parseSize(text) == expected)
    }

    @Test(arguments: [
        ("", QuantityParseResult<Int>.malformed),
        ("10 MB", .malformed),
        ("1.5MiB", .malformed),
        ("16kib", .malformed),
        ("16KIB", .malformed),
        ("16kb", .malformed),
        ("16K", .malformed),
        ("KiB", .malformed),
        ("-1", .malformed),
        ("1TiB", .malformed),
        ("0x10", .malformed),
        (" 1", .malformed),
        ("1\u{301}KiB", .malformed),
        ("\u{FF11}KiB", .malformed),
        ("9223372036854775808", .overflow),
        ("8589934592GiB", .overflow),
        ("9999999999999GB", .overflow),
    ])
    func invalidSizes(text: String, expected: QuantityParseResult<Int>) {
        #expect(SizeSyntax.parse(text) == expected)
        #expect(GatewayConfiguration.parseSize(text) == nil)
    }

    // MARK: Paths and files

    @Test func relativePathsResolveAgainstTheBaseDirectory() throws {
        let yaml = document(
            listeners: #"{address: "0.0.0.0:1", tls: {certificate: ./certs/a.pem, key: /abs/a.key, sni: [{names: [x], certificate: ../b.pem, key: b.key}]}}"#,
            routes: #"{upstreams: ["wss://a"], upstream_tls: {ca: ca.pem, client_certificate: c/c.pem, client_key: /k}}"#,
            extra: "access_log: logs//access.log"
        )
        let parsed = try GatewayConfiguration(yaml: yaml, baseDirectory: "/etc/wsgate/")
        let tls = try #require(parsed.listeners[0].tls)
        #expect(tls.certificatePath == "/etc/wsgate/certs/a.pem")
        #expect(tls.privateKeyPath == "/abs/a.key")
        #expect(tls.sniCertificates[0].certificatePath == "/etc/wsgate/../b.pem")
        #expect(tls.sniCertificates[0].privateKeyPath == "/etc/wsgate/b.key")
        let upstreamTLS = parsed.routes[0].upstreams[0].tls
        #expect(upstreamTLS.caPath == "/etc/wsgate/ca.pem")
        #expect(upstreamTLS.clientCertificatePath == "/etc/wsgate/c/c.pem")
        #expect(upstreamTLS.clientPrivateKeyPath == "/k")
        #expect(parsed.accessLog == .file("/etc/wsgate/logs/access.log"))

        let unresolved = try GatewayConfiguration(yaml: yaml)
        #expect(unresolved.listeners[0].tls?.certificatePath == "./certs/a.pem")
        #expect(unresolved.accessLog == .file("logs//access.log"))
    }

    @Test func loadResolvesPathsAgainstTheFilesDirectory() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("gateway.yaml")
        try document(extra: "access_log: access.log").write(to: file, atomically: true, encoding: .utf8)

        let loaded = try GatewayConfiguration.load(path: file.path)
        #expect(loaded.accessLog == .file(directory.appendingPathComponent("access.log").path))
    }

    @Test func loadingAMissingFileSaysSo() {
        let expected = ConfigurationError(
            keyPath: "",
            message: #"cannot read configuration file "/nonexistent/wsgate.yaml": no such file"#
        )
        #expect(throws: expected) {
            try GatewayConfiguration.load(path: "/nonexistent/wsgate.yaml")
        }
    }

    @Test func loadingADirectorySaysSo() throws {
        #expect(throws: ConfigurationError(keyPath: "", message: #"cannot read configuration file "/tmp": it is a directory"#)) {
            try GatewayConfiguration.load(path: "/tmp")
        }
    }

    @Test func theRepositoryExampleParses() throws {
        let repositoryRoot = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // GatewayTests
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()
        let directory = repositoryRoot.appendingPathComponent("config").path
        let example = try GatewayConfiguration.load(path: directory + "/example.yaml")

        #expect(example.listeners.map(\.name) == ["public", "plaintext-local"])
        #expect(example.listeners[0].port == 8443)
        #expect(example.listeners[0].tls?.certificatePath == directory + "/certs/gateway.pem")
        #expect(example.listeners[0].tls?.sniCertificates.first?.serverNames == ["api.example.com", "*.example.org"])
        #expect(example.routes.count == 2)
        #expect(example.routes[0].pathPrefix == "/chat")
        #expect(example.routes[0].upstreams[1] == .init(scheme: .wss, host: "app.internal", port: 8443, path: "/socket", tls: example.routes[0].upstreams[1].tls))
        #expect(example.routes[0].upstreams[1].tls.caPath == directory + "/certs/ca.pem")
        #expect(example.routes[1].pathPrefix == "/")
        // The example spells out the defaults.
        #expect(example.limits == GatewayConfiguration.Limits())
        #expect(example.timeouts == GatewayConfiguration.Timeouts())
        #expect(example.accessLog == .standardOutput)
    }
}
