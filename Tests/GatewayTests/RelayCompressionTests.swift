import Frames
import MetricsTestKit
import NIOCore
import NIOEmbedded
import Testing

@testable import Gateway

/// permessage-deflate in the relay, in memory (issue #10 items 4–6): two `EmbeddedChannel`s on one
/// `EmbeddedEventLoop` with a ``RelaySession`` that negotiated compression on one leg, the other or
/// both; writability is toggled by a simulated high watermark and time is virtual.
@Suite struct RelayCompressionTests {
    typealias Frame = MessageTranscoderTests.Frame

    /// Sets its channel not writable once more than `high` bytes were written and not yet taken by the
    /// test (``Pair/drain(_:)``), as a socket channel's write-buffer watermark does.
    final class Watermark: ChannelOutboundHandler, RemovableChannelHandler {
        typealias OutboundIn = ByteBuffer
        let high: Int
        var pending = 0
        /// The most bytes that were ever pending at once.
        var peak = 0
        /// Bytes written since the last flush, the most there ever were, and the flushes.
        var sinceFlush = 0
        var mostBetweenFlushes = 0
        var flushes = 0

        /// A fast peer: a flush writes everything at once, and the channel is writable again within
        /// the flush (as a socket channel that empties its buffer fires `writabilityChanged` inside it).
        var drainsOnFlush = false

        init(high: Int) { self.high = high }

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            self.pending += Self.unwrapOutboundIn(data).readableBytes
            self.peak = max(self.peak, self.pending)
            self.sinceFlush += Self.unwrapOutboundIn(data).readableBytes
            self.mostBetweenFlushes = max(self.mostBetweenFlushes, self.sinceFlush)
            if self.pending > self.high, let channel = context.channel as? EmbeddedChannel { channel.isWritable = false }
            context.write(data, promise: promise)
        }

        func flush(context: ChannelHandlerContext) {
            if self.sinceFlush > 0 { self.flushes += 1 }
            self.sinceFlush = 0
            context.flush()
            guard self.drainsOnFlush, let channel = context.channel as? EmbeddedChannel else { return }
            self.pending = 0
            if !channel.isWritable {
                channel.isWritable = true
                context.fireChannelWritabilityChanged()
            }
        }
    }

    /// One relayed connection with compression.
    final class Pair {
        let loop = EmbeddedEventLoop()
        let client: EmbeddedChannel
        let upstream: EmbeddedChannel
        let session: RelaySession
        let metrics = TestMetrics()
        let watermarks: PerSide<Watermark>
        let clientReads = RelayHandlerEmbeddedTests.ReadCounter()
        let agreements: PerSide<PerMessageDeflateParameters?>
        private(set) var finished = false
        /// The peers' parsers: a message may be split across ``frames(to:)`` calls.
        var parsers = PerSide(client: MessageTranscoderTests.peerParser(on: .client), upstream: MessageTranscoderTests.peerParser(on: .upstream))

        init(
            client: PerMessageDeflateParameters?,
            upstream: PerMessageDeflateParameters?,
            limits: GatewayConfiguration.Limits = .init(),
            watermark: Int = .max,
            _ configure: (inout RelayPolicy) -> Void = { _ in }
        ) throws {
            self.client = EmbeddedChannel(loop: self.loop)
            self.upstream = EmbeddedChannel(loop: self.loop)
            self.agreements = PerSide(client: client, upstream: upstream)
            var policy = RelayPolicy()
            policy.metrics = GatewayMetrics(factory: self.metrics)
            policy.route = "/r"
            configure(&policy)
            var compression = RelayCompression()
            compression.client = client
            compression.upstream = upstream
            self.session = RelaySession(
                eventLoop: self.loop,
                limits: limits,
                closeTimeout: .seconds(10),
                idleTimeout: .hours(1),
                policy: policy,
                compression: compression
            )
            self.watermarks = PerSide(client: Watermark(high: watermark), upstream: Watermark(high: watermark))
            self.session.onFinish = { [unowned self] _, _ in self.finished = true }
            try self.client.pipeline.syncOperations.addHandler(self.watermarks.client)
            try self.client.pipeline.syncOperations.addHandler(self.clientReads)
            try self.client.pipeline.syncOperations.addHandler(RelayHandler(side: .client, session: self.session))
            try self.upstream.pipeline.syncOperations.addHandler(self.watermarks.upstream)
            try self.upstream.pipeline.syncOperations.addHandler(RelayHandler(side: .upstream, session: self.session))
            try self.client.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
            try self.upstream.connect(to: .init(ipAddress: "127.0.0.1", port: 2)).wait()
        }

        func channel(_ side: Side) -> EmbeddedChannel { side == .client ? self.client : self.upstream }

        /// Delivers `bytes` from `side` as reads cut at `cuts`, each followed by read-complete.
        func deliver(_ bytes: [UInt8], from side: Side, cutAt cuts: [Int] = []) throws {
            var start = 0
            for end in cuts.filter({ $0 > start && $0 < bytes.count }) + [bytes.count] {
                try self.channel(side).writeInbound(ByteBuffer(bytes: bytes[start..<end]))
                self.channel(side).pipeline.fireChannelReadComplete()
                start = end
            }
        }

        /// Takes what was written toward `side`: the watermark's backlog is then empty again, and the
        /// channel writable (its `writabilityChanged` fires when it was not).
        func drain(_ side: Side) throws -> [ByteBuffer] {
            var buffers: [ByteBuffer] = []
            while let buffer = try self.channel(side).readOutbound(as: ByteBuffer.self) { buffers.append(buffer) }
            self.watermarks[side].pending = 0
            if !self.channel(side).isWritable {
                self.channel(side).isWritable = true
                self.channel(side).pipeline.fireChannelWritabilityChanged()
            }
            return buffers
        }

        func frames(to side: Side) throws -> [Frame] {
            try MessageTranscoderTests.decode(self.drain(side), with: &self.parsers[side])
        }

        /// What a peer on `side` sends: one message, compressed when its leg negotiated, in `fragments`
        /// frames (masked from the client).
        func message(_ bytes: [UInt8], from side: Side, fragments: Int = 1) throws -> [UInt8] {
            var payload = bytes
            if let agreement = self.agreements[side] {
                let bits = side == .client ? agreement.clientMaxWindowBits : agreement.serverMaxWindowBits
                var writer = PerMessageDeflateWriter(deflater: PerMessageDeflater(windowBits: max(bits, 9), noContextTakeover: true, level: 9))
                payload = []
                try writer.append(ByteBuffer(bytes: bytes)) { payload += $0.readableBytesView }
                payload += try writer.finish { payload += $0.readableBytesView }.readableBytesView
            }
            var encoder = FrameEncoder(role: side == .client ? .client : .server)
            var out = ByteBuffer()
            let size = max(1, (payload.count + fragments - 1) / fragments)
            var start = 0
            var index = 0
            repeat {
                let end = min(payload.count, start + size)
                encoder.writeFrame(
                    opcode: index == 0 ? .binary : .continuation,
                    fin: end == payload.count,
                    reservedBits: index == 0 && self.agreements[side] != nil ? .rsv1 : [],
                    payload: ByteBuffer(bytes: payload[start..<end]),
                    to: &out
                )
                start = end
                index += 1
            } while start < payload.count
            return Array(out.readableBytesView)
        }

        /// The messages a peer on `side` received, inflated when its leg negotiated (context taken over
        /// across messages with `inflater`).
        func messages(_ frames: [Frame], to side: Side, inflater: PerMessageInflater? = nil) throws -> [[UInt8]] {
            var messages: [[UInt8]] = []
            var current: [Frame] = []
            let inflater = inflater ?? PerMessageInflater(windowBits: 15, noContextTakeover: false, maxMessageSize: 1 << 26)
            for frame in frames where !frame.opcode.isControl {
                current.append(frame)
                guard frame.fin else { continue }
                messages.append(try MessageTranscoderTests.message(current, inflater: inflater).bytes)
                current = []
            }
            return messages
        }

        func count(_ label: String, _ dimensions: [(String, String)]) -> Int64 {
            self.metrics.counterTotal(label: label, dimensions: [("route", "/r")] + dimensions)
        }
    }

    /// Which legs negotiated: none, one, both with the same parameters (verbatim), both with different
    /// ones (the gateway inflates on one leg and deflates on the other).
    enum Legs: String, CaseIterable, CustomTestStringConvertible, Sendable {
        case plain, clientOnly, upstreamOnly, bothSame, bothDifferent
        var testDescription: String { self.rawValue }

        var agreements: (PerMessageDeflateParameters?, PerMessageDeflateParameters?) {
            let standard = PerMessageDeflateParameters()
            let small = PerMessageDeflateParameters(serverMaxWindowBits: 10, clientMaxWindowBits: 10)
            switch self {
            case .plain: return (nil, nil)
            case .clientOnly: return (standard, nil)
            case .upstreamOnly: return (nil, standard)
            case .bothSame: return (standard, standard)
            case .bothDifferent: return (standard, small)
            }
        }
    }

    static let cases: [(Legs, Side)] = Legs.allCases.flatMap { legs in [(legs, Side.client), (legs, Side.upstream)] }

    // MARK: Item 4: limits count what the application gets

    @Test(arguments: Self.cases)
    func anIncompressibleMessageOfExactlyTheLimitIsDeliveredAndOneMoreByteIs1009(legs: Legs, source: Side) throws {
        var limits = GatewayConfiguration.Limits()
        limits.maxMessageSize = 40_000
        limits.maxFrameSize = 40_000
        let (client, upstream) = legs.agreements
        let pair = try Pair(client: client, upstream: upstream, limits: limits)
        let noise = MessageTranscoderTests.random(40_000)
        let wire = try pair.message(noise, from: source)
        if pair.agreements[source] != nil { #expect(wire.count > 40_000 + 8, "deflated noise is larger than the noise") }
        try pair.deliver(wire, from: source, cutAt: [1, 2, 3, 7, 1000, 20_000, wire.count - 1])
        let same = try pair.messages(pair.frames(to: source.other), to: source.other) == [noise]
        #expect(same)
        #expect(try pair.frames(to: source).isEmpty)

        // One byte more: 1009 to the sender (once the other leg closed or the close timeout ran out).
        try pair.deliver(try pair.message(MessageTranscoderTests.random(40_001), from: source), from: source)
        pair.loop.advanceTime(by: .seconds(11))
        let toSender = try pair.frames(to: source)
        #expect(toSender.last?.opcode == .close && toSender.last?.payload.prefix(2) == [0x03, 0xF1], "\(toSender.map(\.opcode))")
    }

    @Test(arguments: [Legs.clientOnly, .bothSame, .bothDifferent])
    func aCompressedMessageOfExactlyTheLimitSplitAtEveryByte(legs: Legs) throws {
        var limits = GatewayConfiguration.Limits()
        limits.maxMessageSize = 300
        limits.maxFrameSize = 300
        let (client, upstream) = legs.agreements
        let pair = try Pair(client: client, upstream: upstream, limits: limits)
        let noise = MessageTranscoderTests.random(300)
        let wire = try pair.message(noise, from: .client, fragments: 3)
        try pair.deliver(wire, from: .client, cutAt: Array(1..<wire.count))
        let same = try pair.messages(pair.frames(to: .upstream), to: .upstream) == [noise]
        #expect(same)
    }

    // MARK: Item 5: never compress to something larger

    @Test func incompressibleMessagesTowardACompressingLegGoUncompressedAndAreCounted() throws {
        let pair = try Pair(client: nil, upstream: PerMessageDeflateParameters())
        let noise = MessageTranscoderTests.random(5000)
        let document = MessageTranscoderTests.json(300)
        try pair.deliver(try pair.message(noise, from: .client) + pair.message(document, from: .client), from: .client)
        let frames = try pair.frames(to: .upstream)
        #expect(frames.first?.compressed == false && frames.last?.compressed == true)
        let same = try pair.messages(frames, to: .upstream) == [noise, document]
        #expect(same)
        try pair.client.close().wait()
        // The client's TCP close ends the upstream leg too.
        if pair.upstream.isActive { try pair.upstream.close().wait() }
        #expect(pair.finished)
        #expect(pair.count("wsgate_compression_uncompressed_messages_total", [("side", "upstream")]) == 1)
    }

    // MARK: Item 6: backpressure, work per read, rate limits

    /// 16 compressed messages of about 1 KiB that each inflate to 1 MiB, in one read.
    static func bomb(_ pair: Pair) throws -> [UInt8] {
        let message = try pair.message([UInt8](repeating: 0, count: 1 << 20), from: .client)
        #expect(message.count < 1100)
        return Array((0..<16).map { _ in message }.joined())
    }

    @Test func aBombOfSmallMessagesStopsAtTheWatermarkAndResumesOnWritability() throws {
        let pair = try Pair(client: PerMessageDeflateParameters(), upstream: nil, watermark: 256 * 1024)
        try pair.deliver(try Self.bomb(pair), from: .client)
        #expect(pair.watermarks.upstream.pending > 0)
        pair.client.read()
        #expect(pair.clientReads.reads == 0, "the client was read while transcoding was stopped")
        var received = 0
        var rounds = 0
        while received < 16 << 20 && rounds < 200 {
            // Never more than the watermark and one 32 KiB frame queued toward the upstream.
            #expect(pair.watermarks.upstream.pending <= 256 * 1024 + 32 * 1024 + 14)
            received += try pair.frames(to: .upstream).reduce(0) { $0 + $1.payload.count }
            pair.loop.run()
            rounds += 1
        }
        #expect(received == 16 << 20)
        #expect(pair.watermarks.upstream.peak <= 256 * 1024 + 32 * 1024 + 14)
        // Caught up: the held read goes out.
        #expect(pair.clientReads.reads == 1)
    }

    /// Regression: a flush that makes the destination writable at once must find the pause already in
    /// place, or its `writabilityChanged` is lost and the connection stalls.
    @Test func aDestinationThatBecomesWritableInsideTheFlushGetsEverything() throws {
        let pair = try Pair(client: PerMessageDeflateParameters(), upstream: nil, watermark: 64 * 1024)
        pair.watermarks.upstream.drainsOnFlush = true
        try pair.deliver(try Self.bomb(pair), from: .client)
        pair.loop.run()
        let frames = try pair.frames(to: .upstream)
        #expect(try pair.messages(frames, to: .upstream).map(\.count) == Array(repeating: 1 << 20, count: 16))
        #expect(pair.watermarks.upstream.mostBetweenFlushes <= 64 * 1024 + 32 * 1024 + 16 * 14)
    }

    @Test func oneReadInflatesAtMostTheHighWatermarkBeforeTheLoopTurns() throws {
        let pair = try Pair(client: PerMessageDeflateParameters(), upstream: nil)
        try pair.deliver(try Self.bomb(pair), from: .client)
        // The read inflated its share, flushed it, and left the rest for later loop turns.
        var frames = try pair.frames(to: .upstream)
        #expect(frames.reduce(0) { $0 + $1.payload.count } <= 256 * 1024 + 32 * 1024)
        pair.loop.run()
        frames += try pair.frames(to: .upstream)
        #expect(try pair.messages(frames, to: .upstream).map(\.count) == Array(repeating: 1 << 20, count: 16))
        // Each turn (read or resumption) wrote at most the watermark and one 32 KiB frame, then flushed.
        #expect(pair.watermarks.upstream.mostBetweenFlushes <= 256 * 1024 + 32 * 1024 + 16 * 14)
        #expect(pair.watermarks.upstream.flushes >= 16 * 4)
    }

    @Test func theBytesRateLimitCountsInflatedBytes() throws {
        var limits = GatewayConfiguration.RateLimits()
        limits.upstream.controlFrames = nil
        limits.client.bytes = .init(perSecond: 32 * 1024, burst: 32 * 1024)
        limits.client.action = .throttle
        let pair = try Pair(client: PerMessageDeflateParameters(), upstream: nil) { $0.rateLimits = limits }
        let plain = [UInt8](repeating: 0x61, count: 128 * 1024)
        try pair.deliver(try pair.message(plain, from: .client), from: .client)
        // The ~150 wire bytes would pass at once; 128 KiB inflated take 3 s more at 32 KiB/s.
        var frames = try pair.frames(to: .upstream)
        #expect(frames.reduce(0) { $0 + $1.payload.count } == 32 * 1024)
        pair.loop.advanceTime(by: .milliseconds(999))
        #expect(try pair.frames(to: .upstream).isEmpty)
        pair.loop.advanceTime(by: .milliseconds(1))
        let second = try pair.frames(to: .upstream)
        #expect(second.reduce(0) { $0 + $1.payload.count } == 32 * 1024)
        frames += second
        pair.loop.advanceTime(by: .seconds(3))
        frames += try pair.frames(to: .upstream)
        let same = try pair.messages(frames, to: .upstream) == [plain]
        #expect(same)
        #expect(pair.count("wsgate_rate_limit_decisions_total", [("side", "client"), ("limit", "bytes"), ("action", "throttle")]) >= 2)
    }
}
