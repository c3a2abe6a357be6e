import NIOCore
import TestPeers
import Testing

@testable import Frames

@Suite struct MaskingTests {
    private func naive(_ bytes: [UInt8], key: MaskingKey, offset: Int) -> [UInt8] {
        bytes.enumerated().map { $0.element ^ key[($0.offset + offset) % 4] }
    }

    @Test func matchesTheDefinitionAtEveryOffsetAndLengthUpTo300() {
        var random = SplitMix64(seed: 7)
        let key = MaskingKey(0x12, 0x34, 0x56, 0x78)
        for length in 0...300 {
            let plain = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            for offset in 0..<8 {
                var bytes = plain
                bytes.withUnsafeMutableBytes { key.apply(to: $0, offset: offset) }
                #expect(bytes == naive(plain, key: key, offset: offset), "length \(length) offset \(offset)")
                bytes.withUnsafeMutableBytes { key.apply(to: $0, offset: offset) }
                #expect(bytes == plain, "round trip, length \(length) offset \(offset)")
            }
        }
    }

    @Test(arguments: [65536, 1 << 20, (1 << 20) + 13])
    func largeBuffersInOnePassOrInPieces(length: Int) {
        var random = SplitMix64(seed: UInt64(length))
        let key = MaskingKey(packed: UInt32(truncatingIfNeeded: random.next()))
        let plain = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        var whole = ByteBuffer(bytes: plain)
        key.apply(to: &whole)
        #expect(Array(buffer: whole) == naive(plain, key: key, offset: 0))
        // Masking in uneven pieces with running offsets gives the same bytes.
        var pieces = plain
        pieces.withUnsafeMutableBytes { raw in
            var start = 0
            while start < raw.count {
                let end = min(raw.count, start + Int(random.next() % 5000) + 1)
                key.apply(to: UnsafeMutableRawBufferPointer(rebasing: raw[start..<end]), offset: start)
                start = end
            }
        }
        #expect(pieces == Array(buffer: whole))
    }

    @Test func appliesToTheReadableBytesOfABufferOnly() {
        var buffer = ByteBuffer(bytes: [1, 2, 3, 4, 5, 6])
        buffer.moveReaderIndex(forwardBy: 2)
        MaskingKey(0xFF, 0xFF, 0xFF, 0xFF).apply(to: &buffer, offset: 1)
        buffer.moveReaderIndex(to: 0)
        #expect(Array(buffer: buffer) == [1, 2, ~3, ~4, ~5, ~6])
    }

    @Test func keyRotationAndXor() {
        let key = MaskingKey(1, 2, 3, 4)
        #expect(key.rotated(by: 1) == MaskingKey(2, 3, 4, 1))
        #expect(key.rotated(by: 6) == MaskingKey(3, 4, 1, 2))
        #expect((key ^ key).packed == 0)
        #expect(key.description == "01020304")
    }

    @Test func generatorHandsOutEachSourceKeyOnceAndRefillsEvery64Keys() {
        var refills = 0
        var counter: UInt8 = 0
        let generator = MaskingKeyGenerator { buffer in
            refills += 1
            for index in buffer.indices {
                buffer[index] = counter
                counter &+= 1
            }
        }
        var keys: [MaskingKey] = []
        for _ in 0..<1000 { keys.append(generator.nextKey()) }
        #expect(refills == 16)  // 1000 keys / 64 per 256-byte batch, rounded up
        #expect(keys[0] == MaskingKey(0, 1, 2, 3))
        #expect(keys[1] == MaskingKey(4, 5, 6, 7))
        #expect(keys[64] == MaskingKey(0, 1, 2, 3))  // the counter wrapped after 256 bytes
    }

    /// Issue #15: a relay's per-loop generator takes 4 KiB per refill (1,024 keys per system call).
    @Test func generatorWithA4KiBBatchRefillsEvery1024Keys() {
        var refills = 0
        var sizes: Set<Int> = []
        let generator = MaskingKeyGenerator(batchBytes: 4096) { buffer in
            refills += 1
            sizes.insert(buffer.count)
            for index in buffer.indices { buffer[index] = UInt8(truncatingIfNeeded: index ^ refills) }
        }
        for _ in 0..<2049 { _ = generator.nextKey() }
        #expect(refills == 3)
        #expect(sizes == [4096])
    }

    /// Catalog P-14: the system key generator (CSPRNG) hands out fresh, non-repeating keys, with the
    /// default batch and with the relay's 4 KiB batch (one `getrandom(2)` call).
    @Test(arguments: [MaskingKeyGenerator.defaultBatchBytes, 4096])
    func systemGeneratorKeysAreFreshAndUnpredictable(batchBytes: Int) {
        let generator = MaskingKeyGenerator(batchBytes: batchBytes)
        let keys = (0..<4096).map { _ in generator.nextKey().packed }
        // 4,096 draws from 2^32 values: a repeat has probability < 0.2 %; more than 2 would mean a broken source.
        #expect(Set(keys).count >= keys.count - 2)
        // Every bit position takes both values.
        let ored = keys.reduce(0, |)
        let anded = keys.reduce(UInt32.max, &)
        #expect(ored == UInt32.max && anded == 0)
    }
}

@Suite struct MaskingCopyTests {
    @Test func copyingMatchesMaskingInPlaceAtEveryOffsetAndLengthUpTo300() {
        var random = SplitMix64(seed: 11)
        for key in [MaskingKey(0x12, 0x34, 0x56, 0x78), MaskingKey(packed: 0)] {
            for length in 0...300 {
                let plain = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                for offset in 0..<8 {
                    var expected = plain
                    expected.withUnsafeMutableBytes { key.apply(to: $0, offset: offset) }
                    // One spare byte at the end shows that nothing past `length` is written.
                    var copy = [UInt8](repeating: 0xAA, count: length + 1)
                    plain.withUnsafeBytes { source in
                        copy.withUnsafeMutableBytes { key.apply(from: source, to: $0, offset: offset) }
                    }
                    #expect(Array(copy.prefix(length)) == expected, "key \(key) length \(length) offset \(offset)")
                    #expect(copy.last == 0xAA)
                }
            }
        }
    }
}
