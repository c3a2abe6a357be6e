import Frames
import MetricsTestKit
import NIOCore
import NIOEmbedded
import Testing

@testable import Gateway

/// The relay's channel handlers in memory: two `EmbeddedChannel`s on one `EmbeddedEventLoop`, each with
/// a ``RelayHandler`` over one ``RelaySession``, exactly as the gateway wires the client and upstream
/// legs after both handshakes. Reads are delivered split at every byte; time is advanced by hand.
@Suite struct RelayHandlerEmbeddedTests {
    /// One relayed connection in memory.
    final class Pair {
        let loop = EmbeddedEventLoop()
        let client: EmbeddedChannel
        let upstream: EmbeddedChannel
        let session: RelaySession
        /// `read()` calls that got past the client leg's relay handler toward the socket.
        let clientReads = ReadCounter()
        private(set) var outcome: RelayCloseState.Outcome?
        private(set) var finished = false

        /// Policy decisions are counted in `metrics`, under the route `/r`.
        let metrics = TestMetrics()

        init(
            limits: GatewayConfiguration.Limits = .init(),
            closeTimeout: TimeAmount = .seconds(10),
            idleTimeout: TimeAmount = .hours(1),
            _ configure: (inout RelayPolicy) -> Void = { _ in }
        ) throws {
            self.client = EmbeddedChannel(loop: self.loop)
            self.upstream = EmbeddedChannel(loop: self.loop)
            var policy = RelayPolicy()
            policy.metrics = GatewayMetrics(factory: self.metrics)
            policy.route = "/r"
            configure(&policy)
            self.session = RelaySession(eventLoop: self.loop, limits: limits, closeTimeout: closeTimeout, idleTimeout: idleTimeout, policy: policy)
            // Close codes and protocol violations are counted as the gateway counts them.
            self.session.operations.metrics = policy.metrics
            self.session.onFinish = { [unowned self] outcome, _ in
                self.outcome = outcome
                self.finished = true
            }
            try self.client.pipeline.syncOperations.addHandler(self.clientReads)
            try self.client.pipeline.syncOperations.addHandler(RelayHandler(side: .client, session: self.session))
            try self.upstream.pipeline.syncOperations.addHandler(RelayHandler(side: .upstream, session: self.session))
            try self.client.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
            try self.upstream.connect(to: .init(ipAddress: "127.0.0.1", port: 2)).wait()
        }

        /// Delivers `bytes` from `side` as separate reads cut at `cuts`, each followed by read-complete.
        func deliver(_ bytes: [UInt8], from side: Side, cutAt cuts: [Int] = []) throws {
            let channel = side == .client ? self.client : self.upstream
            var start = 0
            for end in cuts.filter({ $0 > 0 && $0 < bytes.count }) + [bytes.count] {
                try channel.writeInbound(ByteBuffer(bytes: bytes[start..<end]))
                channel.pipeline.fireChannelReadComplete()
                start = end
            }
        }

        /// Everything written toward `side` so far, as one byte array.
        func written(to side: Side) throws -> [UInt8] {
            let channel = side == .client ? self.client : self.upstream
            var bytes: [UInt8] = []
            while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
                bytes += buffer.readableBytesView
            }
            return bytes
        }
    }

    /// Counts outbound `read()` calls that reach it (it sits between the relay handler and the socket).
    final class ReadCounter: ChannelOutboundHandler, RemovableChannelHandler {
        typealias OutboundIn = Never
        var reads = 0
        func read(context: ChannelHandlerContext) {
            self.reads += 1
            context.read()
        }
    }

    /// A frame as a peer decodes it.
    struct Frame: Equatable {
        var opcode: Opcode
        var fin: Bool
        var masked: Bool
        var key: MaskingKey?
        var payload: [UInt8]
    }

    /// Decodes `bytes` as the peer on `side` would (masked frames toward the upstream, unmasked toward
    /// the client); fails the test on any protocol error.
    static func frames(_ bytes: [UInt8], sentTo side: Side) throws -> [Frame] {
        var parser = FrameParser(role: side == .upstream ? .server : .client)
        var buffer = ByteBuffer(bytes: bytes)
        var frames: [Frame] = []
        while let event = try parser.next(&buffer) {
            switch event {
            case .header(let header):
                frames.append(Frame(opcode: header.opcode, fin: header.fin, masked: header.maskingKey != nil, key: header.maskingKey, payload: []))
            case .payload(let payload):
                frames[frames.count - 1].payload += payload.readableBytesView
            case .frameEnd:
                break
            case .control(let frame):
                frames.append(
                    Frame(opcode: frame.opcode, fin: true, masked: side == .upstream, key: nil, payload: Array(frame.payload.readableBytesView))
                )
            }
        }
        #expect(buffer.readableBytes == 0, "a partial frame was written toward the \(side)")
        return frames
    }

    static func clientFrame(_ opcode: Opcode, _ payload: [UInt8], fin: Bool = true, key: MaskingKey = MaskingKey(0x11, 0x22, 0x33, 0x44)) -> [UInt8] {
        var buffer = ByteBuffer()
        FrameHeader(fin: fin, opcode: opcode, maskingKey: key, payloadLength: payload.count).write(to: &buffer)
        var masked = payload
        masked.withUnsafeMutableBytes { key.apply(to: $0) }
        buffer.writeBytes(masked)
        return Array(buffer.readableBytesView)
    }

    static func upstreamFrame(_ opcode: Opcode, _ payload: [UInt8], fin: Bool = true) -> [UInt8] {
        var buffer = ByteBuffer()
        FrameHeader(fin: fin, opcode: opcode, maskingKey: nil, payloadLength: payload.count).write(to: &buffer)
        buffer.writeBytes(payload)
        return Array(buffer.readableBytesView)
    }

    static func closePayload(_ code: UInt16, _ reason: String = "") -> [UInt8] {
        [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8)
    }

    // MARK: Data frames

    /// Catalog P-01: the relay's output is the same wherever the reads cut the frame.
    @Test func aClientFrameSplitAtEveryByteReachesTheUpstreamRemaskedWithAFreshKey() throws {
        let payload = Array("héllo, wörld — relayed".utf8) + [UInt8](repeating: 0x61, count: 200)
        let key = MaskingKey(0x11, 0x22, 0x33, 0x44)
        let wire = Self.clientFrame(.text, payload, key: key)
        for cut in 0...wire.count {
            for second in [cut, min(cut + 1, wire.count), min(cut + 7, wire.count)] {
                let pair = try Pair()
                try pair.deliver(wire, from: .client, cutAt: [cut, second])
                let frames = try Self.frames(pair.written(to: .upstream), sentTo: .upstream)
                #expect(frames.count == 1, "cut at \(cut), \(second)")
                #expect(frames.first?.opcode == .text)
                #expect(frames.first?.payload == payload, "cut at \(cut), \(second)")
                #expect(frames.first?.masked == true)
                #expect(frames.first?.key != key, "the client's key was reused")
                #expect(try pair.written(to: .client).isEmpty)
            }
        }
    }

    /// Catalog P-15: fragmentation and a ping between fragments are preserved exactly, each frame remasked.
    @Test func everyFrameGetsItsOwnKeyAndFragmentationIsPreserved() throws {
        let pair = try Pair()
        let wire =
            Self.clientFrame(.text, Array("ab".utf8), fin: false)
            + Self.clientFrame(.continuation, Array("cd".utf8), fin: false)
            + Self.clientFrame(.ping, Array("p".utf8))
            + Self.clientFrame(.continuation, Array("ef".utf8))
        try pair.deliver(wire, from: .client, cutAt: [3, 9, 10, 20])
        let frames = try Self.frames(pair.written(to: .upstream), sentTo: .upstream)
        #expect(frames.map(\.opcode) == [.text, .continuation, .ping, .continuation])
        #expect(frames.map(\.fin) == [false, false, true, true])
        #expect(frames.map { String(decoding: $0.payload, as: UTF8.self) } == ["ab", "cd", "p", "ef"])
        let dataKeys = frames.filter { $0.opcode != .ping }.compactMap(\.key)
        #expect(Set(dataKeys.map(\.packed)).count == 3, "keys repeat across frames: \(dataKeys)")
    }

    @Test func anUpstreamFrameReachesTheClientByteForByte() throws {
        let wire = Self.upstreamFrame(.binary, Array(0..<200)) + Self.upstreamFrame(.pong, [1, 2, 3])
        for cut in 0...wire.count {
            let pair = try Pair()
            try pair.deliver(wire, from: .upstream, cutAt: [cut])
            #expect(try pair.written(to: .client) == wire, "cut at \(cut)")
        }
    }

    // MARK: Close handshake

    @Test func aCloseFromTheClientIsRelayedAndTheUpstreamAnswerEndsBothLegs() throws {
        let pair = try Pair()
        try pair.deliver(Self.clientFrame(.close, Self.closePayload(1000, "bye")), from: .client)
        let toUpstream = try Self.frames(pair.written(to: .upstream), sentTo: .upstream)
        #expect(toUpstream == [Frame(opcode: .close, fin: true, masked: true, key: nil, payload: Self.closePayload(1000, "bye"))])
        #expect(pair.client.isActive && pair.upstream.isActive, "closed before the upstream answered")

        try pair.deliver(Self.upstreamFrame(.close, Self.closePayload(1000, "bye")), from: .upstream)
        #expect(try pair.written(to: .client) == Self.upstreamFrame(.close, Self.closePayload(1000, "bye")))
        #expect(!pair.client.isActive && !pair.upstream.isActive)
        #expect(pair.finished)
        #expect(pair.outcome == .init(code: .normalClosure, closedBy: "client"))
    }

    /// Catalog U-12: (c) a client Close the upstream never answers: both TCP connections end at the close timeout, the client's Close answered once.
    @Test func theCloseTimeoutEndsAConnectionWhoseUpstreamNeverAnswers() throws {
        let pair = try Pair(closeTimeout: .seconds(3))
        try pair.deliver(Self.clientFrame(.close, Self.closePayload(1001)), from: .client)
        pair.loop.advanceTime(by: .milliseconds(2999))
        #expect(pair.upstream.isActive, "closed before the close timeout")
        pair.loop.advanceTime(by: .milliseconds(1))
        #expect(!pair.client.isActive && !pair.upstream.isActive)
        #expect(pair.finished)
        // The client's Close is still answered before its TCP ends, with its own code (RFC 6455 §5.5.1
        // echo; before: an empty Close).
        #expect(
            try Self.frames(pair.written(to: .client), sentTo: .client) == [
                Frame(opcode: .close, fin: true, masked: false, key: nil, payload: Self.closePayload(1001))
            ]
        )
    }

    @Test func anUpstreamThatVanishesGivesTheClient1014() throws {
        let pair = try Pair()
        pair.upstream.pipeline.fireChannelInactive()
        let toClient = try Self.frames(pair.written(to: .client), sentTo: .client)
        #expect(toClient.map(\.opcode) == [.close])
        #expect(toClient.first?.payload.prefix(2) == [0x03, 0xF6])
    }

    @Test func aGatewayCloseIsNeverWrittenInsideAHalfRelayedFrame() throws {
        let pair = try Pair(closeTimeout: .seconds(5))
        let frame = Self.upstreamFrame(.binary, [UInt8](repeating: 7, count: 100))
        try pair.deliver(Array(frame.prefix(40)), from: .upstream)
        pair.session.gatewayClose(.goingAway, reason: "idle timeout")
        // The upstream's stream is between frames: it gets a proper Close 1001.
        let toUpstream = try Self.frames(pair.written(to: .upstream), sentTo: .upstream)
        #expect(toUpstream.map(\.opcode) == [.close])
        #expect(toUpstream.first?.payload.prefix(2) == [0x03, 0xE9])
        // The client's stream is mid-frame: no Close yet; if the frame never ends, the close timeout
        // ends the client's TCP without one.
        #expect(try pair.written(to: .client) == Array(frame.prefix(40)))
        pair.loop.advanceTime(by: .seconds(5))
        #expect(!pair.client.isActive)
        #expect(try pair.written(to: .client).isEmpty)
    }

    /// Replaces a real-socket test that slept: the idle period counts from the last frame either way.
    @Test func anIdleConnectionIsClosedWith1001CountingFromTheLastFrame() throws {
        let pair = try Pair(idleTimeout: .seconds(60))
        pair.loop.advanceTime(by: .seconds(30))
        try pair.deliver(Self.upstreamFrame(.text, Array("tick".utf8)), from: .upstream)
        _ = try pair.written(to: .client)
        pair.loop.advanceTime(by: .seconds(59))
        #expect(try pair.written(to: .client).isEmpty, "closed before a full idle period after the last frame")
        pair.loop.advanceTime(by: .seconds(1))
        let toClient = try Self.frames(pair.written(to: .client), sentTo: .client)
        #expect(toClient.map(\.opcode) == [.close])
        #expect(toClient.first?.payload == Self.closePayload(1001, "idle timeout"))
        #expect(try Self.frames(pair.written(to: .upstream), sentTo: .upstream).first?.payload == Self.closePayload(1001, "idle timeout"))
    }

    // MARK: Backpressure

    /// Catalog R-04: a peer that cannot take writes stops the gateway reading the other side, so relayed pings and pongs do not queue without bound.
    /// Catalog U-08: an upstream that cannot take more stops the gateway reading the client until it drains.
    @Test func anUnwritableUpstreamHoldsTheClientsReadsUntilItDrains() throws {
        let pair = try Pair()
        pair.client.read()
        #expect(pair.clientReads.reads == 1)

        pair.upstream.isWritable = false
        pair.upstream.pipeline.fireChannelWritabilityChanged()
        pair.client.read()
        pair.client.read()
        #expect(pair.clientReads.reads == 1, "the client was read while the upstream could take nothing")

        pair.upstream.isWritable = true
        pair.upstream.pipeline.fireChannelWritabilityChanged()
        #expect(pair.clientReads.reads == 2, "the held read was not resumed")
    }
}
