import NIOCore
import Testing

@testable import Frames

/// Issue #10: what the stream types and the parser do for a relay that must honour limits after
/// inflation and backpressure: the wire allowance of compressed messages, a reader that stops between
/// chunks, a writer that can tell and undo what it produced.
@Suite struct PerMessageDeflateStreamTests {
    private static func random(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    private static func compress(_ bytes: [UInt8]) throws -> [UInt8] {
        var writer = PerMessageDeflateWriter(deflater: PerMessageDeflater(windowBits: 15, noContextTakeover: true))
        var out: [UInt8] = []
        try writer.append(ByteBuffer(bytes: bytes)) { out += $0.readableBytesView }
        out += try writer.finish { out += $0.readableBytesView }.readableBytesView
        return out
    }

    /// A masked client frame's header and payload.
    private static func frame(_ payload: [UInt8], compressed: Bool, opcode: Opcode = .binary, fin: Bool = true) -> ByteBuffer {
        var buffer = ByteBuffer()
        var encoder = FrameEncoder(role: .client)
        encoder.writeFrame(opcode: opcode, fin: fin, reservedBits: compressed ? .rsv1 : [], payload: ByteBuffer(bytes: payload), to: &buffer)
        return buffer
    }

    private static func parse(_ buffer: ByteBuffer, limit: Int) throws(FramesError) -> Int {
        var parser = FrameParser(
            role: .server,
            configuration: .init {
                $0.maxFrameSize = limit
                $0.maxMessageSize = limit
                $0.allowedReservedBits = .rsv1
            }
        )
        var input = buffer
        var payload = 0
        while let event = try parser.next(&input) {
            if case .payload(let chunk) = event { payload += chunk.readableBytes }
        }
        return payload
    }

    // MARK: The wire allowance of compressed messages (item 4)

    @Test func incompressibleDataOfExactlyTheLimitFitsTheCompressedAllowance() throws {
        for size in [0, 1, 125, 1000, 40_000, 1 << 20] {
            let compressed = try Self.compress(Self.random(size))
            #expect(compressed.count <= PerMessageDeflate.maxCompressedSize(forInflated: size), "\(size) → \(compressed.count)")
        }
        #expect(PerMessageDeflate.maxCompressedSize(forInflated: Int.max) == Int.max)
    }

    @Test func aCompressedFrameMayExceedTheLimitOnTheWireAnUncompressedOneMayNot() throws {
        let limit = 40_000
        let compressed = try Self.compress(Self.random(limit))
        #expect(compressed.count > limit)
        #expect(try Self.parse(Self.frame(compressed, compressed: true), limit: limit) == compressed.count)
        #expect(throws: FramesError(.frameTooLarge)) { try Self.parse(Self.frame(Self.random(limit + 1), compressed: false), limit: limit) }
        let beyond = PerMessageDeflate.maxCompressedSize(forInflated: limit) + 1
        #expect(throws: FramesError(.frameTooLarge)) { try Self.parse(Self.frame(Self.random(beyond), compressed: true), limit: limit) }
    }

    @Test func continuationsOfACompressedMessageShareItsAllowance() throws {
        let limit = 1000
        let allowance = PerMessageDeflate.maxCompressedSize(forInflated: limit)
        var two = Self.frame(Self.random(allowance - 10), compressed: true, fin: false)
        var last = Self.frame(Self.random(10), compressed: false, opcode: .continuation)
        two.writeBuffer(&last)
        #expect(try Self.parse(two, limit: limit) == allowance)
        var over = Self.frame(Self.random(allowance - 10), compressed: true, fin: false)
        var more = Self.frame(Self.random(11), compressed: false, opcode: .continuation)
        over.writeBuffer(&more)
        #expect(throws: FramesError(.messageTooLarge)) { try Self.parse(over, limit: limit) }
    }

    // MARK: The reader stops between chunks (item 6)

    @Test func theReaderStopsWhenAChunkIsRefusedAndOffersItAgain() throws {
        let plain = [UInt8](repeating: 7, count: 10_000)
        let compressed = try Self.compress(plain)
        var reader = PerMessageDeflateReader(
            inflater: PerMessageInflater(windowBits: 15, noContextTakeover: true, maxMessageSize: 1 << 20),
            chunkSize: 1000
        )
        try reader.begin(validatingUTF8: false)
        var input = ByteBuffer(bytes: compressed)
        var out: [UInt8] = []
        var offers = 0
        // Takes two chunks, then refuses one: nothing more is inflated.
        #expect(
            !(try reader.append(&input) { chunk in
                offers += 1
                guard offers <= 2 else { return false }
                out += chunk.readableBytesView
                return true
            })
        )
        #expect(out.count == 2000 && reader.inflater.inflatedBytes <= 3000)
        // Offered again first, then the rest.
        #expect(
            try reader.append(&input) { chunk in
                out += chunk.readableBytesView
                return true
            }
        )
        if let last = try reader.finish({ out += $0.readableBytesView }) { out += last.readableBytesView }
        #expect(out == plain)
    }

    // MARK: The writer tells and undoes what it produced (item 5)

    @Test func theWriterReportsWhatItProducedAndAnAbandonedMessageLeavesNoTrace() throws {
        let deflater = PerMessageDeflater(windowBits: 15, noContextTakeover: false)
        var writer = PerMessageDeflateWriter(deflater: deflater, chunkSize: 64 * 1024)
        let noise = Self.random(5000)
        try writer.append(ByteBuffer(bytes: noise)) { _ in Issue.record("no full chunk expected") }
        try writer.flush { _ in Issue.record("no full chunk expected") }
        #expect(writer.producedBytes >= noise.count)
        try writer.abandonMessage()
        #expect(writer.producedBytes == 0)
        // The next message inflates with a peer that never saw the abandoned one (context taken over).
        let text = Array(String(repeating: "wsgate ", count: 500).utf8)
        try writer.append(ByteBuffer(bytes: text)) { _ in }
        let payload = try writer.finish { _ in }
        var reader = PerMessageDeflateReader(inflater: PerMessageInflater(windowBits: 15, noContextTakeover: false, maxMessageSize: 1 << 20))
        try reader.begin(validatingUTF8: true)
        var out: [UInt8] = []
        try reader.append(payload) { out += $0.readableBytesView }
        if let last = try reader.finish({ out += $0.readableBytesView }) { out += last.readableBytesView }
        #expect(out == text)
    }
}
