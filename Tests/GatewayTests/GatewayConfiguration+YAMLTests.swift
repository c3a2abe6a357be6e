import Foundation
import TLSShim
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

/// A document that must fail with `code` at `keyPath`, with a message containing `message`.
struct InvalidDocument: Sendable, CustomTestStringConvertible {
    var code: ConfigurationError.Code
    var yaml: String
    var keyPath: String
    var message: String

    var testDescription: String { "\(self.code) \(self.keyPath): \(self.message)" }
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

        let upstreamTLS = GatewayConfiguration.UpstreamTLS(
            configuration: TLSClientConfiguration {
                $0.certificateVerification = .none
                $0.trustRoots = .certificates(.file("/etc/wsgate/certs/ca.pem"))
                $0.identity = TLSIdentity(certificateChain: .file("/etc/wsgate/c.pem"), privateKey: .file("/etc/wsgate/c.key"))
            },
            serverName: "app.internal"
        )
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
        var expected = GatewayConfiguration(
            listeners: [
                .init(
                    name: "public",
                    host: "0.0.0.0",
                    port: 8443,
                    tls: TLSServerConfiguration(
                        defaultIdentity: TLSIdentity(
                            certificateChain: .file("/etc/wsgate/certs/gateway.pem"),
                            privateKey: .file("/etc/wsgate/certs/gateway.key")
                        )
                    ) {
                        $0.virtualHosts = [
                            TLSVirtualHost(
                                serverNames: ["api.example.com", "*.example.org"],
                                identity: TLSIdentity(certificateChain: .file("/etc/wsgate/certs/api.pem"), privateKey: .file("/etc/ssl/api.key"))
                            )
                        ]
                        $0.minimumVersion = .tls1_3
                    }
                ),
                .init(host: "::1", port: 8080),
            ],
            routes: [
                .init(
                    hosts: ["chat.example.com", "*.example.com"],
                    pathPrefix: "/chat",
                    upstreams: [
                        .init(scheme: .ws, host: "127.0.0.1", port: 9000),
                        .init(scheme: .wss, host: "app.internal", port: 8443, path: "/socket"),
                        .init(scheme: .wss, host: "::1", port: 443),
                    ],
                    subprotocols: ["chat.v1"]
                ),
                .init(upstreams: [.init(scheme: .ws, host: "backend", port: 80)]),
            ],
            limits: limits,
            timeouts: timeouts,
            accessLog: .file("/etc/wsgate/logs/access.log")
        )
        expected.routes[0].upstreamTLS = upstreamTLS
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

    @Test(arguments: [("1.2", TLSVersion.tls1_2), ("\"1.3\"", .tls1_3), ("'1.3'", .tls1_3)])
    func tlsVersionsMayBeQuotedOrNot(text: String, expected: TLSVersion) throws {
        let listener = #"{address: "0.0.0.0:1", tls: {certificate: a, key: b, min_version: \#(text)}}"#
        let parsed = try GatewayConfiguration(yaml: document(listeners: listener))
        #expect(parsed.listeners[0].tls?.minimumVersion == expected)
    }

    // MARK: Errors

    /// One invalid document per rule: the code, the exact key path and a fragment of the message.
    static let invalidDocuments = invalidDocumentTable.map { InvalidDocument(code: $0.0, yaml: $0.1, keyPath: $0.2, message: $0.3) }

    private static let invalidDocumentTable: [(ConfigurationError.Code, String, String, String)] = [
        // Upstream URLs.
        (
            .invalidValue,
            document(routes: #"{upstreams: ["ws://a:1"]}, {path: /x, upstreams: ["http://x"]}"#),
            "routes[1].upstreams[0]", #""http://x" is not a ws:// or wss:// URL"#
        ),
        (.invalidValue, document(routes: #"{upstreams: ["127.0.0.1:9000"]}"#), "routes[0].upstreams[0]", "is not a ws:// or wss:// URL"),
        (.outOfRange, document(routes: #"{upstreams: ["ws://h:70000"]}"#), "routes[0].upstreams[0]", "port 70000 is out of range 1–65535"),
        (.outOfRange, document(routes: #"{upstreams: ["ws://h:0"]}"#), "routes[0].upstreams[0]", "port 0 is out of range 1–65535"),
        (.invalidValue, document(routes: #"{upstreams: ["ws://h:"]}"#), "routes[0].upstreams[0]", "has no valid port"),
        (.invalidValue, document(routes: #"{upstreams: ["ws://:80"]}"#), "routes[0].upstreams[0]", "has no host"),
        (.invalidValue, document(routes: #"{upstreams: ["ws://h/p?q=1"]}"#), "routes[0].upstreams[0]", "has a query"),
        (.invalidValue, document(routes: #"{upstreams: ["ws://u:p@h"]}"#), "routes[0].upstreams[0]", "has user information"),
        (.invalidValue, document(routes: #"{upstreams: ["wss://[::1"]}"#), "routes[0].upstreams[0]", #"has no closing "]""#),
        (.invalidValue, document(routes: #"{upstreams: ["wss://[nope]:1"]}"#), "routes[0].upstreams[0]", "is not an IPv6 address"),
        (.invalidValue, document(routes: #"{upstreams: ["ws://bad host"]}"#), "routes[0].upstreams[0]", "has white space"),
        (.missingKey, document(routes: #"{upstreams: []}"#), "routes[0].upstreams", "at least one upstream is required"),
        (.missingKey, document(routes: #"{path: /}"#), "routes[0].upstreams", "required key is missing"),
        (.wrongType, document(routes: #"{upstreams: "ws://a"}"#), "routes[0].upstreams", #"expected a list, found the value "ws://a""#),
        // Sizes, counts, durations.
        (
            .invalidValue, document(extra: "limits: {max_message: 10 MB}"), "limits.max_message",
            #""10 MB" is not a size (use B, KiB, MiB, GiB, KB, MB, GB)"#
        ),
        (.invalidValue, document(extra: "limits: {max_frame: 16kib}"), "limits.max_frame", "is not a size"),
        (.outOfRange, document(extra: "limits: {max_frame: 99999999999GiB}"), "limits.max_frame", "is too large"),
        (.invalidValue, document(extra: "limits: {request_headers: many}"), "limits.request_headers", #""many" is not a whole number"#),
        (.outOfRange, document(extra: "limits: {max_fragments: 99999999999999999999}"), "limits.max_fragments", "is too large"),
        (.outOfRange, document(extra: "limits: {max_frame: 0}"), "limits.max_frame", "must be greater than zero (found 0)"),
        (.outOfRange, document(extra: "limits: {max_fragments: -1}"), "limits.max_fragments", "must be greater than zero (found -1)"),
        (
            .conflict,
            document(extra: "limits: {buffer_low_watermark: 256KiB, buffer_high_watermark: 64KiB}"),
            "limits.buffer_low_watermark", "262144 bytes must be less than buffer_high_watermark (65536 bytes)"
        ),
        (
            .conflict, document(extra: "limits: {buffer_low_watermark: 256KiB}"), "limits.buffer_low_watermark",
            "must be less than buffer_high_watermark"
        ),
        (.invalidValue, document(extra: "timeouts: {idle: 120}"), "timeouts.idle", "120 has no unit: add one (ms, s, m, h), for example 120s"),
        (
            .invalidValue, document(extra: "timeouts: {close: 10 s}"), "timeouts.close",
            #""10 s" is not a duration (use ms, s, m, h, e.g. 250ms, 10s, 1m30s)"#
        ),
        (.outOfRange, document(extra: "timeouts: {close: 9999999999h}"), "timeouts.close", "is too large"),
        (.outOfRange, document(extra: "timeouts: {upstream_connect: 0ms}"), "timeouts.upstream_connect", "must be greater than zero"),
        // Unknown keys, at every level.
        (.unknownKey, document(extra: "timeouts: {idel: 10s}"), "timeouts.idel", #"unknown key "idel" (did you mean "idle"?)"#),
        (.unknownKey, document(extra: "routs: []"), "routs", #"unknown key "routs" (did you mean "routes"?)"#),
        (
            .unknownKey, document(extra: "colour: blue"), "colour",
            #"unknown key "colour" (valid keys: listeners, routes, limits, timeouts, access_log, connection_limits, admin, trusted_proxies, client_address, workers)"#
        ),
        (.unknownKey, document(listeners: #"{adress: "1.2.3.4:5"}"#), "listeners[0].adress", #"unknown key "adress" (did you mean "address"?)"#),
        (.unknownKey, document(routes: #"{upstreams: ["wss://a"], upstream_tls: {verfy: false}}"#), "routes[0].upstream_tls.verfy", "unknown key"),
        (.unknownKey, document(extra: "limits: {max_message_size: 1MiB}"), "limits.max_message_size", "unknown key"),
        // Listeners.
        (.outOfRange, document(listeners: #"{address: "0.0.0.0:70000"}"#), "listeners[0].address", "port 70000 is out of range 1–65535"),
        (.invalidValue, document(listeners: #"{address: "0.0.0.0"}"#), "listeners[0].address", "has no port"),
        (.invalidValue, document(listeners: #"{address: ":8080"}"#), "listeners[0].address", "has no host"),
        (.invalidValue, document(listeners: #"{address: "::1:8080"}"#), "listeners[0].address", "put an IPv6 address in brackets"),
        (.invalidValue, document(listeners: #"{address: "[::g]:8080"}"#), "listeners[0].address", #""::g" is not an IPv6 address"#),
        (.invalidValue, document(listeners: #"{address: "bad_host!:8080"}"#), "listeners[0].address", "is not an IP address or host name"),
        (.missingKey, document(listeners: #"{name: x}"#), "listeners[0].address", "required key is missing"),
        (.missingKey, document(listeners: #"{address: }"#), "listeners[0].address", "required key has no value"),
        (.missingKey, document(listeners: ""), "listeners", "at least one listener is required"),
        (.missingKey, "routes: [{upstreams: [\"ws://a\"]}]", "listeners", "required key is missing"),
        (.wrongType, "listeners: {address: \"1.2.3.4:5\"}\nroutes: []", "listeners", "expected a list, found a mapping"),
        (
            .conflict,
            document(listeners: #"{address: "127.0.0.1:8080"}, {address: "127.0.0.1:8080"}"#),
            "listeners[1].address", "127.0.0.1:8080 is already used by listeners[0]"
        ),
        (
            .conflict,
            document(listeners: #"{address: "[::1]:8080"}, {address: "[::1]:8081"}, {address: "[::1]:8080"}"#),
            "listeners[2].address", "[::1]:8080 is already used by listeners[0]"
        ),
        (
            .conflict,
            document(listeners: #"{name: a, address: "127.0.0.1:1"}, {name: a, address: "127.0.0.1:2"}"#),
            "listeners[1].name", #""a" is already used by listeners[0]"#
        ),
        // The built-in listeners' metric label (`wsgate_accept_errors_total{listener="admin"}`) is theirs alone.
        (
            .conflict,
            document(listeners: #"{name: admin, address: "127.0.0.1:1"}"#),
            "listeners[0].name", #""admin" is the metrics label of the built-in admin listener; choose another name"#
        ),
        (
            .conflict,
            document(listeners: #"{name: demo, address: "127.0.0.1:1"}"#),
            "listeners[0].name", #""demo" is the metrics label of the built-in demo upstream; choose another name"#
        ),
        // Listener TLS.
        (
            .invalidValue,
            document(listeners: #"{address: "0.0.0.0:1", tls: {certificate: a, key: b, min_version: "1.1"}}"#),
            "listeners[0].tls.min_version", #""1.1" is not a supported TLS version (use "1.2" or "1.3")"#
        ),
        (.missingKey, document(listeners: #"{address: "0.0.0.0:1", tls: {certificate: a}}"#), "listeners[0].tls.key", "required key is missing"),
        (
            .missingKey,
            document(listeners: #"{address: "0.0.0.0:1", tls: {certificate: a, key: b, sni: [{names: [x], certificate: c}]}}"#),
            "listeners[0].tls.sni[0].key", "required key is missing"
        ),
        (
            .invalidValue,
            document(listeners: #"{address: "0.0.0.0:1", tls: {certificate: a, key: b, sni: [{names: [x, "x.*"], certificate: c, key: d}]}}"#),
            "listeners[0].tls.sni[0].names[1]", #""x.*" is not a host name or a *.suffix pattern"#
        ),
        (
            .missingKey,
            document(listeners: #"{address: "0.0.0.0:1", tls: {certificate: a, key: b, sni: [{names: [], certificate: c, key: d}]}}"#),
            "listeners[0].tls.sni[0].names", "at least one name is required"
        ),
        // Routes.
        (.missingKey, document(routes: ""), "routes", "at least one route is required"),
        (.invalidValue, document(routes: #"{path: chat, upstreams: ["ws://a"]}"#), "routes[0].path", #""chat" must start with "/""#),
        (.invalidValue, document(routes: #"{path: "/chat?x", upstreams: ["ws://a"]}"#), "routes[0].path", "must be a path only"),
        (
            .invalidValue, document(routes: #"{hosts: [a.com, "a.*.com"], upstreams: ["ws://a"]}"#), "routes[0].hosts[1]",
            #""a.*.com" is not a host name or a *.suffix pattern"#
        ),
        (
            .invalidValue, document(routes: #"{hosts: ["*"], upstreams: ["ws://a"]}"#), "routes[0].hosts[0]",
            "is not a host name or a *.suffix pattern"
        ),
        (.invalidValue, document(routes: #"{hosts: ["*example.com"], upstreams: ["ws://a"]}"#), "routes[0].hosts[0]", "is not a host name"),
        (.invalidValue, document(routes: #"{hosts: ["chat.example.com:8443"], upstreams: ["ws://a"]}"#), "routes[0].hosts[0]", "is not a host name"),
        (
            .conflict,
            document(routes: #"{upstreams: ["ws://a"]}, {path: /, upstreams: ["ws://b"]}"#),
            "routes[1]", "routes[0] already matches every host on path /"
        ),
        (
            .conflict,
            document(routes: #"{hosts: [a.com, b.com], path: /x, upstreams: ["ws://a"]}, {hosts: [B.com], path: /x, upstreams: ["ws://b"]}"#),
            "routes[1]", #"routes[0] already matches host "b.com" on path /x"#
        ),
        (
            .invalidValue, document(routes: #"{subprotocols: ["chat v1"], upstreams: ["ws://a"]}"#), "routes[0].subprotocols[0]",
            "is not a valid subprotocol name"
        ),
        // Upstream TLS.
        (
            .missingKey, document(routes: #"{upstreams: ["wss://a"], upstream_tls: {client_certificate: c.pem}}"#),
            "routes[0].upstream_tls.client_key", "required when client_certificate is set"
        ),
        (
            .missingKey, document(routes: #"{upstreams: ["wss://a"], upstream_tls: {client_key: c.key}}"#),
            "routes[0].upstream_tls.client_certificate", "required when client_key is set"
        ),
        (
            .invalidValue, document(routes: #"{upstreams: ["wss://a"], upstream_tls: {verify: yes}}"#), "routes[0].upstream_tls.verify",
            #""yes" is not a boolean (use true or false)"#
        ),
        (
            .invalidValue, document(routes: #"{upstreams: ["wss://a"], upstream_tls: {server_name: "a b"}}"#), "routes[0].upstream_tls.server_name",
            "is not a host name"
        ),
        (
            .conflict, document(routes: #"{upstreams: ["ws://a"], upstream_tls: {verify: true}}"#), "routes[0].upstream_tls",
            "is set but no upstream of this route uses wss://"
        ),
        // Access log, document shape.
        (.invalidValue, document(extra: "access_log: false"), "access_log", "false is not stdout, stderr, off or a file path"),
        (.invalidValue, document(extra: #"access_log: """#), "access_log", "expected stdout, stderr, off or a file path"),
        (.wrongType, document(extra: "access_log: [stdout]"), "access_log", "expected a string, found a list"),
        (.emptyDocument, "", "", "the configuration is empty"),
        (
            .wrongType, "- a\n- b", "",
            "expected a mapping (with keys listeners, routes, limits, timeouts, access_log, connection_limits, admin, trusted_proxies, client_address, workers), found a list"
        ),
        (.wrongType, "{[a]: b}", "", "keys must be plain strings, found a list"),
    ]

    @Test(arguments: Self.invalidDocuments)
    func invalidDocumentsNameTheKeyPath(_ invalid: InvalidDocument) throws {
        let error = try #require(parseError(invalid.yaml), "parsed, but should fail at \(invalid.keyPath)")
        #expect(error.code == invalid.code, "\(error)")
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

    // MARK: Paths and files

    @Test func relativePathsResolveAgainstTheBaseDirectory() throws {
        let yaml = document(
            listeners:
                #"{address: "0.0.0.0:1", tls: {certificate: ./certs/a.pem, key: /abs/a.key, sni: [{names: [x], certificate: ../b.pem, key: b.key}]}}"#,
            routes: #"{upstreams: ["wss://a"], upstream_tls: {ca: ca.pem, client_certificate: c/c.pem, client_key: /k}}"#,
            extra: "access_log: logs//access.log"
        )
        let parsed = try GatewayConfiguration(yaml: yaml, baseDirectory: "/etc/wsgate/")
        let tls = try #require(parsed.listeners[0].tls)
        #expect(tls.defaultIdentity == TLSIdentity(certificateChain: .file("/etc/wsgate/certs/a.pem"), privateKey: .file("/abs/a.key")))
        #expect(tls.virtualHosts[0].identity == TLSIdentity(certificateChain: .file("/etc/wsgate/../b.pem"), privateKey: .file("/etc/wsgate/b.key")))
        let upstreamTLS = try #require(parsed.routes[0].upstreamTLS).configuration
        #expect(upstreamTLS.trustRoots == .certificates(.file("/etc/wsgate/ca.pem")))
        #expect(upstreamTLS.identity == TLSIdentity(certificateChain: .file("/etc/wsgate/c/c.pem"), privateKey: .file("/k")))
        #expect(parsed.accessLog == .file("/etc/wsgate/logs/access.log"))

        let unresolved = try GatewayConfiguration(yaml: yaml)
        #expect(unresolved.listeners[0].tls?.defaultIdentity.certificateChain == .file("./certs/a.pem"))
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
            .unreadableFile,
            keyPath: "",
            message: #"cannot read configuration file "/nonexistent/wsgate.yaml": no such file"#
        )
        #expect(throws: expected) {
            try GatewayConfiguration.load(path: "/nonexistent/wsgate.yaml")
        }
    }

    @Test func loadingADirectorySaysSo() throws {
        #expect(throws: ConfigurationError(.unreadableFile, keyPath: "", message: #"cannot read configuration file "/tmp": it is a directory"#)) {
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
        #expect(example.listeners[0].tls?.defaultIdentity.certificateChain == .file(directory + "/certs/gateway.pem"))
        #expect(example.listeners[0].tls?.virtualHosts.first?.serverNames == ["api.example.com", "*.example.org"])
        #expect(example.routes.count == 2)
        #expect(example.routes[0].pathPrefix == "/chat")
        #expect(example.routes[0].upstreams[1] == .init(scheme: .wss, host: "app.internal", port: 8443, path: "/socket"))
        #expect(example.routes[0].upstreamTLS?.configuration.trustRoots == .certificates(.file(directory + "/certs/ca.pem")))
        #expect(example.routes[1].pathPrefix == "/")
        // The example spells out the defaults.
        #expect(example.limits == GatewayConfiguration.Limits())
        #expect(example.timeouts == GatewayConfiguration.Timeouts())
        #expect(example.accessLog == .standardOutput)
    }
}
