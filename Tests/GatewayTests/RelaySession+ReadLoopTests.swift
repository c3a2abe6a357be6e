import Frames
import NIOCore
import NIOEmbedded
import TestPeers
import Testing

@testable import Gateway

/// Issue #15: the read loop's batch of whole one-frame messages (``FrameParser/nextBatch``) against the
/// per-event path it replaces. Two relays in memory get the same reads, one with batches and one
/// without, and must write the same bytes both ways (the keys toward the upstream come from the same
/// deterministic source), count the same messages and bytes, and end with the same close code.
@Suite struct RelaySessionReadLoopTests {
    /// One relayed connection in memory whose masking keys are deterministic.
    final class Relay {
        let loop = EmbeddedEventLoop()
        let client: EmbeddedChannel
        let upstream: EmbeddedChannel
        let session: RelaySession
        private(set) var outcome: RelayCloseState.Outcome?
        var toUpstream: [UInt8] = []
        var toClient: [UInt8] = []

        init(batching: Bool, limits: GatewayConfiguration.Limits = .init()) throws {
            var keySource = SplitMix64(seed: 42)
            let keys = MaskingKeyGenerator(batchBytes: 64) { buffer in
                for index in buffer.indices { buffer[index] = UInt8(truncatingIfNeeded: keySource.next()) }
            }
            self.client = EmbeddedChannel(loop: self.loop)
            self.upstream = EmbeddedChannel(loop: self.loop)
            self.session = RelaySession(
                eventLoop: self.loop,
                limits: limits,
                closeTimeout: .seconds(10),
                idleTimeout: .hours(1),
                resources: RelayResources(maskingKeys: keys)
            )
            self.session.batchesFrames = batching
            self.session.onFinish = { [unowned self] outcome, _ in self.outcome = outcome }
            try self.client.pipeline.syncOperations.addHandler(RelayHandler(side: .client, session: self.session))
            try self.upstream.pipeline.syncOperations.addHandler(RelayHandler(side: .upstream, session: self.session))
            try self.client.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
            try self.upstream.connect(to: .init(ipAddress: "127.0.0.1", port: 2)).wait()
        }

        /// Delivers `bytes` from `side` as reads cut at `cuts`, each followed by read-complete; collects
        /// what is written each way after every read (each write's bytes, in order).
        func deliver(_ bytes: [UInt8], from side: Side, cutAt cuts: [Int]) throws {
            let channel = side == .client ? self.client : self.upstream
            var start = 0
            for end in cuts.filter({ $0 > 0 && $0 < bytes.count }).sorted() + [bytes.count] where end >= start {
                if channel.isActive {
                    try channel.writeInbound(ByteBuffer(bytes: bytes[start..<end]))
                    channel.pipeline.fireChannelReadComplete()
                }
                start = end
                while let buffer = try self.upstream.readOutbound(as: ByteBuffer.self) { self.toUpstream += buffer.readableBytesView }
                while let buffer = try self.client.readOutbound(as: ByteBuffer.self) { self.toClient += buffer.readableBytesView }
            }
        }
    }

    /// A frame as `side` sends it: masked from a client, plain from an upstream.
    static func frame(
        _ opcode: Opcode,
        _ payload: [UInt8],
        from side: Side,
        fin: Bool = true,
        rsv: ReservedBits = [],
        _ random: inout SplitMix64
    ) -> [UInt8] {
        var buffer = ByteBuffer()
        let key = side == .client ? MaskingKey(packed: UInt32(truncatingIfNeeded: random.next())) : nil
        FrameHeader(fin: fin, reservedBits: rsv, opcode: opcode, maskingKey: key, payloadLength: payload.count).write(to: &buffer)
        var masked = payload
        if let key { masked.withUnsafeMutableBytes { key.apply(to: $0) } }
        buffer.writeBytes(masked)
        return Array(buffer.readableBytesView)
    }

    /// Valid traffic: mostly whole messages (the batch's), with fragmented messages (a text one split
    /// inside a scalar), empty frames, 16-bit lengths, pings and pongs among them.
    static func traffic(from side: Side, count: Int, _ random: inout SplitMix64) -> [UInt8] {
        var bytes: [UInt8] = []
        let scalars = ["a", "é", "—", "😀", "{\"k\":1}"]
        func text(_ length: Int, _ random: inout SplitMix64) -> [UInt8] {
            var text: [UInt8] = []
            while text.count < length { text += Array(scalars[Int(random.next() % 5)].utf8) }
            return text
        }
        for _ in 0..<count {
            switch random.next() % 10 {
            case 0, 1, 2, 3:
                bytes += Self.frame(.text, text(Int(random.next() % 40), &random), from: side, &random)
            case 4, 5:
                let length = random.next() % 4 == 0 ? 126 + Int(random.next() % 200) : Int(random.next() % 33)
                bytes += Self.frame(.binary, (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }, from: side, &random)
            case 6:
                bytes += Self.frame(random.next() % 2 == 0 ? .text : .binary, [], from: side, &random)
            case 7:
                let message = text(12, &random)
                let cut = 1 + Int(random.next() % UInt64(message.count - 1))  // possibly inside a scalar
                bytes += Self.frame(.text, Array(message[..<cut]), from: side, fin: false, &random)
                if random.next() % 2 == 0 { bytes += Self.frame(.ping, [1, 2], from: side, &random) }
                bytes += Self.frame(.continuation, Array(message[cut...]), from: side, &random)
            case 8:
                bytes += Self.frame(.ping, Array("p".utf8), from: side, &random)
            default:
                bytes += Self.frame(.pong, [], from: side, &random)
            }
        }
        return bytes
    }

    /// Runs `bytes` from `side` through a batching and a per-event relay with the same cuts and expects
    /// the same result.
    static func expectSameRelay(
        _ bytes: [UInt8],
        from side: Side,
        cutAt cuts: [Int],
        limits: GatewayConfiguration.Limits = .init(),
        _ comment: String
    ) throws {
        let batched = try Relay(batching: true, limits: limits)
        let perEvent = try Relay(batching: false, limits: limits)
        try batched.deliver(bytes, from: side, cutAt: cuts)
        try perEvent.deliver(bytes, from: side, cutAt: cuts)
        #expect(batched.toUpstream == perEvent.toUpstream, "toward the upstream: \(comment)")
        #expect(batched.toClient == perEvent.toClient, "toward the client: \(comment)")
        for leg in [Side.client, .upstream] {
            #expect(batched.session.stats[leg].messages == perEvent.session.stats[leg].messages, "messages from the \(leg): \(comment)")
            #expect(batched.session.stats[leg].bytes == perEvent.session.stats[leg].bytes, "bytes from the \(leg): \(comment)")
            #expect(batched.session.closeState.legs[leg] == perEvent.session.closeState.legs[leg], "close state of the \(leg): \(comment)")
        }
        #expect(batched.outcome == perEvent.outcome, "outcome: \(comment)")
    }

    /// Catalog P-01: the relay's output is the same wherever the reads cut the frames (batched or not).
    @Test(arguments: [Side.client, .upstream])
    func batchedAndPerEventReadsRelayTheSameBytesSplitAtEveryByte(from side: Side) throws {
        var random = SplitMix64(seed: side == .client ? 1 : 2)
        for round in 0..<6 {
            let bytes = Self.traffic(from: side, count: 12, &random)
            try Self.expectSameRelay(bytes, from: side, cutAt: [], "round \(round), one read")
            for cut in 1..<bytes.count {
                let second = cut + Int(random.next() % 40)
                try Self.expectSameRelay(bytes, from: side, cutAt: [cut, second], "round \(round), cut at \(cut), \(second)")
            }
        }
    }

    /// Hostile frames in the middle of a batch.
    static func hostile(_ index: Int, from side: Side, _ random: inout SplitMix64) -> (name: String, bytes: [UInt8]) {
        switch index {
        case 0: return ("invalid UTF-8", Self.frame(.text, [0x61, 0xFF, 0x62], from: side, &random))
        case 1: return ("text ending inside a scalar", Self.frame(.text, [0x61, 0xE2, 0x80], from: side, &random))
        case 2: return ("RSV1 not negotiated", Self.frame(.text, [0x61], from: side, rsv: .rsv1, &random))
        case 3:
            var bytes = Self.frame(.binary, [1], from: side, &random)
            bytes[0] = 0x83  // FIN, opcode 0x3 (reserved, RFC 6455 §5.2)
            return ("reserved opcode", bytes)
        case 4: return ("continuation without a message", Self.frame(.continuation, [1], from: side, &random))
        case 5: return ("frame over max_frame", Self.frame(.binary, [UInt8](repeating: 7, count: 300), from: side, &random))
        case 6:
            // A 5-byte length in 16 bits (RFC 6455 §5.2: minimal encoding).
            var bytes: [UInt8] = [0x82, (side == .client ? 0x80 : 0) | 126, 0, 5]
            if side == .client { bytes += [0, 0, 0, 0] }
            return ("non-minimal length", bytes + [1, 2, 3, 4, 5])
        case 7:
            // Wrong masking for the role.
            var bytes = Self.frame(.binary, [1, 2], from: side, &random)
            bytes[1] ^= 0x80
            if side == .upstream { bytes.insert(contentsOf: [0, 0, 0, 0], at: 2) } else { bytes.removeSubrange(2..<6) }
            return ("masking against the role", bytes)
        case 8: return ("Close with code 1005", Self.frame(.close, [0x03, 0xED], from: side, &random))
        case 9: return ("Close, then more frames", Self.frame(.close, [0x03, 0xE8], from: side, &random))
        case 10:
            return (
                "max_message over two frames",
                Self.frame(.text, [0x61], from: side, fin: false, &random)
                    + Self.frame(.continuation, [UInt8](repeating: 0x61, count: 200), from: side, &random)
            )
        default: return ("ping with 126 bytes", Self.frame(.ping, [UInt8](repeating: 1, count: 126), from: side, &random))
        }
    }

    /// Catalog P-01: a violation after valid frames in the same read gives the same output and the same
    /// close code with or without batches.
    @Test(arguments: [Side.client, .upstream])
    func aHostileFrameInsideABatchIsHandledAsWithoutBatches(from side: Side) throws {
        var random = SplitMix64(seed: side == .client ? 3 : 4)
        var limits = GatewayConfiguration.Limits()
        limits.maxFrameSize = 256
        limits.maxMessageSize = 128
        for index in 0..<12 {
            let before = (0..<6).flatMap { _ in Self.frame(.text, Array("hello".utf8), from: side, &random) }
            let hostile = Self.hostile(index, from: side, &random)
            let after = (0..<3).flatMap { _ in Self.frame(.binary, [9, 9], from: side, &random) }
            let bytes = before + hostile.bytes + after
            for cut in 0..<bytes.count {
                try Self.expectSameRelay(bytes, from: side, cutAt: [cut], limits: limits, "\(hostile.name), cut at \(cut)")
            }
        }
    }

    /// RFC 6455 §8.1: invalid UTF-8 after valid messages in one read: those messages reach the other
    /// side, the offender gets a Close with 1007, nothing of the invalid frame's payload is forwarded.
    @Test func invalidUTF8AfterABatchClosesWith1007AndForwardsTheMessagesBeforeIt() throws {
        var random = SplitMix64(seed: 5)
        let valid = (0..<4).flatMap { _ in Self.frame(.text, Array("ok".utf8), from: .client, &random) }
        let relay = try Relay(batching: true)
        try relay.deliver(valid + Self.frame(.text, [0xC3, 0x28], from: .client, &random), from: .client, cutAt: [])
        var parser = FrameParser(role: .server)
        var buffer = ByteBuffer(bytes: relay.toUpstream)
        var texts = 0
        while let event = try parser.next(&buffer) {
            if case .payload(let payload) = event, payload.readableBytesView.elementsEqual("ok".utf8) { texts += 1 }
        }
        #expect(texts == 4)
        #expect(relay.session.stats.client.messages == 4)
        // The Close toward the client: FIN+Close, length 2 or more, code 1007 first.
        #expect(Array(relay.toClient.prefix(4)) == [0x88, relay.toClient[1], 0x03, 0xEF])
    }
}
