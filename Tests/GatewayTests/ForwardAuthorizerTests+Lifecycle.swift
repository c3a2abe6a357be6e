import Foundation
import NIOCore
import Testing

@testable import Gateway

/// Forward-auth across a reload and a shutdown, and the client address it reports, over real sockets
/// (the Python auth service counts its open connections).
extension ForwardAuthorizerTests {
    /// Kept-alive auth connections (idle_timeout 30 s here) close promptly when a reload retires their
    /// pool and when the gateway drains; an authorization in flight across the reload still completes.
    @Test func aReloadAndADrainCloseTheKeptAliveAuthConnectionsWithoutCuttingOneInFlight() async throws {
        guard try await PythonPeer.require("asyncio") else { return }
        let auth = try await AuthService()
        let forward = auth.forward("/slow/1000") { $0.idleTimeout = .seconds(30) }
        try await Self.withAuthGatewayServer(forward) { server, port, upstream in
            let first = try await Self.upgrade(port: port)
            defer { first.close() }
            #expect(first.status == 101, "\(first.text)")
            #expect(try await auth.waitForOpen { $0 == 1 }.open == 1, "the auth connection was not kept alive")

            // A second upgrade whose authorization is in flight when the reload comes.
            let inFlight = Task { try await Self.upgrade(port: port) }
            let deadline = ContinuousClock.now + .seconds(5)
            while try await auth.stats().requests.count < 2, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            try await server.reload(configuration: server.configuration)
            let second = try await inFlight.value
            defer { second.close() }
            #expect(second.status == 101, "the authorization in flight across the reload did not complete: \(second.text)")
            let afterReload = try await auth.waitForOpen(timeout: .seconds(3)) { $0 == 0 }
            #expect(afterReload.open == 0, "the old pool's connections stayed open after the reload")
            #expect(afterReload.requests.count == 2)

            // The new configuration's pool keeps its connection alive, until the drain.
            let third = try await Self.upgrade(port: port)
            defer { third.close() }
            #expect(third.status == 101, "\(third.text)")
            #expect(try await auth.waitForOpen { $0 == 1 }.open == 1)
            _ = await server.drain(timeout: .milliseconds(200))
            #expect(try await auth.waitForOpen(timeout: .seconds(3)) { $0 == 0 }.open == 0, "the auth connection stayed open after the drain")
            #expect(upstream.accepted == 3)
        }
    }

    /// With `client_address: chain` and a trusted peer, the auth service's X-Forwarded-For is the
    /// resolved client (the right-most untrusted address of the chain), as in the logs and caps, not the
    /// proxy's socket address.
    @Test func withATrustedChainTheAuthServiceSeesTheResolvedClientAddress() async throws {
        guard try await PythonPeer.require("asyncio") else { return }
        let auth = try await AuthService()
        let chain: (inout GatewayConfiguration) -> Void = {
            $0.clientAddress = .chain
            $0.trustedProxies = ["127.0.0.1/32", "10.0.0.0/8"]
        }
        try await Self.withAuthGateway(auth.forward("/allow"), configure: chain) { port, _ in
            let client = try await Self.upgrade(port: port, extra: "X-Forwarded-For: 198.51.100.7, 203.0.113.9, 10.1.2.3\r\n")
            defer { client.close() }
            #expect(client.status == 101, "\(client.text)")
            let seen = try #require(try await auth.stats().requests.first)
            #expect(seen.values("X-Forwarded-For") == ["203.0.113.9"])
        }
    }
}
