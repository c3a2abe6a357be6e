import NIOCore
import Testing

@testable import Frames

/// The streaming codec: RFC 7692 examples, round trips at every window size with and without context
/// takeover and every way of splitting the input, the bound on inflation, UTF-8 as it streams.
@Suite struct PerMessageDeflateCodecTests {
    /// Inflates `compressed` (tail stripped) as one message fed in pieces of `split` bytes (0: whole).
    private func inflate(
        _ compressed: [UInt8],
        with inflater: PerMessageInflater,
        text: Bool = false,
        split: Int = 0,
        chunkSize: Int = 1024
    ) throws(FramesError) -> [UInt8] {
        var reader = PerMessageDeflateReader(inflater: inflater, chunkSize: chunkSize)
        try reader.begin(validatingUTF8: text)
        var out: [UInt8] = []
        let collect: (ByteBuffer) -> Void = { chunk in
            #expect(chunk.readableBytes <= chunkSize)
            out += chunk.readableBytesView
        }
        let step = split == 0 ? max(compressed.count, 1) : split
        var start = 0
        while start < compressed.count {
            let end = min(compressed.count, start + step)
            try reader.append(ByteBuffer(bytes: compressed[start..<end]), collect)
            start = end
        }
        if let last = try reader.finish(collect) { out += last.readableBytesView }
        return out
    }

    /// Compresses `message` as one message fed in pieces of `split` bytes; returns the frame payloads.
    private func deflate(_ message: [UInt8], with writer: inout PerMessageDeflateWriter, split: Int = 0) throws(FramesError) -> [[UInt8]] {
        var frames: [[UInt8]] = []
        let collect: (ByteBuffer) -> Void = { frames.append(Array($0.readableBytesView)) }
        let step = split == 0 ? max(message.count, 1) : split
        var start = 0
        while start < message.count {
            let end = min(message.count, start + step)
            try writer.append(ByteBuffer(bytes: message[start..<end]), collect)
            start = end
        }
        frames.append(Array(try writer.finish(collect).readableBytesView))
        return frames
    }

    /// Some compressible text with variety: JSON-like lines with counters and non-ASCII.
    private static func sample(_ size: Int, seed: Int = 0) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = seed
        while bytes.count < size {
            bytes += Array("{\"id\":\(index),\"name\":\"wsgate-\(index % 7)\",\"text\":\"héllo wörld ✓ \(index * 31 % 97)\"}\n".utf8)
            index += 1
        }
        return Array(bytes.prefix(size))
    }

    // MARK: RFC 7692 §7.2.3 examples

    @Test func rfcExamples() throws {
        let inflater = PerMessageInflater(windowBits: 15, noContextTakeover: false, maxMessageSize: 1 << 20)
        // §7.2.3.1: "Hello" compressed, and again with the context taken over (§7.2.3.2).
        #expect(try self.inflate([0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00], with: inflater) == Array("Hello".utf8))
        #expect(try self.inflate([0xF2, 0x00, 0x11, 0x00, 0x00], with: inflater) == Array("Hello".utf8))
        // §7.2.3.3: no compression (a stored block).
        #expect(try self.inflate([0x00, 0x05, 0x00, 0xFA, 0xFF, 0x48, 0x65, 0x6C, 0x6C, 0x6F, 0x00], with: inflater) == Array("Hello".utf8))
        // §7.2.3.4: a block with BFINAL set (and a padding byte after it); the stream restarts next time.
        #expect(try self.inflate([0xF3, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00, 0x00], with: inflater) == Array("Hello".utf8))
        #expect(try self.inflate([0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00], with: inflater) == Array("Hello".utf8))
        // §7.2.3.6: an empty message is 0x00.
        #expect(try self.inflate([0x00], with: inflater) == [])

        var writer = PerMessageDeflateWriter(deflater: PerMessageDeflater(windowBits: 15, noContextTakeover: false, level: 6))
        #expect(try self.deflate(Array("Hello".utf8), with: &writer) == [[0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]])
        #expect(try self.deflate(Array("Hello".utf8), with: &writer) == [[0xF2, 0x00, 0x11, 0x00, 0x00]])
        #expect(try self.deflate([], with: &writer) == [[0x00]])
    }

    // MARK: Round trips

    /// Every deflate window (9–15; zlib cannot deflate raw with 8) inflated with the same window and,
    /// for the inflate side's 8, with 8; with and without context takeover; several messages so the
    /// takeover matters; inputs split at many points.
    @Test(arguments: 9...15)
    func roundTripsAtEveryWindow(windowBits: Int) throws {
        for noContextTakeover in [false, true] {
            let deflater = PerMessageDeflater(windowBits: windowBits, noContextTakeover: noContextTakeover)
            var writer = PerMessageDeflateWriter(deflater: deflater, chunkSize: 700)
            let inflater = PerMessageInflater(windowBits: windowBits, noContextTakeover: noContextTakeover, maxMessageSize: 1 << 20)
            for (index, split) in [0, 1, 7, 64, 1000, 4096].enumerated() {
                let message = Self.sample(3000 + index * 5000, seed: index % 2)
                let frames = try self.deflate(message, with: &writer, split: split == 1 ? 13 : split)
                #expect(frames.allSatisfy { !$0.isEmpty && $0.count <= 700 + 4 })
                let compressed = frames.flatMap { $0 }
                #expect(compressed.count < message.count / 2)
                #expect(try self.inflate(compressed, with: inflater, text: true, split: split) == message)
            }
        }
    }

    /// A sender that uses a window of 8 bits (zlib stand-in: a window-9 stream whose distances stay
    /// under 256, which a window-8 inflater must read), and the inflater's window of 8 being at least 9.
    @Test func inflatesWindowEight() throws {
        let inflater = PerMessageInflater(windowBits: 8, noContextTakeover: false, maxMessageSize: 1 << 20)
        #expect(inflater.windowBits == 9)
        var writer = PerMessageDeflateWriter(deflater: PerMessageDeflater(windowBits: 9, noContextTakeover: false))
        let message = Array(repeating: Array("abcdefgh".utf8), count: 400).flatMap { $0 }
        for split in [0, 1, 3, 17] {
            let compressed = try self.deflate(message, with: &writer).flatMap { $0 }
            #expect(try self.inflate(compressed, with: inflater, split: split) == message)
        }
    }

    /// Without context takeover each message inflates on its own: a fresh inflater reads any of them.
    @Test func noContextTakeoverMessagesStandAlone() throws {
        var writer = PerMessageDeflateWriter(deflater: PerMessageDeflater(windowBits: 12, noContextTakeover: true))
        let message = Self.sample(2000)
        _ = try self.deflate(message, with: &writer)
        let second = try self.deflate(message, with: &writer).flatMap { $0 }
        let fresh = PerMessageInflater(windowBits: 12, noContextTakeover: false, maxMessageSize: 1 << 20)
        #expect(try self.inflate(second, with: fresh) == message)
    }

    @Test func incompressibleDataRoundTripsInBoundedFrames() throws {
        var generator = SystemRandomNumberGenerator()
        let message = (0..<100_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        var writer = PerMessageDeflateWriter(deflater: PerMessageDeflater(windowBits: 15, noContextTakeover: false), chunkSize: 16 * 1024)
        let frames = try self.deflate(message, with: &writer, split: 10_000)
        #expect(frames.count > 1)
        #expect(frames.allSatisfy { $0.count <= 16 * 1024 + 4 })
        let inflater = PerMessageInflater(windowBits: 15, noContextTakeover: false, maxMessageSize: 1 << 20)
        #expect(try self.inflate(frames.flatMap { $0 }, with: inflater, split: 999) == message)
    }

    // MARK: Bounds and errors

    /// A 1 KiB-class input that inflates to 1 GiB: stops with 1009 after at most the limit (+1 byte),
    /// having handed out at most the limit in bounded chunks.
    @Test func decompressionBombIsBounded() throws {
        // 1 MiB of zeros compressed and sync-flushed (keeping its 00 00 ff ff) is a self-contained
        // segment of about 1 KiB; 1,024 of them in one message would inflate to 1 GiB.
        let deflater = PerMessageDeflater(windowBits: 15, noContextTakeover: false, level: 9)
        var input = ByteBuffer(bytes: [UInt8](repeating: 0, count: 1 << 20))
        var output = ByteBuffer()
        output.reserveCapacity(64 * 1024)
        while try deflater.compress(&input, into: &output) { output.reserveCapacity(output.capacity * 2) }
        while try deflater.flush(into: &output) { output.reserveCapacity(output.capacity * 2) }
        let body = Array(output.readableBytesView)
        #expect(body.count < 2048)

        let limit = 256 * 1024
        let inflater = PerMessageInflater(windowBits: 15, noContextTakeover: false, maxMessageSize: limit)
        var reader = PerMessageDeflateReader(inflater: inflater, chunkSize: 16 * 1024)
        try reader.begin(validatingUTF8: false)
        var handedOut = 0
        var largest = 0
        #expect(throws: FramesError.messageTooLarge) {
            for _ in 0..<1024 {  // 1,024 × 1 MiB = 1 GiB if it were not bounded
                try reader.append(ByteBuffer(bytes: body)) { chunk in
                    handedOut += chunk.readableBytes
                    largest = max(largest, chunk.readableBytes)
                }
            }
        }
        #expect(handedOut <= limit)
        #expect(largest <= 16 * 1024)
        #expect(inflater.inflatedBytes <= limit + 1)
        #expect(FramesError.messageTooLarge.closeCode == .messageTooBig)
    }

    @Test func messageExactlyAtTheLimitPasses() throws {
        let message = Self.sample(10_000)
        var writer = PerMessageDeflateWriter(deflater: PerMessageDeflater(windowBits: 15, noContextTakeover: false))
        let compressed = try self.deflate(message, with: &writer).flatMap { $0 }
        #expect(try self.inflate(compressed, with: PerMessageInflater(windowBits: 15, noContextTakeover: false, maxMessageSize: 10_000)) == message)
        #expect(throws: FramesError.messageTooLarge) {
            try self.inflate(compressed, with: PerMessageInflater(windowBits: 15, noContextTakeover: false, maxMessageSize: 9_999))
        }
    }

    @Test func invalidDeflateDataIs1007() {
        let inflater = PerMessageInflater(windowBits: 15, noContextTakeover: false, maxMessageSize: 1 << 20)
        // RELIABILITY P-13 (d): RSV1 with payload ff ff ff ff (not DEFLATE).
        #expect(throws: FramesError.invalidCompressedData) { try self.inflate([0xFF, 0xFF, 0xFF, 0xFF], with: inflater) }
        #expect(FramesError.invalidCompressedData.closeCode == .invalidPayloadData)
    }

    /// Inflated text is validated as it streams: the chunk holding the first bad byte fails, and a
    /// message that ends inside a scalar fails at its end; split points do not matter.
    @Test func inflatedTextIsUTF8Validated() throws {
        var writer = PerMessageDeflateWriter(deflater: PerMessageDeflater(windowBits: 15, noContextTakeover: true))
        let bad = Self.sample(5000) + [0xC0, 0xAF] + Self.sample(5000)
        let badCompressed = try self.deflate(bad, with: &writer).flatMap { $0 }
        let truncated = Self.sample(100) + [0xE2, 0x9C]
        let truncatedCompressed = try self.deflate(truncated, with: &writer).flatMap { $0 }
        for split in [0, 1, 5, 333] {
            let inflater = PerMessageInflater(windowBits: 15, noContextTakeover: true, maxMessageSize: 1 << 20)
            var seen = 0
            var reader = PerMessageDeflateReader(inflater: inflater, chunkSize: 512)
            try reader.begin(validatingUTF8: true)
            #expect(throws: FramesError.invalidUTF8) {
                var input = badCompressed[...]
                while !input.isEmpty {
                    let piece = input.prefix(split == 0 ? input.count : split)
                    input = input.dropFirst(piece.count)
                    try reader.append(ByteBuffer(bytes: piece)) { seen += $0.readableBytes }
                }
            }
            #expect(seen <= 5000)  // nothing from the chunk with the bad byte on
            let second = PerMessageInflater(windowBits: 15, noContextTakeover: true, maxMessageSize: 1 << 20)
            #expect(throws: FramesError.invalidUTF8) { try self.inflate(truncatedCompressed, with: second, text: true, split: split) }
            // The same bytes as binary are fine.
            let third = PerMessageInflater(windowBits: 15, noContextTakeover: true, maxMessageSize: 1 << 20)
            #expect(try self.inflate(truncatedCompressed, with: third, text: false, split: split) == truncated)
        }
    }

    /// Validation-only mode (the verbatim path) reuses one buffer and hands nothing out.
    @Test func discardingReaderValidatesWithoutHandingOut() throws {
        var writer = PerMessageDeflateWriter(deflater: PerMessageDeflater(windowBits: 15, noContextTakeover: false))
        let message = Self.sample(200_000)
        let compressed = try self.deflate(message, with: &writer).flatMap { $0 }
        let inflater = PerMessageInflater(windowBits: 15, noContextTakeover: false, maxMessageSize: 1 << 20)
        var reader = PerMessageDeflateReader(inflater: inflater, chunkSize: 4096, discarding: true)
        try reader.begin(validatingUTF8: true)
        var handedOut = 0
        try reader.append(ByteBuffer(bytes: compressed)) { handedOut += $0.readableBytes + 1 }
        #expect(try reader.finish { handedOut += $0.readableBytes + 1 } == nil)
        #expect(handedOut == 0)
        #expect(inflater.inflatedBytes == message.count)
    }
}
