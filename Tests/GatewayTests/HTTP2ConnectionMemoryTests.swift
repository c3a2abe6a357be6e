import Foundation
import MetricsTestKit
import NIOCore
import NIOEmbedded
import NIOHTTP2
import Testing

@testable import Gateway

/// One connection's budget across its streams' codecs, in memory (issue #16): two stream channels on one
/// event loop share an ``HTTP2ConnectionMemory``; a handler in front of each codec holds its writes, as
/// swift-nio-http2 does for a client that takes no DATA (the write promises complete when bytes leave).
@Suite struct HTTP2ConnectionMemoryTests {
    /// Holds the stream's outbound frames and their promises (a client whose windows are closed).
    final class HeldWrites: ChannelOutboundHandler {
        typealias OutboundIn = HTTP2Frame.FramePayload
        var frames: [HTTP2Frame.FramePayload] = []
        var promises: [EventLoopPromise<Void>] = []
        var reads = 0

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            self.frames.append(Self.unwrapOutboundIn(data))
            if let promise { self.promises.append(promise) }
        }

        func read(context: ChannelHandlerContext) {
            self.reads += 1
        }

        /// The client took everything: the writes complete.
        func release() {
            let promises = self.promises
            self.promises = []
            for promise in promises { promise.succeed() }
        }
    }

    final class Stream {
        let channel: EmbeddedChannel
        let held = HeldWrites()
        let codec: HTTP2WebSocketStreamCodec

        init(loop: EmbeddedEventLoop, memory: HTTP2ConnectionMemory) throws {
            self.channel = EmbeddedChannel(loop: loop)
            let record = ConnectionRecord(id: 1, clientAddress: "192.0.2.1", listener: "public", httpProtocol: "h2")
            let recorder = UpgradeRecorder(record: record, metrics: GatewayMetrics(factory: TestMetrics()), accessLog: try AccessLog(.off))
            self.codec = HTTP2WebSocketStreamCodec(recorder: recorder, closeTimeout: .seconds(10), memory: memory)
            try self.channel.pipeline.syncOperations.addHandlers([self.held, self.codec])
            try self.channel.connect(to: .init(ipAddress: "192.0.2.1", port: 40000)).wait()
            // Switched to frames, as after the upstream's 101.
            try self.channel.writeInbound(HTTP2WebSocketStreamCodecTests.connect)
            self.codec.beginFrames()
            self.held.reads = 0
        }

        /// The relay writes `count` bytes toward the client.
        func relayWrites(_ count: Int) {
            self.channel.writeAndFlush(ByteBuffer(repeating: 0x61, count: count), promise: nil)
        }

        var reset: Bool { self.held.frames.contains { if case .rstStream(.enhanceYourCalm) = $0 { true } else { false } } }
    }

    /// A 64 KiB budget for two streams: 16 KiB windows each (32 KiB), so 32 KiB may be queued toward the
    /// client; past that the relays' reads are held (no new credit), a quarter past the budget the stream
    /// holding the most is reset with ENHANCE_YOUR_CALM, and the other one goes on reading.
    @Test func aClientThatTakesNothingIsHeldThenItsFullestStreamIsReset() throws {
        var limits = GatewayConfiguration.HTTP2Limits()
        limits.maxConcurrentStreams = 2
        limits.maxConnectionBuffer = 64 * 1024
        #expect(limits.streamWindow == 16 * 1024)
        let loop = EmbeddedEventLoop()
        let memory = HTTP2ConnectionMemory(limits: limits)
        let first = try Stream(loop: loop, memory: memory)
        let second = try Stream(loop: loop, memory: memory)
        #expect(memory.buffered == 32 * 1024)

        first.relayWrites(20 * 1024)
        second.relayWrites(12 * 1024)
        #expect(memory.buffered == 64 * 1024 && !memory.paused)
        first.channel.read()
        #expect(first.held.reads == 1, "within the budget reads pass")

        second.relayWrites(8 * 1024)
        #expect(memory.paused)
        first.channel.read()
        second.channel.read()
        #expect(first.held.reads == 1 && second.held.reads == 0, "over the budget the relays' reads were passed on")

        // 16 KiB more on the first stream: 80 KiB + 1 is a quarter past; the first holds the most.
        first.relayWrites(8 * 1024)
        #expect(!first.reset)
        first.relayWrites(1)
        #expect(first.reset, "the fullest stream was not reset")
        #expect(!first.channel.isActive)
        #expect(!second.reset && second.channel.isActive)
        // Back under three quarters of the budget: the second stream's held read goes on.
        #expect(!memory.paused)
        #expect(second.held.reads == 1)

        // The client takes the second stream's DATA: its bytes leave the budget.
        second.held.release()
        #expect(memory.buffered == 16 * 1024)
        #expect(memory.peak > 80 * 1024)
        // The relay's close ends the stream (END_STREAM), then the close timeout resets it.
        second.channel.close(promise: nil)
        loop.advanceTime(by: .seconds(11))
        #expect(!second.channel.isActive)
    }

    /// Writes that complete (the client reads) never hold anything: the budget stays at the windows.
    @Test func aClientThatReadsIsNeverHeld() throws {
        var limits = GatewayConfiguration.HTTP2Limits()
        limits.maxConcurrentStreams = 2
        limits.maxConnectionBuffer = 64 * 1024
        let loop = EmbeddedEventLoop()
        let memory = HTTP2ConnectionMemory(limits: limits)
        let stream = try Stream(loop: loop, memory: memory)
        for _ in 0..<100 {
            stream.relayWrites(16 * 1024)
            stream.held.release()
        }
        #expect(memory.peak <= 16 * 1024 + 16 * 1024 && !memory.paused && !stream.reset)
        stream.channel.close(promise: nil)
        loop.advanceTime(by: .seconds(11))
        #expect(memory.buffered == 0, "a closed stream's window still counted")
    }

    /// The relay's writes between two flushes leave swift-nio-http2 in order, so one promise, the last
    /// write's, tells when the whole batch left: the writes are counted as queued at once and out when it
    /// completes, and no promise is made for the others (one allocation per flush, not per DATA frame).
    @Test func aBatchOfWritesIsCountedOutByTheOnePromiseOfItsLastWrite() throws {
        var limits = GatewayConfiguration.HTTP2Limits()
        limits.maxConnectionBuffer = 64 * 1024
        let loop = EmbeddedEventLoop()
        let memory = HTTP2ConnectionMemory(limits: limits)
        let stream = try Stream(loop: loop, memory: memory)
        for _ in 0..<3 { stream.channel.write(ByteBuffer(repeating: 0x61, count: 1000), promise: nil) }
        #expect(memory.queued == 3000, "not counted when written")
        stream.channel.flush()
        #expect(stream.held.frames.count == 3)
        #expect(stream.held.promises.count == 1, "a promise per write")
        #expect(memory.queued == 3000)
        stream.held.release()
        #expect(memory.queued == 0)

        // A write's own promise is kept and completes with it.
        let mine = loop.makePromise(of: Void.self)
        var completed = false
        mine.futureResult.assumeIsolated().whenSuccess { completed = true }
        stream.channel.write(ByteBuffer(repeating: 0x61, count: 10), promise: mine)
        stream.relayWrites(20)
        #expect(memory.queued == 30 && stream.held.promises.count == 2)
        stream.held.release()
        #expect(memory.queued == 0 && completed)

        // An unflushed write goes before the END_STREAM of the relay's close.
        stream.channel.write(ByteBuffer(repeating: 0x62, count: 10), promise: nil)
        stream.channel.close(promise: nil)
        let data = stream.held.frames.suffix(2).compactMap { frame -> (Int, Bool)? in
            if case .data(let data) = frame, case .byteBuffer(let bytes) = data.data { (bytes.readableBytes, data.endStream) } else { nil }
        }
        #expect(data.map(\.0) == [10, 0] && data.map(\.1) == [false, true], "\(stream.held.frames.suffix(2))")
        loop.advanceTime(by: .seconds(11))
        #expect(memory.buffered == 0)
    }

    /// Takes every write at once (a client that reads as fast as the gateway writes).
    final class Sink: ChannelOutboundHandler {
        typealias OutboundIn = HTTP2Frame.FramePayload
        var frames = 0

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            self.frames += 1
            promise?.succeed()
        }
    }

    /// Allocations per DATA frame of a stream counted in its connection's budget, one flush per write
    /// and sixteen writes per flush. Measured when the run preloads `scripts/malloc-count.c` (it prints
    /// them); otherwise it only checks the frames arrive and nothing stays counted.
    @Test func allocationsPerDataFrame() throws {
        let loop = EmbeddedEventLoop()
        let memory = HTTP2ConnectionMemory(limits: GatewayConfiguration.HTTP2Limits())
        let channel = EmbeddedChannel(loop: loop)
        let record = ConnectionRecord(id: 1, clientAddress: "192.0.2.1", listener: "public", httpProtocol: "h2")
        let recorder = UpgradeRecorder(record: record, metrics: GatewayMetrics(factory: TestMetrics()), accessLog: try AccessLog(.off))
        let codec = HTTP2WebSocketStreamCodec(recorder: recorder, closeTimeout: .seconds(10), memory: memory)
        let sink = Sink()
        try channel.pipeline.syncOperations.addHandlers([sink, codec])
        try channel.connect(to: .init(ipAddress: "192.0.2.1", port: 40000)).wait()
        try channel.writeInbound(HTTP2WebSocketStreamCodecTests.connect)
        codec.beginFrames()
        let frame = ByteBuffer(repeating: 0x61, count: 32)
        let counter = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "wsgate_malloc_count").map {
            unsafeBitCast($0, to: (@convention(c) () -> Int).self)
        }
        func measure(_ frames: Int, perFlush: Int) -> Double {
            let before = counter?() ?? 0
            for index in 1...frames {
                channel.write(frame, promise: nil)
                if index % perFlush == 0 { channel.flush() }
            }
            return Double((counter?() ?? 0) - before) / Double(frames)
        }
        _ = measure(1000, perFlush: 1)  // warm-up: the loop's and the dictionaries' first growth
        let single = measure(10000, perFlush: 1)
        let batched = measure(10000, perFlush: 16)
        #expect(sink.frames == 21000 && memory.queued == 0)
        if counter != nil {
            print("allocations per h2 DATA frame (debug build, codec + budget): \(single) one flush each, \(batched) 16 per flush")
        }
        // The relay's close: END_STREAM, then the close timeout resets the stream.
        channel.close(promise: nil)
        loop.advanceTime(by: .seconds(11))
        #expect(!channel.isActive && memory.buffered == 0)
    }
}
