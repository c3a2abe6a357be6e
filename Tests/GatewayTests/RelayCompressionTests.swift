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

    /// Catalog R-06: each message is checked against the message limit by its inflated size.
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

    /// Catalog R-05: inflated output stops at the destination's watermark and resumes on writability (memory bounded).
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

    /// Catalog R-05: the inflate loop yields: one read inflates at most the watermark before the event loop turns.
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

    /// Catalog R-06: the byte-rate limit counts inflated bytes (throttle).
    /// Catalog O-05: counted bytes are post-inflate.
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

/// The reliability catalog's compression entries (../shared/RELIABILITY.md P-13, R-05) through the
/// relay in memory.
extension RelayCompressionTests {
    static func violations(_ pair: Pair, _ rule: FramesError.Code) -> Int64 {
        pair.metrics.counterTotal(
            label: "wsgate_protocol_violations_total",
            dimensions: [("side", "client"), ("rule", GatewayMetrics.slug(rule.description))]
        )
    }

    /// A client frame masked with the catalog's key, with any reserved bits.
    static func clientFrame(_ opcode: Opcode, _ payload: [UInt8], fin: Bool = true, rsv: ReservedBits = []) -> [UInt8] {
        var encoder = FrameEncoder(role: .client)
        var out = ByteBuffer()
        encoder.writeFrame(opcode: opcode, fin: fin, reservedBits: rsv, payload: ByteBuffer(bytes: payload), to: &out)
        return Array(out.readableBytesView)
    }

    /// Catalog P-13: with deflate negotiated, RSV1 on a continuation and on a ping are Fail(1002), and RSV1 data that is not DEFLATE (`ff ff ff ff`) Fail(1007); the upstream gets Close 1001 and nothing of the frame.
    @Test(arguments: [
        ("continuation", 1002 as UInt16, FramesError.Code.reservedBitSet),
        ("ping", 1002, .reservedBitSet),
        ("not deflate", 1007, .invalidCompressedData),
    ])
    func p13AMisusedCompressionBitFailsTheClient(name: String, code: UInt16, rule: FramesError.Code) throws {
        let pair = try Pair(client: PerMessageDeflateParameters(), upstream: nil)
        pair.session.operations.metrics = GatewayMetrics(factory: pair.metrics)
        let bytes: [UInt8] =
            switch name {
            case "continuation":
                Self.clientFrame(.binary, [], fin: false, rsv: .rsv1) + Self.clientFrame(.continuation, [0], rsv: .rsv1)
            case "ping": Self.clientFrame(.ping, [], rsv: .rsv1)
            default: Self.clientFrame(.binary, [0xFF, 0xFF, 0xFF, 0xFF], rsv: .rsv1)
            }
        try pair.deliver(bytes, from: .client, cutAt: Array(1..<bytes.count))
        let toUpstream = try pair.frames(to: .upstream)
        #expect(toUpstream.filter { $0.opcode != .close }.allSatisfy { !$0.fin }, "no message completed upstream: \(toUpstream.map(\.opcode))")
        #expect(toUpstream.last?.opcode == .close && toUpstream.last?.payload.prefix(2) == [0x03, 0xE9])
        pair.loop.advanceTime(by: RelaySession.defaultViolationGrace)
        let toClient = try pair.frames(to: .client)
        #expect(toClient.last?.opcode == .close && toClient.last?.payload.prefix(2) == [UInt8(code >> 8), UInt8(code & 0xFF)], "\(name)")
        #expect(Self.violations(pair, rule) == 1)
        #expect(!pair.client.isActive)
    }

    /// Catalog R-06: small on the wire, large after inflate: after a 32 KiB message of `a`, messages of about 100 wire bytes that each inflate to 64 KiB are charged to the client's byte limit by their inflated size, so with 1 MiB/s (burst 1 MiB) and action close the connection gets 1008 once 1 MiB has been inflated, and the upstream no more than that, then 1001.
    /// Catalog O-05: over the byte limit (counted after inflating) the connection gets 1008 "rate limit: bytes" and the upstream 1001.
    @Test func r06SmallOnTheWireLargeAfterInflateIsChargedByItsInflatedSize() throws {
        var limits = GatewayConfiguration.RateLimits()
        limits.upstream.controlFrames = nil
        limits.client.bytes = .init(perSecond: 1 << 20, burst: 1 << 20)
        limits.client.action = .close
        let pair = try Pair(client: PerMessageDeflateParameters(), upstream: nil) { $0.rateLimits = limits }
        var wire = try pair.message([UInt8](repeating: 0x61, count: 32 << 10), from: .client)
        let small = try pair.message([UInt8](repeating: 0x61, count: 64 << 10), from: .client)
        #expect(small.count < 200)
        for _ in 0..<100 { wire += small }
        #expect(wire.count < 20_000)
        try pair.deliver(wire, from: .client)
        pair.loop.run()
        let toUpstream = try pair.frames(to: .upstream)
        let relayed = toUpstream.filter { $0.opcode != .close }.reduce(0) { $0 + $1.payload.count }
        #expect(relayed <= 1 << 20, "\(relayed) inflated bytes relayed")
        #expect(relayed >= (1 << 20) - (64 << 10), "\(relayed) inflated bytes relayed")
        #expect(toUpstream.last?.opcode == .close && toUpstream.last?.payload.prefix(2) == [0x03, 0xE9])
        pair.loop.advanceTime(by: RelaySession.defaultViolationGrace)
        #expect(try pair.frames(to: .client).last?.payload == RelayHandlerEmbeddedTests.closePayload(1008, "rate limit: bytes"))
        #expect(pair.count("wsgate_rate_limit_decisions_total", [("side", "client"), ("limit", "bytes"), ("action", "close")]) == 1)
    }

    /// Catalog R-05: a 100 KiB message that inflates to 100 MiB (zeros), to an upstream without deflate: Fail(1009) at the 1 MiB limit; the upstream gets exactly the limit of it, decompressed, then Close 1001; the inflating stops there.
    @Test func r05ADecompressionBombFailsWith1009AtTheLimit() throws {
        let pair = try Pair(client: PerMessageDeflateParameters(), upstream: nil)
        pair.session.operations.metrics = GatewayMetrics(factory: pair.metrics)
        let bomb = try pair.message([UInt8](repeating: 0, count: 100 << 20), from: .client)
        #expect(bomb.count < 150_000)
        try pair.deliver(bomb, from: .client, cutAt: Array(stride(from: 4096, to: bomb.count, by: 4096)))
        pair.loop.run()
        let toUpstream = try pair.frames(to: .upstream)
        #expect(toUpstream.last?.opcode == .close && toUpstream.last?.payload.prefix(2) == [0x03, 0xE9])
        let data = toUpstream.dropLast()
        #expect(data.allSatisfy { !$0.fin && !$0.compressed }, "the message was completed upstream")
        #expect(data.reduce(0) { $0 + $1.payload.count } == 1 << 20, "the upstream got more or less than the limit")
        pair.loop.advanceTime(by: RelaySession.defaultViolationGrace)
        #expect(try pair.frames(to: .client).last?.payload.prefix(2) == [0x03, 0xF1])
        #expect(Self.violations(pair, .messageTooLarge) == 1)
    }

    /// Catalog R-05: deviation (verbatim compressed relay): when both legs negotiated the same parameters, the compressed bytes are relayed as they arrive and inflated alongside to check the limit, so the upstream gets at most the read in which the limit was crossed (here 4 KiB of the 100 KiB bomb), never the message's end and no Close inside it; the client gets 1009 at once and the upstream's TCP is closed.
    @Test func r05ABombRelayedVerbatimStopsWithinTheReadThatCrossesTheLimit() throws {
        let pair = try Pair(client: PerMessageDeflateParameters(), upstream: PerMessageDeflateParameters())
        pair.session.operations.metrics = GatewayMetrics(factory: pair.metrics)
        let bomb = try pair.message([UInt8](repeating: 0, count: 100 << 20), from: .client)
        try pair.deliver(bomb, from: .client, cutAt: Array(stride(from: 4096, to: bomb.count, by: 4096)))
        pair.loop.run()
        let written = try pair.drain(.upstream).reduce(0) { $0 + $1.readableBytes }
        #expect(written > 0 && written <= 4096 + 14, "\(written) bytes of the \(bomb.count)-byte bomb reached the upstream")
        #expect(try pair.frames(to: .client).last?.payload.prefix(2) == [0x03, 0xF1])
        #expect(Self.violations(pair, .messageTooLarge) == 1)
        #expect(!pair.upstream.isActive, "the upstream, inside the frame, has its TCP closed without a Close")
    }
}
