import Frames
import NIOCore
import Testing

@testable import RelayCore

/// The relay's frame work on reads, with the batch entry points in front of the per-event calls (core22):
/// at every split of the stream into two reads, and one byte per read, the bytes sent on, the keys drawn
/// and the error are exactly those of the per-event path alone.
@Suite struct RelayFramingTests {
    /// A deterministic key source: keys are drawn in frame order, so equal output means equal keys.
    static func keys() -> MaskingKeyGenerator {
        var state: UInt8 = 1
        return MaskingKeyGenerator(batchBytes: 64) { raw in
            for index in raw.indices {
                state = state &* 29 &+ 7
                raw[index] = state
            }
        }
    }

    /// A client's stream: small whole messages (the batch's case) around a Ping, a fragmented message, a
    /// frame with a 16-bit length, and a Close.
    static func clientStream(invalidUTF8: Bool = false, afterClose: Bool = false) -> [UInt8] {
        var encoder = FrameEncoder(
            role: .client,
            keys: MaskingKeyGenerator(batchBytes: 64) { raw in
                for index in raw.indices { raw[index] = UInt8(truncatingIfNeeded: index &* 13 &+ 5) }
            }
        )
        var buffer = ByteBuffer()
        func frame(_ opcode: Opcode, _ payload: [UInt8], fin: Bool = true) {
            encoder.writeFrame(opcode: opcode, fin: fin, payload: ByteBuffer(bytes: payload), to: &buffer)
        }
        frame(.text, Array("hello".utf8))
        frame(.binary, [1, 2, 3, 4])
        frame(.text, Array("héllo, wörld".utf8))
        frame(.ping, [7])
        frame(.binary, [9, 9])
        frame(.text, Array("frag".utf8), fin: false)
        frame(.continuation, Array("ment".utf8))
        frame(.binary, [UInt8](repeating: 0xAB, count: 300))
        frame(.text, invalidUTF8 ? [0x68, 0xC3] : Array("done".utf8))
        frame(.binary, [5])
        frame(.close, [0x03, 0xE8])
        if afterClose {
            frame(.text, Array("after".utf8))
            frame(.ping, [])
            frame(.close, [0x03, 0xE8])
        }
        return Array(buffer.readableBytesView)
    }

    /// Relays `reads` toward the upstream; returns the bytes sent on, the error and the frames batched.
    static func towardUpstream(_ reads: [[UInt8]], batching: Bool) -> (bytes: [UInt8], error: FramesError?, batched: Int) {
        let keys = Self.keys()
        var encoder = FrameEncoder(role: .client, keys: keys)
        var flow = Flow(parser: FrameParser(role: .server))
        var sent: [UInt8] = []
        var batched = 0
        for read in reads {
            var input = ByteBuffer(bytes: read)
            var output = ByteBuffer()
            let step = RelayFraming.towardUpstream(&flow, &input, into: &output, keys: keys, encoder: &encoder, batching: batching)
            sent += output.readableBytesView
            batched += step.batchedFrames
            if let failure = step.failure { return (sent, failure, batched) }
            if step.closed { break }  // the loop relays nothing more from this source
        }
        return (sent, nil, batched)
    }

    /// The same toward the client (the upstream's unmasked frames, forwarded in place).
    static func towardClient(_ reads: [[UInt8]], batching: Bool) -> (bytes: [UInt8], error: FramesError?, batched: Int) {
        var flow = Flow(parser: FrameParser(role: .client))
        var sent: [UInt8] = []
        var batched = 0
        for read in reads {
            var input = ByteBuffer(bytes: read)
            let step = RelayFraming.towardClient(&flow, &input, batching: batching)
            sent += input.readableBytesView
            batched += step.batchedFrames
            if let failure = step.failure { return (sent, failure, batched) }
            if step.closed { break }
        }
        return (sent, nil, batched)
    }

    /// An upstream's stream: the client's, unmasked (relayed by a server-role encoder).
    static func upstreamStream(invalidUTF8: Bool = false, afterClose: Bool = false) -> [UInt8] {
        var input = ByteBuffer(bytes: Self.clientStream(invalidUTF8: invalidUTF8, afterClose: afterClose))
        var output = ByteBuffer()
        var configuration = FrameParser.Configuration()
        configuration.validatesUTF8 = false  // the invalid text goes into the stream as it is
        var encoder = FrameEncoder(role: .server)
        // Frames after a Close are written too (a fresh parser per Close: the stream a peer that breaks
        // RFC 6455 §5.5.1 would send).
        var parser = FrameParser(role: .server, configuration: configuration)
        while true {
            if parser.isClosed { parser = FrameParser(role: .server, configuration: configuration) }
            guard let event = try? parser.next(&input, copyingPayloadTo: &output) else { break }
            switch event {
            case .header(let header):
                FrameHeader(
                    fin: header.fin,
                    reservedBits: header.reservedBits,
                    opcode: header.opcode,
                    maskingKey: nil,
                    payloadLength: header.payloadLength
                )
                .write(to: &output)
            case .payload, .frameEnd:
                break
            case .control(let frame):
                encoder.writeFrame(opcode: frame.opcode, payload: frame.payload, to: &output)
            }
        }
        return Array(output.readableBytesView)
    }

    static func splits(_ bytes: [UInt8]) -> [[[UInt8]]] {
        (0...bytes.count).map { [Array(bytes[..<$0]), Array(bytes[$0...])] } + [bytes.map { [$0] }]
    }

    @Test func towardTheUpstreamEverySplitGivesThePerEventBytesAndKeys() {
        for invalid in [false, true] {
            let stream = Self.clientStream(invalidUTF8: invalid)
            let reference = Self.towardUpstream([stream], batching: false)
            #expect((reference.error?.code == .invalidUTF8) == invalid)
            let whole = Self.towardUpstream([stream], batching: true)
            #expect(whole.batched >= 4, "the small whole messages of one read go through the batch")
            for reads in Self.splits(stream) {
                let batched = Self.towardUpstream(reads, batching: true)
                #expect(batched.bytes == reference.bytes, "split at \(reads[0].count)")
                #expect(batched.error == reference.error)
            }
        }
    }

    @Test func towardTheClientEverySplitForwardsThePerEventBytes() {
        for invalid in [false, true] {
            let stream = Self.upstreamStream(invalidUTF8: invalid)
            let reference = Self.towardClient([stream], batching: false)
            #expect(reference.error == nil ? !invalid : reference.error?.code == .invalidUTF8)
            #expect(Self.towardClient([stream], batching: true).batched >= 4)
            for reads in Self.splits(stream) {
                let batched = Self.towardClient(reads, batching: true)
                #expect(batched.bytes == reference.bytes, "split at \(reads[0].count)")
                #expect(batched.error == reference.error)
            }
        }
    }

    /// Autobahn 7.1.2–7.1.5: what a peer sends after its Close (data, a Ping, a second Close) is not
    /// relayed and is no error, at every split, in both directions.
    @Test func nothingAfterACloseIsRelayed() {
        let client = Self.clientStream(afterClose: true)
        let reference = Self.towardUpstream([Self.clientStream()], batching: false)
        let upstream = Self.upstreamStream(afterClose: true)
        let toClient = Self.towardClient([Self.upstreamStream()], batching: false)
        #expect(upstream.count > Self.upstreamStream().count)
        for reads in Self.splits(client) {
            let relayed = Self.towardUpstream(reads, batching: true)
            #expect(relayed.bytes == reference.bytes && relayed.error == nil, "split at \(reads[0].count)")
        }
        for reads in Self.splits(upstream) {
            let relayed = Self.towardClient(reads, batching: true)
            #expect(relayed.bytes == toClient.bytes && relayed.error == nil, "split at \(reads[0].count)")
        }
    }
}
