import MetricsTestKit
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

@testable import Gateway

/// `workers` (issue #15): the event-loop count, and that a connection's two channels share one loop.
@Suite(.timeLimit(.minutes(1))) struct GatewayConfigurationWorkersTests {
    static func document(_ extra: String) -> String {
        """
        listeners:
          - address: 0.0.0.0:8080
        routes:
          - upstreams: [ws://127.0.0.1:9000]
        \(extra)
        """
    }

    @Test func byDefaultThereIsOneLoopPerCore() throws {
        let configuration = try GatewayConfiguration(yaml: Self.document(""))
        #expect(configuration.workers == nil)
        #expect(configuration.eventLoopCount == System.coreCount)
    }

    @Test(arguments: [1, 2, 256])
    func aCountFrom1To256IsTheLoopCount(count: Int) throws {
        let configuration = try GatewayConfiguration(yaml: Self.document("workers: \(count)"))
        #expect(configuration.workers == count)
        #expect(configuration.eventLoopCount == count)
    }

    @Test(arguments: [
        (ConfigurationError.Code.outOfRange, "workers: 0", "0 is out of range 1–256"),
        (.outOfRange, "workers: 257", "257 is out of range 1–256"),
        (.outOfRange, "workers: -1", "-1 is out of range 1–256"),
        (.invalidValue, "workers: auto", #""auto" is not a whole number"#),
    ])
    func anotherValueIsRefusedWithItsKeyPath(code: ConfigurationError.Code, yaml: String, message: String) {
        #expect(throws: ConfigurationError(code, keyPath: "workers", message: message)) {
            try GatewayConfiguration(yaml: Self.document(yaml))
        }
    }

    @Test func aReloadThatChangesTheLoopCountIsRefused() throws {
        let base = try GatewayConfiguration(yaml: Self.document("workers: 2"))
        #expect(base.bindingDifference(from: try GatewayConfiguration(yaml: Self.document("workers: 2"))) == nil)
        let other = try GatewayConfiguration(yaml: Self.document("workers: 1"))
        #expect(base.bindingDifference(from: other) == "workers changed (2 → 1); the event loops are made at start: restart to change them")
    }

    /// Over sockets, on a group of four loops (what `workers: 4` makes): every connection's upstream
    /// channel is opened on, and lives on, its client channel's loop (the relay's session and its
    /// per-loop buffers are touched from that one thread), and the connections are spread over the loops.
    @Test func everyConnectionsUpstreamChannelIsOnItsClientChannelsLoop() async throws {
        let configuration = try GatewayConfiguration(yaml: Self.document("workers: 4"))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.eventLoopCount)
        let seen = NIOLockedValueBox<[LoopCheckingConnector.Observation]>([])
        try await withDemo { demo in
            var gatewayConfiguration = GatewayConfiguration(
                listeners: [.init(host: "127.0.0.1", port: 0)],
                routes: [.init(pathPrefix: "/", upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: demo.port)])],
                accessLog: .off
            )
            gatewayConfiguration.admin = .off
            let environment = try GatewayEnvironment(gatewayConfiguration, metrics: GatewayMetrics(factory: TestMetrics()))
            let server = try await ServerBootstrap(group: group)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let connector = LoopCheckingConnector(
                            inner: BootstrapUpstreamConnector(limits: environment.limits, timeouts: environment.timeouts),
                            clientLoop: channel.eventLoop,
                            seen: seen
                        )
                        let pipeline = channel.pipeline.syncOperations
                        try pipeline.addHandler(
                            ClientConnectionHandler(
                                environment: environment,
                                record: ConnectionRecord(id: 1, clientAddress: nil, listener: "test"),
                                clientUsedTLS: false,
                                connector: connector
                            )
                        )
                    }
                }
                .bind(host: "127.0.0.1", port: 0)
                .get()
            let port = server.localAddress!.port!
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                for index in 0..<16 {
                    tasks.addTask {
                        let client = try await TestWebSocketClient.connect(port: port, path: "/echo")
                        try await client.send(text: "on one loop \(index)")
                        #expect(try await client.receiveMessage() == .text("on one loop \(index)"))
                        try await client.close(code: .normalClosure, reason: "")
                        _ = try await client.receiveMessage()
                    }
                }
                try await tasks.waitForAll()
            }
            try await server.close()
        }
        try await group.shutdownGracefully()
        let observations = seen.withLockedValue { $0 }
        #expect(observations.count == 16)
        #expect(observations.allSatisfy { $0.requestedClientLoop && $0.upstreamOnClientLoop })
        #expect(Set(observations.map(\.clientLoop)).count > 1, "the 16 connections were not spread over the loops")
    }
}

/// Wraps the gateway's connector and records, per connection, whether the upstream was asked for on
/// the client channel's loop and whether the channel it made is on that loop.
struct LoopCheckingConnector: UpstreamConnector {
    struct Observation: Sendable {
        var clientLoop: ObjectIdentifier
        var requestedClientLoop: Bool
        var upstreamOnClientLoop: Bool
    }

    let inner: BootstrapUpstreamConnector
    let clientLoop: any EventLoop
    let seen: NIOLockedValueBox<[Observation]>

    func connect(
        host: String,
        port: Int,
        on eventLoop: any EventLoop,
        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<any Channel> {
        let clientLoop = self.clientLoop
        let seen = self.seen
        return self.inner.connect(host: host, port: port, on: eventLoop, initializer: initializer).map { channel in
            seen.withLockedValue {
                $0.append(
                    Observation(
                        clientLoop: ObjectIdentifier(clientLoop),
                        requestedClientLoop: eventLoop === clientLoop,
                        upstreamOnClientLoop: channel.eventLoop === clientLoop
                    )
                )
            }
            return channel
        }
    }
}
