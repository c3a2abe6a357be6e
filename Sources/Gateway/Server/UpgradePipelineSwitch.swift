import NIOCore
import NIOHTTP1

/// Switches the client and upstream channels from HTTP to frames once the upstream sent a valid 101
/// (DESIGN §1.8–1.9), in two steps.
///
/// The client's channel has no HTTP handler to remove: ``ClientConnectionHandler`` scans the head itself
/// and keeps any bytes the client sent after it (issue #15). The upstream's `ByteToMessageHandler` hands
/// over the bytes it still holds on a *later* tick when it is removed, and completes its removal after
/// that; the upstream's response decoder also watches outbound writes, so nothing may be written to the
/// upstream until it is gone. Hence:
/// 1. ``removeDecoders()``: put a ``LeftoverBytesCollector`` behind the upstream's HTTP decoder and remove
///    it (and the upstream's handshake handler and request encoder); the future completes when it is gone;
/// 2. ``installRelay(_:after:)``: put ``RelayHandler``s on both channels, drop the collector and the
///    client's handler (two synchronous changes on the client), and feed the upstream's collected bytes
///    (frames it sent right behind its 101) into the relay.
///
/// Between the two, bytes from the client are early data (RFC 6455 §4.1: the client waits for the
/// answer), which ``ClientConnectionHandler`` refuses and never forwards.
struct UpgradePipelineSwitch {
    let client: any Channel
    let upstream: any Channel
    private let upstreamCollector = LeftoverBytesCollector()

    init(client: any Channel, upstream: any Channel) {
        self.client = client
        self.upstream = upstream
    }

    /// Step 1. Completes when the upstream's decoder is removed (successfully or not).
    func removeDecoders() throws -> EventLoopFuture<Void> {
        let upstreamPipeline = self.upstream.pipeline.syncOperations
        upstreamPipeline.removeHandler(try upstreamPipeline.handler(type: UpstreamHandshakeHandler.self), promise: nil)
        upstreamPipeline.removeHandler(try upstreamPipeline.handler(type: HTTPRequestEncoder.self), promise: nil)
        let upstreamRemoved = try Self.removeDecoder(
            ByteToMessageHandler<HTTPResponseDecoder>.self,
            from: self.upstream,
            collector: self.upstreamCollector
        )
        let removed = self.client.eventLoop.makePromise(of: Void.self)
        upstreamRemoved.whenComplete { _ in removed.succeed() }
        return removed.futureResult
    }

    /// Step 2: the relay takes over both channels; `handler` (the upgrade's) leaves the client's pipeline.
    func installRelay(_ session: RelaySession, after handler: ClientConnectionHandler) throws {
        let pipeline = self.client.pipeline.syncOperations
        try pipeline.addHandler(RelayHandler(side: .client, session: session), position: .after(handler))
        let upstreamPipeline = self.upstream.pipeline.syncOperations
        try upstreamPipeline.addHandler(RelayHandler(side: .upstream, session: session), position: .after(self.upstreamCollector))
        upstreamPipeline.removeHandler(self.upstreamCollector, promise: nil)
        pipeline.removeHandler(handler, promise: nil)
        if var early = self.upstreamCollector.bytes {
            session.read(from: .upstream, &early)
            session.readComplete(from: .upstream)
        }
        if !self.upstream.isActive { session.inactive(.upstream) }
    }

    /// Puts `collector` right behind the decoder of type `type` and removes the decoder.
    static func removeDecoder<Decoder: RemovableChannelHandler>(
        _ type: Decoder.Type,
        from channel: any Channel,
        collector: LeftoverBytesCollector
    ) throws -> EventLoopFuture<Void> {
        let pipeline = channel.pipeline.syncOperations
        let decoder = try pipeline.handler(type: type)
        try pipeline.addHandler(collector, position: .after(decoder))
        let removed = channel.eventLoop.makePromise(of: Void.self)
        pipeline.removeHandler(decoder, promise: removed)
        return removed.futureResult
    }
}
