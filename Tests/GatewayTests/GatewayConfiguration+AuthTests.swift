import Testing

@testable import Gateway

/// `routes[].auth` as a whole: an `auth` with no method would let every client in, so it is refused
/// with the route's name and what to write, whether read from YAML (start, `wsgate check`, SIGHUP) or
/// built in code (``RouteAuthorizers``).
@Suite struct GatewayConfigurationAuthTests {
    static func error(_ route: String) -> ConfigurationError? {
        do {
            _ = try GatewayConfiguration(
                yaml: """
                    listeners: [{address: "127.0.0.1:8080"}]
                    routes:
                      - {path: /open, upstreams: ["ws://127.0.0.1:9000"]}
                      - \(route)
                    """,
                baseDirectory: "/etc/wsgate"
            )
            return nil
        } catch {
            return error
        }
    }

    @Test(arguments: [
        "{path: /chat, upstreams: [\"ws://127.0.0.1:9000\"], auth: {}}",
        "{path: /chat, upstreams: [\"ws://127.0.0.1:9000\"], auth: null}",
        "{path: /chat, upstreams: [\"ws://127.0.0.1:9000\"], auth: ~}",
        "{path: /chat, upstreams: [\"ws://127.0.0.1:9000\"], auth: }",
    ])
    func anAuthWithNoMethodIsAnErrorThatNamesTheRouteAndSaysWhatToWrite(route: String) throws {
        let error = try #require(Self.error(route), "accepted: \(route)")
        #expect(error.code == .missingKey)
        #expect(error.keyPath == "routes[1].auth")
        #expect(error.message.contains("route \"/chat\""), "\(error)")
        #expect(error.message.contains("jwt: {jwks: FILE}") && error.message.contains("forward: {url: http://"), "\(error)")
        #expect(error.message.contains("remove auth"), "\(error)")
    }

    @Test(arguments: [
        ("auth: {jwt: null}", "routes[1].auth.jwt"),
        ("auth: {jwt: }", "routes[1].auth.jwt"),
        ("auth: {forward: ~}", "routes[1].auth.forward"),
        ("auth: {jwt: ~, forward: {url: \"http://auth/\"}}", "routes[1].auth.jwt"),
        ("auth: {forward: null, jwt: {jwks: /etc/keys.json}}", "routes[1].auth.forward"),
        ("auth: {jwt: {}}", "routes[1].auth.jwt.jwks"),
        ("auth: {forward: {}}", "routes[1].auth.forward.url"),
    ])
    func aMethodWithNoValueIsAnErrorThatSaysWhatToWrite(auth: String, keyPath: String) throws {
        let error = try #require(Self.error("{path: /chat, upstreams: [\"ws://127.0.0.1:9000\"], \(auth)}"), "accepted: \(auth)")
        #expect(error.code == .missingKey, "\(error)")
        #expect(error.keyPath == keyPath, "\(error)")
        if !keyPath.hasSuffix(".jwks") && !keyPath.hasSuffix(".url") {
            #expect(error.message.contains("write") && error.message.contains("or remove"), "\(error)")
        }
    }

    @Test func aRouteWithoutAuthAndOneWithAMethodAreAccepted() throws {
        #expect(Self.error("{path: /chat, upstreams: [\"ws://127.0.0.1:9000\"]}") == nil)
        #expect(Self.error("{path: /chat, upstreams: [\"ws://127.0.0.1:9000\"], auth: {forward: {url: \"http://auth/\"}}}") == nil)
    }

    /// A configuration built in code: ``GatewayConfiguration/validate()`` refuses it, and so does
    /// compiling it (the start and ``GatewayServer/reload(configuration:)``, which do not validate).
    @Test func anEmptyAuthBuiltInCodeIsRefusedByValidationAndByTheEnvironment() throws {
        var configuration = GatewayConfiguration(
            listeners: [.init(host: "127.0.0.1", port: 8080)],
            routes: [.init(pathPrefix: "/chat", upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 9000)])]
        )
        configuration.routes[0].auth = GatewayConfiguration.RouteAuthentication()
        let invalid = #expect(throws: ConfigurationError.self) { try configuration.validate() }
        #expect(invalid?.keyPath == "routes[0].auth")
        let refused = #expect(throws: GatewayError.self) { _ = try GatewayEnvironment(configuration) }
        #expect(refused?.description.contains("route \"/chat\" has auth with no method") == true, "\(String(describing: refused))")
    }
}
