import Frames
import NIOCore
import Testing

@testable import Gateway

/// ``MessageTranscoder`` on its own (issue #10 items 4–6): messages in, whole frames out, no channel.
@Suite struct MessageTranscoderTests {
    /// A frame as the peer receives it.
    struct Frame: Equatable {
        var opcode: Opcode
        var fin: Bool
        var compressed: Bool
        var payload: [UInt8]
    }

    /// The parser of a peer on `side` (it receives what the gateway writes toward `side`).
    static func peerParser(on side: Side) -> FrameParser {
        FrameParser(
            role: side == .upstream ? .server : .client,
            configuration: .init {
                $0.allowedReservedBits = .rsv1
                $0.maxFrameSize = 1 << 30
                $0.maxMessageSize = 1 << 30
            }
        )
    }

    /// Decodes frames the transcoder wrote toward the client (unmasked) or the upstream (masked).
    static func decode(_ buffers: [ByteBuffer], toward side: Side) throws -> [Frame] {
        var parser = Self.peerParser(on: side)
        return try Self.decode(buffers, with: &parser)
    }

    /// Decodes with a parser kept across calls (a message may be split across them).
    static func decode(_ buffers: [ByteBuffer], with parser: inout FrameParser) throws -> [Frame] {
        var frames: [Frame] = []
        for var buffer in buffers {
            while let event = try parser.next(&buffer) {
                switch event {
                case .header(let header):
                    frames.append(Frame(opcode: header.opcode, fin: header.fin, compressed: header.reservedBits.contains(.rsv1), payload: []))
                case .payload(let chunk):
                    frames[frames.count - 1].payload += chunk.readableBytesView
                case .control(let frame):
                    frames.append(Frame(opcode: frame.opcode, fin: true, compressed: false, payload: Array(frame.payload.readableBytesView)))
                case .frameEnd:
                    break
                }
            }
        }
        return frames
    }

    /// One message's frames reassembled, inflated with `inflater` when its first frame has RSV1.
    static func message(_ frames: [Frame], inflater: PerMessageInflater) throws -> (compressed: Bool, bytes: [UInt8]) {
        let payload = frames.flatMap(\.payload)
        guard frames.first?.compressed == true else { return (false, payload) }
        var reader = PerMessageDeflateReader(inflater: inflater)
        try reader.begin(validatingUTF8: false)
        var plain: [UInt8] = []
        try reader.append(ByteBuffer(bytes: payload)) { plain += $0.readableBytesView }
        if let last = try reader.finish({ plain += $0.readableBytesView }) { plain += last.readableBytesView }
        return (true, plain)
    }

    static func compress(_ bytes: [UInt8]) throws -> [UInt8] {
        var writer = PerMessageDeflateWriter(deflater: PerMessageDeflater(windowBits: 15, noContextTakeover: true))
        var out: [UInt8] = []
        try writer.append(ByteBuffer(bytes: bytes)) { out += $0.readableBytesView }
        out += try writer.finish { out += $0.readableBytesView }.readableBytesView
        return out
    }

    static func random(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    static func json(_ count: Int) -> [UInt8] {
        Array((0..<count).map { "{\"n\":\($0),\"text\":\"héllo ✓ wsgate\"}" }.joined(separator: ",").utf8)
    }

    /// Plain messages from the upstream toward a client the gateway compresses for (context takeover).
    static func compressingTowardTheClient() -> MessageTranscoder {
        MessageTranscoder(
            reader: nil,
            writer: PerMessageDeflateWriter(deflater: PerMessageDeflater(windowBits: 15, noContextTakeover: false)),
            masksOutput: false
        )
    }

    /// Sends one plain message through `transcoder` in `chunk`-sized payload pieces; returns its frames.
    static func send(_ bytes: [UInt8], through transcoder: MessageTranscoder, chunk: Int = 16 * 1024, toward side: Side = .client) throws -> [Frame] {
        var out: [ByteBuffer] = []
        #expect(try transcoder.header(FrameHeader(fin: true, opcode: .binary, payloadLength: bytes.count)))
        var start = 0
        while start < bytes.count {
            let end = min(bytes.count, start + chunk)
            #expect(try transcoder.payload(ByteBuffer(bytes: bytes[start..<end])) { out.append($0) } == .done)
            start = end
        }
        try transcoder.frameEnd(fin: true) { out.append($0) }
        return try Self.decode(out, toward: side)
    }

    // MARK: Item 5: never compress to something larger

    @Test func anIncompressibleMessageGoesOutUncompressedAndThePeersContextStaysInStep() throws {
        let transcoder = Self.compressingTowardTheClient()
        let peer = PerMessageInflater(windowBits: 15, noContextTakeover: false, maxMessageSize: 1 << 24)
        let document = Self.json(200)
        let first = try Self.send(document, through: transcoder)
        let message1 = try Self.message(first, inflater: peer)
        #expect(message1.compressed == true)
        let same1 = message1.bytes == document
        #expect(same1)
        // Random bytes do not shrink: sent as they are, RSV1 clear (RFC 7692 §6), and counted.
        let noise = Self.random(1000)
        let second = try Self.send(noise, through: transcoder)
        #expect(second.allSatisfy { !$0.compressed } && second.last?.fin == true)
        let message2 = try Self.message(second, inflater: peer)
        #expect(message2.compressed == false)
        let same2 = message2.bytes == noise
        #expect(same2)
        #expect(transcoder.uncompressedMessages == 1)
        // The compressor forgot the noise the peer never inflated: the next message still inflates.
        let third = try Self.send(document + noise.prefix(10), through: transcoder)
        let message3 = try Self.message(third, inflater: peer)
        #expect(message3.compressed == true)
        let same3 = message3.bytes == document + noise.prefix(10)
        #expect(same3)
        #expect(transcoder.uncompressedMessages == 1)
    }

    @Test func anEmptyMessageIsOneEmptyUncompressedFrame() throws {
        let transcoder = Self.compressingTowardTheClient()
        #expect(try Self.send([], through: transcoder) == [Frame(opcode: .binary, fin: true, compressed: false, payload: [])])
    }

    @Test func aLongMessageIsDecidedOnItsFirst64KiB() throws {
        let peer = PerMessageInflater(windowBits: 15, noContextTakeover: false, maxMessageSize: 1 << 24)
        let transcoder = Self.compressingTowardTheClient()
        let noise = Self.random(200_000)
        let plain = try Self.send(noise, through: transcoder)
        #expect(plain.allSatisfy { !$0.compressed && $0.payload.count <= 32 * 1024 } && plain.count > 6)
        let same = plain.flatMap(\.payload) == noise
        #expect(same, "the noise went out changed")
        let document = Self.json(8000)
        #expect(document.count > 200_000)
        let compressed = try Self.send(document, through: transcoder)
        #expect(compressed.first?.compressed == true)
        let message4 = try Self.message(compressed, inflater: peer)
        #expect(message4.compressed == true)
        let same4 = message4.bytes == document
        #expect(same4)
        #expect(compressed.flatMap(\.payload).count < document.count / 4)
        #expect(transcoder.uncompressedMessages == 1)
    }

    @Test(arguments: [65522, 65536, 1000])
    func aMegabyteOfNoiseInReadSizedChunksGoesOutUncompressed(chunk: Int) throws {
        let transcoder = Self.compressingTowardTheClient()
        let noise = Self.random(1 << 20)
        let frames = try Self.send(noise, through: transcoder, chunk: chunk)
        #expect(frames.allSatisfy { !$0.compressed } && frames.last?.fin == true && frames.dropLast().allSatisfy { !$0.fin })
        let same = frames.flatMap(\.payload) == noise
        #expect(same)
    }

    // MARK: Item 4: the frame limit counts inflated bytes

    @Test(arguments: [0, 1])
    func theFrameLimitOfACompressedFrameCountsInflatedBytes(extra: Int) throws {
        let limit = 40_000
        let transcoder = MessageTranscoder(
            reader: PerMessageDeflateReader(inflater: PerMessageInflater(windowBits: 15, noContextTakeover: true, maxMessageSize: 1 << 20)),
            writer: nil,
            masksOutput: false,
            maxFrameSize: limit
        )
        let compressed = try Self.compress([UInt8](repeating: 0x61, count: limit + extra))
        #expect(compressed.count < 200)
        var out: [ByteBuffer] = []
        let run = { () throws(FramesError) in
            _ = try transcoder.header(FrameHeader(fin: true, reservedBits: .rsv1, opcode: .binary, payloadLength: compressed.count))
            _ = try transcoder.payload(ByteBuffer(bytes: compressed)) { out.append($0) }
            try transcoder.frameEnd(fin: true) { out.append($0) }
        }
        if extra == 0 {
            try run()
            #expect(try Self.decode(out, toward: .client).flatMap(\.payload).count == limit)
        } else {
            #expect(throws: FramesError(.frameTooLarge)) { try run() }
        }
    }

    // MARK: Item 6: inflation stops between frames and resumes

    @Test func inflationStopsBetweenTranscodedFramesAndResumesWhereItStopped() throws {
        let transcoder = MessageTranscoder(
            reader: PerMessageDeflateReader(inflater: PerMessageInflater(windowBits: 15, noContextTakeover: true, maxMessageSize: 1 << 20)),
            writer: nil,
            masksOutput: true
        )
        let plain = [UInt8](repeating: 0, count: 1 << 20)
        let compressed = try Self.compress(plain)
        var out: [ByteBuffer] = []
        var admitted = 0
        // The gate takes three chunks, then refuses: nothing more is inflated or written.
        let gate = { (count: Int) -> Bool in
            guard admitted < 3 * 32 * 1024 else { return false }
            admitted += count
            return true
        }
        #expect(
            try transcoder.header(
                FrameHeader(fin: true, reservedBits: .rsv1, opcode: .binary, maskingKey: MaskingKey(1, 2, 3, 4), payloadLength: compressed.count)
            )
        )
        #expect(try transcoder.payload(ByteBuffer(bytes: compressed), gate: gate) { out.append($0) } == .suspended)
        #expect(transcoder.isSuspended)
        #expect(out.count == 3 && out.allSatisfy { $0.readableBytes <= 32 * 1024 + 14 })
        #expect(try transcoder.resume(gate: { _ in false }) { out.append($0) } == .suspended)
        #expect(out.count == 3)
        #expect(try transcoder.resume { out.append($0) } == .done)
        #expect(!transcoder.isSuspended)
        try transcoder.frameEnd(fin: true) { out.append($0) }
        let frames = try Self.decode(out, toward: .upstream)
        let same = frames.flatMap(\.payload) == plain
        #expect(same)
        #expect(frames.last?.fin == true && frames.dropLast().allSatisfy { !$0.fin })
        #expect(frames.first?.opcode == .binary && frames.dropFirst().allSatisfy { $0.opcode == .continuation })
    }

    @Test func onlyCompressedMessagesTheGatewayInflatesAreChargedInflatedBytes() throws {
        let transcoder = MessageTranscoder(
            reader: PerMessageDeflateReader(inflater: PerMessageInflater(windowBits: 15, noContextTakeover: true, maxMessageSize: 1 << 20)),
            writer: nil,
            masksOutput: false
        )
        let compressedFirst = FrameHeader(fin: false, reservedBits: .rsv1, opcode: .text, payloadLength: 1)
        let continuation = FrameHeader(fin: true, opcode: .continuation, payloadLength: 1)
        #expect(transcoder.chargesInflatedBytes(compressedFirst))
        #expect(!transcoder.chargesInflatedBytes(FrameHeader(fin: true, opcode: .text, payloadLength: 1)))
        _ = try transcoder.header(compressedFirst)
        #expect(transcoder.chargesInflatedBytes(continuation))
        #expect(!Self.compressingTowardTheClient().chargesInflatedBytes(compressedFirst))
    }
}
