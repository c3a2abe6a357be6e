import TestPeers
import Testing

@testable import Frames

/// An independent reference written from the RFC 3629 §4 table: the index of the first byte after
/// which `bytes` can no longer be the prefix of valid UTF-8, or nil; and whether it ends on a boundary.
private func reference(_ bytes: [UInt8]) -> (firstFailure: Int?, complete: Bool) {
    var index = 0
    while index < bytes.count {
        let lead = bytes[index]
        let ranges: [ClosedRange<UInt8>]
        switch lead {
        case 0x00...0x7F: ranges = []
        case 0xC2...0xDF: ranges = [0x80...0xBF]
        case 0xE0: ranges = [0xA0...0xBF, 0x80...0xBF]
        case 0xE1...0xEC, 0xEE...0xEF: ranges = [0x80...0xBF, 0x80...0xBF]
        case 0xED: ranges = [0x80...0x9F, 0x80...0xBF]
        case 0xF0: ranges = [0x90...0xBF, 0x80...0xBF, 0x80...0xBF]
        case 0xF1...0xF3: ranges = [0x80...0xBF, 0x80...0xBF, 0x80...0xBF]
        case 0xF4: ranges = [0x80...0x8F, 0x80...0xBF, 0x80...0xBF]
        default: return (index, false)
        }
        for (offset, range) in ranges.enumerated() {
            let position = index + 1 + offset
            if position == bytes.count { return (nil, false) }
            if !range.contains(bytes[position]) { return (position, false) }
        }
        index += 1 + ranges.count
    }
    return (nil, true)
}

/// Feeds `bytes` in the given chunks; returns the index of the chunk that failed, or nil.
private func failingChunk(_ bytes: [UInt8], chunks: [Int]) -> (chunk: Int?, complete: Bool) {
    var validator = UTF8Validator()
    var start = 0
    for (number, size) in chunks.enumerated() {
        let end = min(bytes.count, start + size)
        let ok = bytes[start..<end].withUnsafeBytes { validator.feed($0) }
        if !ok { return (number, false) }
        start = end
    }
    return (nil, validator.isComplete)
}

@Suite struct UTF8ValidatorTests {
    /// Byte at a time, the validator fails exactly at the reference's first failing byte.
    private func expectFailsFastLikeTheReference(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        let expected = reference(bytes)
        let actual = failingChunk(bytes, chunks: Array(repeating: 1, count: bytes.count))
        #expect(actual.chunk == expected.firstFailure, "\(bytes.map { String($0, radix: 16) })", sourceLocation: sourceLocation)
        if expected.firstFailure == nil {
            #expect(actual.complete == expected.complete, "\(bytes)", sourceLocation: sourceLocation)
        }
    }

    @Test func everyOneAndTwoByteSequence() {
        for a in 0...255 {
            expectFailsFastLikeTheReference([UInt8(a)])
            for b in 0...255 {
                expectFailsFastLikeTheReference([UInt8(a), UInt8(b)])
            }
        }
    }

    @Test func threeAndFourByteSequencesAtEveryRangeBoundary() {
        let edges: [UInt8] = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xED, 0xF0, 0xF4, 0xF5, 0xFF]
        for lead in UInt8(0xE0)...UInt8(0xF7) {
            for b in edges {
                for c in edges {
                    expectFailsFastLikeTheReference([lead, b, c])
                    for d in edges { expectFailsFastLikeTheReference([lead, b, c, d]) }
                }
            }
        }
    }

    @Test func knownBadSequences() {
        // Surrogates, overlongs, above U+10FFFF, stray continuation, invalid bytes.
        let cases: [[UInt8]] = [
            [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF], [0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xF0, 0x80, 0x80, 0xAF],
            [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80], [0x80], [0xBF], [0xFE], [0xFF], [0x61, 0xC3, 0x28],
        ]
        for bytes in cases {
            #expect(reference(bytes).firstFailure != nil)
            expectFailsFastLikeTheReference(bytes)
            #expect(!bytes.withUnsafeBytes { UTF8Validator.isValid($0) })
        }
    }

    @Test func randomTextSplitAnywhereAgreesWithTheStandardLibrary() {
        var random = SplitMix64(seed: 42)
        let scalars: [[UInt8]] = ["a", "é", "€", "🚀", "ж", "中", "\u{10FFFF}", "\u{0}"].map { Array($0.utf8) }
        for _ in 0..<3000 {
            var bytes: [UInt8] = []
            for _ in 0..<Int(random.next() % 12) {
                if random.next() % 8 == 0 {
                    bytes.append(UInt8(truncatingIfNeeded: random.next()))
                } else {
                    bytes += scalars[Int(random.next() % UInt64(scalars.count))]
                }
            }
            let valid = String(validating: bytes, as: UTF8.self) != nil
            var chunks: [Int] = []
            var total = 0
            while total < bytes.count {
                let size = Int(random.next() % 5) + 1
                chunks.append(size)
                total += size
            }
            let result = failingChunk(bytes, chunks: chunks)
            #expect((result.chunk == nil && result.complete) == valid, "\(bytes)")
            if let failure = reference(bytes).firstFailure {
                // The failing chunk is the one that holds the first bad byte.
                var end = 0
                var chunkOfFailure = 0
                for (number, size) in chunks.enumerated() {
                    end += size
                    if failure < end {
                        chunkOfFailure = number
                        break
                    }
                }
                #expect(result.chunk == chunkOfFailure, "\(bytes) \(chunks)")
            }
            #expect(bytes.withUnsafeBytes { UTF8Validator.isValid($0) } == valid)
        }
    }

    @Test func aScalarSplitOverFourChunksIsCarried() {
        #expect(failingChunk([0xF0, 0x9F, 0x9A, 0x80], chunks: [1, 1, 1, 1]) == (nil, true))
        #expect(failingChunk([0x61, 0xF0, 0x9F, 0x9A], chunks: [2, 1, 1]) == (nil, false))
        #expect(failingChunk([0xF0, 0x9F, 0x41], chunks: [1, 1, 1]).chunk == 2)
    }

    @Test func resetForgetsAnUnfinishedScalar() {
        var validator = UTF8Validator()
        #expect([UInt8(0xE2)].withUnsafeBytes { validator.feed($0) })
        #expect(!validator.isComplete)
        validator.reset()
        #expect(validator.isComplete)
        #expect([UInt8(0x41)].withUnsafeBytes { validator.feed($0) })
    }
}

@Suite struct UTF8ValidatorASCIITests {
    /// The ASCII shortcut must agree with the full check wherever the first non-ASCII byte falls
    /// (inside or after a 32-byte block, in the 8-byte steps, in the tail).
    @Test func aNonASCIIByteAnywhereIsSeen() {
        for length in 1...80 {
            for position in 0..<length {
                var bytes = [UInt8](repeating: 0x61, count: length)
                bytes[position] = 0xFF
                var validator = UTF8Validator()
                #expect(!bytes.withUnsafeBytes { validator.feed($0) }, "0xFF at \(position) of \(length)")
                bytes[position] = 0x7F
                validator = UTF8Validator()
                #expect(bytes.withUnsafeBytes { validator.feed($0) }, "ASCII, length \(length)")
            }
        }
    }
}
