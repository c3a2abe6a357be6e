import NIOCore
import TestPeers
import Testing

@testable import Frames

/// What a parser produced from one input, with payload chunks of each frame joined, so that runs over
/// different chunkings of the same bytes can be compared.
enum TranscriptEntry: Hashable, CustomStringConvertible {
    case header(FrameHeader)
    case payload([UInt8])
    case frameEnd
    case control(Opcode, [UInt8])
    case error(FramesError.Code)

    var description: String {
        switch self {
        case .header(let header): "\(header)"
        case .payload(let bytes): "payload(\(bytes.count) bytes)"
        case .frameEnd: "frameEnd"
        case .control(let opcode, let bytes): "control(\(opcode), \(bytes))"
        case .error(let code): "error(\(code))"
        }
    }
}

extension ByteBuffer {
    init(hex: String) {
        let digits = hex.filter { $0.isHexDigit }
        var bytes: [UInt8] = []
        var index = digits.startIndex
        while index < digits.endIndex {
            let next = digits.index(index, offsetBy: 2)
            bytes.append(UInt8(digits[index..<next], radix: 16)!)
            index = next
        }
        self.init(bytes: bytes)
    }
}

/// The parser's three ways of handing out payload bytes.
enum ParserAPI: CaseIterable {
    /// ``FrameParser/next(_:)``: slices of the input.
    case slices
    /// ``FrameParser/nextInPlace(_:)``: left in the input, consumed.
    case inPlace
    /// ``FrameParser/next(_:copyingPayloadTo:)``: copied to an output buffer.
    case copy
    /// Issue #15: ``FrameParser/nextBatch(_:copyingTo:maskingWith:)`` before each `.copy` step.
    case batchCopy
    /// Issue #15: ``FrameParser/nextBatchInPlace(_:)`` before each `.inPlace` step.
    case batchInPlace
}

/// Runs `input` through a fresh parser in chunks of the given sizes (the rest in one last chunk).
func transcript(
    of input: [UInt8],
    role: FrameParser.Role,
    configuration: FrameParser.Configuration = .init(),
    chunks: [Int] = [],
    api: ParserAPI = .slices
) -> [TranscriptEntry] {
    var parser = FrameParser(role: role, configuration: configuration)
    var entries: [TranscriptEntry] = []
    var pieces: [ArraySlice<UInt8>] = []
    var start = 0
    for size in chunks where start < input.count {
        let end = min(input.count, start + size)
        pieces.append(input[start..<end])
        start = end
    }
    if start < input.count || pieces.isEmpty { pieces.append(input[start...]) }
    for piece in pieces {
        var buffer = ByteBuffer(bytes: piece)
        do {
            while true {
                if api == .batchCopy || api == .batchInPlace {
                    entries += batch(&parser, &buffer, api)
                }
                guard let event = try next(&parser, &buffer, api) else { break }
                switch event {
                case .header(let header): entries.append(.header(header))
                case .payload(let chunk):
                    #expect(chunk.readableBytes > 0, "payload events are never empty")
                    if case .payload(let previous) = entries.last {
                        entries[entries.count - 1] = .payload(previous + Array(buffer: chunk))
                    } else {
                        entries.append(.payload(Array(buffer: chunk)))
                    }
                case .frameEnd: entries.append(.frameEnd)
                case .control(let frame): entries.append(.control(frame.opcode, Array(buffer: frame.payload)))
                }
            }
            #expect(buffer.readableBytes == 0, "the parser consumed every byte it was given")
        } catch {
            // How much of the offending frame's payload was delivered before the violation depends on
            // where reads ended (cut-through), so it is left out; earlier frames are compared whole.
            if case .payload = entries.last { entries.removeLast() }
            entries.append(.error(error.code))
            // An error is final: the next call throws it again.
            var empty = ByteBuffer()
            #expect(throws: error) { try parser.next(&empty) }
            return entries
        }
    }
    return entries
}

/// One batch of `parser` (issue #15), as the events of the frames it consumed: those frames parsed again
/// one event at a time by a fresh parser, which must find only whole one-frame messages, as many as the
/// batch counted, and (copying, no keys) write exactly the batch's output: each header without its key,
/// each payload unmasked. The input is never written to.
private func batch(_ parser: inout FrameParser, _ buffer: inout ByteBuffer, _ api: ParserAPI) -> [TranscriptEntry] {
    let start = buffer.readerIndex
    let snapshot = buffer
    var output = ByteBuffer()
    let batch = api == .batchCopy ? parser.nextBatch(&buffer, copyingTo: &output, maskingWith: nil) : parser.nextBatchInPlace(&buffer)
    #expect(storageAddress(buffer) == storageAddress(snapshot), "the input is never written to")
    var consumed = snapshot.getSlice(at: start, length: buffer.readerIndex - start)!
    var again = FrameParser(role: parser.role, configuration: parser.configuration)
    var expected = ByteBuffer()
    var entries: [TranscriptEntry] = []
    var frames = 0
    var bytes = 0
    do {
        while let event = try again.next(&consumed) {
            switch event {
            case .header(let header):
                #expect(header.fin && (header.opcode == .text || header.opcode == .binary) && header.reservedBits.isEmpty)
                var plain = header
                plain.maskingKey = nil
                plain.write(to: &expected)
                entries.append(.header(header))
                frames += 1
                bytes += header.payloadLength
            case .payload(var chunk):
                entries.append(.payload(Array(buffer: chunk)))
                expected.writeBuffer(&chunk)
            case .frameEnd:
                entries.append(.frameEnd)
            case .control(let frame):
                Issue.record("a batch consumed a control frame: \(frame.opcode)")
            }
        }
    } catch {
        Issue.record("a batch consumed an invalid frame: \(error)")
    }
    #expect(consumed.readableBytes == 0 && again.isBetweenMessages, "a batch consumes whole frames only")
    #expect(batch.frames == frames && batch.payloadBytes == bytes)
    if api == .batchCopy { #expect(output == expected) }
    return entries
}

/// One step of `parser` through `api`, with each payload chunk as a buffer of its bytes.
private func next(_ parser: inout FrameParser, _ buffer: inout ByteBuffer, _ api: ParserAPI) throws(FramesError) -> FrameParser.Event? {
    switch api {
    case .slices:
        return try parser.next(&buffer)
    case .inPlace, .batchInPlace:
        let start = buffer.readerIndex
        // Another reference to the storage: a write to it would copy it and move `buffer`'s bytes.
        let snapshot = buffer
        defer {
            if parser.role == .client {
                #expect(storageAddress(buffer) == storageAddress(snapshot), "unmasked input is never written to")
            }
        }
        switch try parser.nextInPlace(&buffer) {
        case nil: return nil
        case .header(let header): return .header(header)
        case .payload(let count):
            #expect(buffer.readerIndex - start == count, "a payload chunk is consumed")
            let end = buffer.readerIndex
            buffer.moveReaderIndex(to: start)
            defer { buffer.moveReaderIndex(to: end) }
            return .payload(buffer.getSlice(at: start, length: count)!)
        case .frameEnd: return .frameEnd
        case .control(let frame): return .control(frame)
        }
    case .copy, .batchCopy:
        var output = ByteBuffer()
        let snapshot = buffer
        defer { #expect(storageAddress(buffer) == storageAddress(snapshot), "the input is never written to") }
        switch try parser.next(&buffer, copyingPayloadTo: &output) {
        case nil: return nil
        case .header(let header): return .header(header)
        case .payload(let count):
            #expect(output.readableBytes == count, "a payload chunk is appended to the output")
            return .payload(output)
        case .frameEnd: return .frameEnd
        case .control(let frame): return .control(frame)
        }
    }
}

/// Where `buffer`'s storage is: it moves when a write copies shared storage.
private func storageAddress(_ buffer: ByteBuffer) -> UnsafeRawPointer? {
    buffer.withVeryUnsafeBytes { $0.baseAddress }
}

/// Parses `input` whole, one byte at a time, split in two at every byte boundary (or at a sample of
/// them for large inputs) and in random chunkings, expects the same transcript from each, and returns it.
@discardableResult
func expectSameUnderAllSplits(
    _ input: [UInt8],
    role: FrameParser.Role,
    configuration: FrameParser.Configuration = .init(),
    sourceLocation: SourceLocation = #_sourceLocation
) -> [TranscriptEntry] {
    let whole = transcript(of: input, role: role, configuration: configuration)
    func check(_ chunks: [Int], _ label: @autoclosure () -> String) {
        let other = transcript(of: input, role: role, configuration: configuration, chunks: chunks)
        #expect(other == whole, "\(label()) differs from whole input", sourceLocation: sourceLocation)
    }
    check(Array(repeating: 1, count: input.count), "one byte at a time")
    let splitPoints: [Int] =
        input.count <= 4096
        ? Array(0...input.count)
        : Array(0...300) + Array(stride(from: 301, to: input.count - 300, by: 997)) + Array((input.count - 300)...input.count)
    for split in splitPoints {
        check([split], "split at \(split)")
    }
    var random = SplitMix64(seed: UInt64(input.count) &* 0x9E37_79B9_7F4A_7C15 &+ 1)
    for round in 0..<32 {
        var chunks: [Int] = []
        var total = 0
        while total < input.count {
            let size = Int(random.next() % UInt64(round % 4 == 0 ? 7 : 300)) + 1
            chunks.append(size)
            total += size
        }
        check(chunks, "random chunking \(round)")
    }
    // The relay's ways of taking payloads give the same transcript (a sample of the chunkings above).
    for api in [ParserAPI.inPlace, .copy, .batchCopy, .batchInPlace] {
        #expect(transcript(of: input, role: role, configuration: configuration, api: api) == whole, "\(api), whole", sourceLocation: sourceLocation)
        let ones = Array(repeating: 1, count: input.count)
        #expect(
            transcript(of: input, role: role, configuration: configuration, chunks: ones, api: api) == whole,
            "\(api), one byte at a time",
            sourceLocation: sourceLocation
        )
        for round in 0..<8 {
            var chunks: [Int] = []
            var total = 0
            while total < input.count {
                let size = Int(random.next() % UInt64(round % 4 == 0 ? 7 : 300)) + 1
                chunks.append(size)
                total += size
            }
            #expect(
                transcript(of: input, role: role, configuration: configuration, chunks: chunks, api: api) == whole,
                "\(api), random chunking \(round)",
                sourceLocation: sourceLocation
            )
        }
    }
    return whole
}

/// A deterministic key source for ``MaskingKeyGenerator`` in tests.
func deterministicKeys(seed: UInt64) -> MaskingKeyGenerator {
    var random = SplitMix64(seed: seed)
    return MaskingKeyGenerator { buffer in
        for index in buffer.indices { buffer[index] = UInt8(truncatingIfNeeded: random.next()) }
    }
}

/// The bytes of one frame as a test writes them by hand: header fields as given, payload masked with
/// `key` when there is one. `lengthBytes` forces a (possibly non-minimal) length encoding.
func frame(
    _ opcode: UInt8,
    fin: Bool = true,
    rsv: UInt8 = 0,
    key: [UInt8]? = nil,
    payload: [UInt8] = [],
    lengthBytes: Int? = nil
) -> [UInt8] {
    var bytes: [UInt8] = [(fin ? 0x80 : 0) | (rsv << 4) | opcode]
    let maskBit: UInt8 = key == nil ? 0 : 0x80
    let encoding = lengthBytes ?? (payload.count <= 125 ? 0 : (payload.count <= 0xFFFF ? 2 : 8))
    switch encoding {
    case 0: bytes.append(maskBit | UInt8(payload.count))
    case 2: bytes += [maskBit | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
    default:
        bytes.append(maskBit | 127)
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8((payload.count >> shift) & 0xFF)) }
    }
    if let key {
        bytes += key
        bytes += payload.enumerated().map { $0.element ^ key[$0.offset % 4] }
    } else {
        bytes += payload
    }
    return bytes
}

let testKey: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]

extension FrameParser.Configuration {
    static let deflate = FrameParser.Configuration { $0.allowedReservedBits = [.rsv1] }
}
