import NIOCore
import NIOHTTP1

/// Switches the client and upstream channels from HTTP to frames once the upstream sent a valid 101
/// (DESIGN §1.8–1.9), in two steps.
///
/// `ByteToMessageHandler` hands over the bytes it still holds on a *later* tick when it is removed, and
/// completes its removal after that. Hence:
/// 1. ``removeDecoders()``: put a ``LeftoverBytesCollector`` behind the client's HTTP decoder and remove
///    the decoder; the future completes when it is gone. The upstream channel has nothing to remove: its
///    one ``UpstreamLegHandler`` read the 101 itself and keeps what follows it;
/// 2. ``installRelay(_:after:)``: put a ``RelayHandler`` on the client channel, drop the collector and
///    the handshake handler, and let the ``UpstreamLegHandler`` relay, starting with the bytes it kept
///    (frames the upstream sent right behind its 101).
///
/// Between the two, ``clientSentEarlyData`` tells whether the client sent anything after its request:
/// a violation (RFC 6455 §4.1: the client waits for the answer) that is refused and never forwarded.
struct UpgradePipelineSwitch {
    let client: any Channel
    let upstream: any Channel
    let clientCollector = LeftoverBytesCollector()

    init(client: any Channel, upstream: any Channel) {
        self.client = client
        self.upstream = upstream
    }

    /// Step 1. Completes when the client's decoder is removed (successfully or not).
    func removeDecoders() throws -> EventLoopFuture<Void> {
        let removed = self.client.eventLoop.makePromise(of: Void.self)
        try self.removeClientDecoder().whenComplete { _ in removed.succeed() }
        return removed.futureResult
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
        let upstreamLeg = try self.upstream.pipeline.syncOperations.handler(type: UpstreamLegHandler.self)
        pipeline.removeHandler(handler, promise: nil)
        upstreamLeg.startRelay(session)
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
