import Foundation
import MetricsTestKit
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TLSShim
import Testing

@testable import Gateway

/// RELIABILITY G-03 and G-05 in process: the reload API (what SIGHUP calls) while connections come and go.
extension ReloadTests {
    /// Completes a TLS handshake with the gateway and reports the certificate's subject.
    final class SubjectProbe: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let tls: TLSHandler
        let done: EventLoopPromise<String?>
        init(tls: TLSHandler, done: EventLoopPromise<String?>) {
            self.tls = tls
            self.done = done
        }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            // The handler records what was negotiated before it fires its handshake event.
            if let info = self.tls.connectionInfo { self.done.succeed(info.peerCertificateSubject) }
            context.fireUserInboundEventTriggered(event)
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { self.done.fail(error) }
        func channelInactive(context: ChannelHandlerContext) { self.done.fail(ChannelError.ioOnClosedChannel) }
    }

    /// A full TLS handshake (no resumption) with the listener on `port`: the subject it presents.
    static func presentedSubject(port: Int, client: TLSClientContext) async throws -> String? {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let done = loop.makePromise(of: String?.self)
        let channel = try await ClientBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let tls = try TLSHandler.client(context: client, serverName: "localhost")
                    try channel.pipeline.syncOperations.addHandlers([tls, SubjectProbe(tls: tls, done: done)])
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        defer { channel.close(promise: nil) }
        return try await TestWebSocketClient.bounded(done.futureResult, .seconds(15), "the TLS handshake")
    }

    /// Catalog G-03: across certificate reloads new handshakes present the new certificate as soon as the reload returns, a connect loop running throughout never fails (no listener gap), and the old and new certificates are reported for the reload's log line.
    @Test func newHandshakesSeeEachNewCertificateAtOnceAndTheConnectLoopNeverFails() async throws {
        let files = try ReloadCertificateDirectory()
        try files.install(commonName: "generation-0")
        let client = try TLSClientContext(
            configuration: TLSClientConfiguration {
                $0.trustRoots = .certificates(.pem(GatewayTLSTests.ca.certificatePEM))
                $0.sessionReuse = false
            }
        )
        let metrics = TestMetrics()
        try await withDemo { demo in
            try await withGatewayServer(
                upstreamPort: demo.port,
                metrics: metrics,
                configure: { $0.listeners[0].tls = files.listenerTLS }
            ) { server, port in
                #expect(try await Self.presentedSubject(port: port, client: client) == "CN=generation-0")
                // A connect loop across every reload: each handshake must succeed.
                let stop = NIOLockedValueBox(false)
                let seen = NIOLockedValueBox<[String]>([])
                let loop = Task { () -> [String] in
                    var failures: [String] = []
                    while !stop.withLockedValue({ $0 }) {
                        do {
                            let subject = try await Self.presentedSubject(port: port, client: client) ?? "none"
                            seen.withLockedValue { $0.append(subject) }
                        } catch {
                            failures.append("\(error)")
                        }
                        try? await Task.sleep(for: .milliseconds(10))
                    }
                    return failures
                }
                for generation in 1...3 {
                    // The loop has handshaken with the current certificate before it is replaced, however
                    // long a handshake takes on a loaded machine (a fixed pause let a slow loop skip one).
                    await waitFor(.seconds(20)) { seen.withLockedValue { $0.last == "CN=generation-\(generation - 1)" } }
                    try files.install(commonName: "generation-\(generation)")
                    let before = server.listenerCertificates
                    try await server.reload(configuration: server.configuration)
                    // What SIGHUP's log line records: the old and the new certificate.
                    let after = server.listenerCertificates
                    #expect(before.values.first?.first?.contains("CN=generation-\(generation - 1),") == true, "\(before)")
                    #expect(after.values.first?.first?.contains("CN=generation-\(generation),") == true, "\(after)")
                    // The first handshake after the reload returns already sees the new certificate.
                    #expect(try await Self.presentedSubject(port: port, client: client) == "CN=generation-\(generation)")
                }
                await waitFor(.seconds(20)) { seen.withLockedValue { $0.last == "CN=generation-3" } }
                stop.withLockedValue { $0 = true }
                let failures = await loop.value
                let subjects = seen.withLockedValue { $0 }
                #expect(failures.isEmpty, "\(failures)")
                #expect(subjects.count >= 4, "\(subjects)")
                // Generations only move forward.
                let order = subjects.compactMap { Int($0.split(separator: "-").last ?? "") }
                #expect(order == order.sorted(), "\(subjects)")
                #expect(order.last == 3)
                #expect(metrics.total("wsgate_reloads_total", [("result", "applied")]) == 3)
            }
        }
    }

    /// Catalog G-05: (a) a reload that adds a route and tightens the Origin allowlist applies to new connections at once, while a live session admitted under the old policy keeps going; (c) a configuration with an unreadable file reference is refused, counted, and the running one stays.
    @Test func aReloadAddsARouteAndTightensOriginsForNewConnectionsOnly() async throws {
        let metrics = TestMetrics()
        try await withDemo { demo in
            try await withGatewayServer(upstreamPort: demo.port, metrics: metrics, configure: { $0.routes[0].pathPrefix = "/echo" }) {
                server,
                port in
                let origin = [("Origin", "http://old.example")]
                let live = try await TestWebSocketClient.connect(port: port, path: "/echo", headers: origin)
                try await live.send(text: "before")
                #expect(try await live.receiveMessage() == .text("before"))

                let newOrigin = [("Origin", "http://new.example")]
                await #expect(throws: TestWebSocketClient.Failure.self, "/chat has no route yet") {
                    _ = try await TestWebSocketClient.connect(port: port, path: "/chat", headers: newOrigin)
                }
                // (a) Only http://new.example may connect now, and /chat is a new route.
                var tightened = server.configuration
                tightened.routes[0].origins.allow = ["http://new.example"]
                var added = GatewayConfiguration.Route(pathPrefix: "/chat", upstreams: tightened.routes[0].upstreams)
                added.origins.allow = ["http://new.example"]
                tightened.routes.append(added)
                try await server.reload(configuration: tightened)

                await #expect(throws: TestWebSocketClient.Failure.self, "the old origin is refused for new connections") {
                    _ = try await TestWebSocketClient.connect(port: port, path: "/echo", headers: origin)
                }
                _ = try await TestWebSocketClient.connect(port: port, path: "/chat", headers: newOrigin)
                let fresh = try await TestWebSocketClient.connect(port: port, path: "/echo", headers: newOrigin)
                try await fresh.send(text: "new policy")
                #expect(try await fresh.receiveMessage() == .text("new policy"))
                // The live session keeps the policy it was admitted under.
                try await live.send(text: "after")
                #expect(try await live.receiveMessage() == .text("after"))

                // (c) An unreadable file reference (the upstream CA) is refused; the running configuration stays.
                var unreadable = server.configuration
                unreadable.routes[0].upstreams = [GatewayConfiguration.Upstream(scheme: .wss, host: "127.0.0.1", port: demo.port)]
                var tls = GatewayConfiguration.UpstreamTLS()
                tls.configuration.trustRoots = .certificates(.file("/nonexistent/wsgate-ca.pem"))
                unreadable.routes[0].upstreamTLS = tls
                await #expect(throws: (any Error).self) { try await server.reload(configuration: unreadable) }
                #expect(server.configuration == tightened)
                #expect(metrics.total("wsgate_reloads_total", [("result", "refused")]) == 1)
                #expect(metrics.total("wsgate_reloads_total", [("result", "applied")]) == 1)
                _ = try await TestWebSocketClient.connect(port: port, path: "/chat", headers: newOrigin)
                let echo = try await TestWebSocketClient.connect(port: port, path: "/echo", headers: newOrigin)
                try await echo.send(text: "still")
                #expect(try await echo.receiveMessage() == .text("still"))
            }
        }
    }
}
