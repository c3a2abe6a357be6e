import NIOCore
import NIOHTTP1

/// Switches the client and upstream channels from HTTP to frames once the upstream sent a valid 101
/// (DESIGN §1.8–1.9), in two steps.
///
/// `ByteToMessageHandler` hands over the bytes it still holds on a *later* tick when it is removed, and
/// completes its removal after that; the upstream's response decoder also watches outbound writes, so
/// nothing may be written to the upstream until it is gone. Hence:
/// 1. ``removeDecoders()``: put a ``LeftoverBytesCollector`` behind each HTTP decoder and remove the
///    decoders (and the upstream's handshake handler and request encoder); the future completes when
///    both decoders are gone;
/// 2. ``installRelay(_:after:)``: put ``RelayHandler``s on both channels, drop the collectors and the
///    handshake handlers, and feed the upstream's collected bytes (frames it sent right behind its 101)
///    into the relay.
///
/// Between the two, ``clientSentEarlyData`` tells whether the client sent anything after its request:
/// a violation (RFC 6455 §4.1: the client waits for the answer) that is refused and never forwarded.
struct UpgradePipelineSwitch {
    let client: any Channel
    let upstream: any Channel
    let clientCollector = LeftoverBytesCollector()
    private let upstreamCollector = LeftoverBytesCollector()

    init(client: any Channel, upstream: any Channel) {
        self.client = client
        self.upstream = upstream
    }

    /// Step 1. Completes when both decoders are removed (successfully or not).
    func removeDecoders() throws -> EventLoopFuture<Void> {
        let clientRemoved = try self.removeClientDecoder()
        let upstreamPipeline = self.upstream.pipeline.syncOperations
        upstreamPipeline.removeHandler(try upstreamPipeline.handler(type: UpstreamHandshakeHandler.self), promise: nil)
        upstreamPipeline.removeHandler(try upstreamPipeline.handler(type: HTTPRequestEncoder.self), promise: nil)
        let upstreamRemoved = try Self.removeDecoder(
            ByteToMessageHandler<HTTPResponseDecoder>.self,
            from: self.upstream,
            collector: self.upstreamCollector
        )
        let both = self.client.eventLoop.makePromise(of: Void.self)
        clientRemoved.and(upstreamRemoved).whenComplete { _ in both.succeed() }
        return both.futureResult
    }

    /// Whether the client sent bytes after its request head (known once step 1 completed).
    var clientSentEarlyData: Bool {
        (self.clientCollector.bytes?.readableBytes ?? 0) > 0
    }

    /// Step 2: the relay takes over both channels; `handler` (the upgrade's) leaves the client's
    /// pipeline, and so does the ``RequestBytesLimiter``.
    func installRelay(_ session: RelaySession, after handler: ClientConnectionHandler) throws {
        let pipeline = self.client.pipeline.syncOperations
        try pipeline.addHandler(RelayHandler(side: .client, session: session), position: .after(handler))
        pipeline.removeHandler(self.clientCollector, promise: nil)
        if let limiter = try? pipeline.handler(type: RequestBytesLimiter.self) {
            pipeline.removeHandler(limiter, promise: nil)
        }
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
