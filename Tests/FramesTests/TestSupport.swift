import NIOCore
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

/// Runs `input` through a fresh parser in chunks of the given sizes (the rest in one last chunk).
func transcript(
    of input: [UInt8],
    role: FrameParser.Role,
    configuration: FrameParser.Configuration = .init(),
    chunks: [Int] = []
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
            while let event = try parser.next(&buffer) {
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
    return whole
}

/// A small deterministic generator for tests (SplitMix64).
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { self.state = seed }
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
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
