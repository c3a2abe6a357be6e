import Frames
import NIOCore
import NIOHTTP1

/// What the allocation benchmarks (`Benchmarks/`, issue #15) need from the gateway's internals, as SPI:
/// the relay's two handlers over one session, and a client connection's upgrade handlers, built exactly
/// as the gateway builds them, so that the benchmarks drive them through `EmbeddedChannel`s with no
/// socket. `import Gateway` alone does not see these; `@_spi(Benchmarks) import Gateway` does. Nothing in
/// the gateway calls them.
@_spi(Benchmarks) public enum BenchmarkSupport {
    /// The client and upstream legs' relay handlers over one new session on `eventLoop` (plain, no
    /// compression, default limits and policy), as `ClientConnectionHandler.startRelay` adds them.
    /// `batching: false` relays every frame through the per-event path (issue #15's "before");
    /// `kernelKeys: true` takes the masking keys straight from `getrandom(2)` in 4 KiB batches instead
    /// of the user-space ChaCha20 stream (the "before" of BENCHMARKS.md "rng15"). Each call has its own
    /// resources (a fresh generator and output buffers).
    public static func relayHandlers(
        on eventLoop: any EventLoop,
        batching: Bool = true,
        kernelKeys: Bool = false
    ) -> (client: any ChannelHandler, upstream: any ChannelHandler) {
        let keys =
            kernelKeys
            ? MaskingKeyGenerator(batchBytes: RelayResources.maskingKeyBatchBytes)
            : MaskingKeyGenerator.userSpace(batchBytes: RelayResources.maskingKeyBatchBytes)
        let session = RelaySession(
            eventLoop: eventLoop,
            limits: GatewayConfiguration.Limits(),
            closeTimeout: .seconds(10),
            idleTimeout: .hours(1),
            resources: RelayResources(maskingKeys: keys)
        )
        session.batchesFrames = batching
        return (RelayHandler(side: .client, session: session), RelayHandler(side: .upstream, session: session))
    }

    /// A compiled configuration, made once and shared by the connections of a benchmark.
    public final class Environment: Sendable {
        let environment: GatewayEnvironment

        public init(_ configuration: GatewayConfiguration) throws {
            self.environment = try GatewayEnvironment(configuration)
        }
    }

    /// Opens an upstream leg: given the client channel's loop and the upstream channel's initializer,
    /// returns the connected channel (a benchmark hands out an `EmbeddedChannel`).
    public typealias Connect =
        @Sendable (_ eventLoop: any EventLoop, _ initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>)
        -> EventLoopFuture<any Channel>

    /// A client connection's handlers as the plain listener adds them at accept (one
    /// ``ClientConnectionHandler``, which scans the head itself), with `connect` for the upstream leg.
    public static func upgradeHandlers(_ environment: Environment, connect: @escaping Connect) -> [any ChannelHandler] {
        let environment = environment.environment
        return [
            ClientConnectionHandler(
                environment: environment,
                record: ConnectionRecord(id: environment.makeConnectionID(), clientAddress: "127.0.0.1", listener: "bench"),
                clientUsedTLS: false,
                connector: ClosureUpstreamConnector(connect: connect)
            )
        ]
    }
}

/// ``UpstreamConnector`` over a closure (the benchmarks').
struct ClosureUpstreamConnector: UpstreamConnector {
    let connect: BenchmarkSupport.Connect

    func connect(
        host: String,
        port: Int,
        on eventLoop: any EventLoop,
        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<any Channel> {
        self.connect(eventLoop, initializer)
    }
}
