import Testing

@testable import Frames

/// The relay's user-space CSPRNG for masking keys (issue #15): ChaCha20 keyed from the kernel, fast key
/// erasure per refill, reseeded from the kernel.
@Suite struct MaskingKeyStreamTests {
    /// A deterministic entropy source: the bytes 1, 2, 3, … across calls, counting its calls.
    final class CountingEntropy {
        var calls = 0
        var next: UInt8 = 1

        func fill(_ buffer: UnsafeMutableRawBufferPointer) {
            self.calls += 1
            for index in buffer.indices {
                buffer[index] = self.next
                self.next &+= 1
            }
        }
    }

    static func refill(_ stream: MaskingKeyStream, bytes: Int = 4096) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: bytes)
        output.withUnsafeMutableBytes { stream.fill($0) }
        return output
    }

    /// Blocks `counters` under `key`, nonce 0, in order.
    static func keystream(_ key: ChaCha20.Key, counters: ClosedRange<UInt32>) -> [UInt8] {
        counters.flatMap { ChaCha20Tests.block(key, counter: $0) }
    }

    static func xor(_ key: ChaCha20.Key, _ bytes: [UInt8]) -> ChaCha20.Key {
        var words = key.words
        withUnsafeMutableBytes(of: &words) { for i in 0..<32 { $0[i] ^= bytes[i] } }
        return ChaCha20.Key(words: words)
    }

    /// Fast key erasure: a refill's output is blocks 1, 2, … under the current key, and the key is then
    /// the first 32 bytes of block 0 under it (never handed out); the next refill uses that key.
    @Test func eachRefillUsesItsKeyOnceAndDerivesTheNextFromBlockZero() {
        let entropy = CountingEntropy()
        let stream = MaskingKeyStream(entropy: entropy.fill)
        let seed = ChaCha20Tests.key((1...32).map { UInt8($0) })
        #expect(stream.key == seed)

        let first = Self.refill(stream)
        #expect(first == Self.keystream(seed, counters: 1...64))
        let second = ChaCha20Tests.key(Array(ChaCha20Tests.block(seed, counter: 0).prefix(32)))
        #expect(stream.key == second)
        #expect(!first.starts(with: ChaCha20Tests.block(seed, counter: 0).prefix(32)))

        // A refill that is not a whole number of blocks ends with a prefix of the next block.
        #expect(Self.refill(stream, bytes: 100) == Array(Self.keystream(second, counters: 1...2).prefix(100)))
        #expect(entropy.calls == 1)
    }

    /// The stream never repeats across refills: 256 refills of 4 KiB (1 MiB, the reseed interval) hold
    /// no repeated 8-byte word (a repeat among 131,072 random words has probability ≈ 2^-35).
    @Test func outputDoesNotRepeatAcrossRefills() {
        let stream = MaskingKeyStream(entropy: CountingEntropy().fill)
        var words = Set<UInt64>()
        var count = 0
        for _ in 0..<256 {
            Self.refill(stream).withUnsafeBytes { bytes in
                for offset in stride(from: 0, to: bytes.count, by: 8) {
                    words.insert(bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                    count += 1
                }
            }
        }
        #expect(count == 131_072)
        #expect(words.count == count)
    }

    /// After `reseedInterval` bytes of output, the next refill first XORs 32 fresh bytes from the
    /// kernel into its key.
    @Test func reseedsFromTheEntropySourceAfterTheInterval() {
        let entropy = CountingEntropy()
        let stream = MaskingKeyStream(reseedInterval: 8192, entropy: entropy.fill)
        _ = Self.refill(stream)
        _ = Self.refill(stream)
        #expect(entropy.calls == 1)
        let erased = stream.key
        let third = Self.refill(stream)
        #expect(entropy.calls == 2)
        #expect(stream.seeds == 2)
        // The fresh bytes were 33…64 (the seed took 1…32).
        let reseeded = Self.xor(erased, (33...64).map { UInt8($0) })
        #expect(third == Self.keystream(reseeded, counters: 1...64))
        _ = Self.refill(stream)
        #expect(entropy.calls == 2)
        _ = Self.refill(stream)
        #expect(entropy.calls == 3)
    }

    /// The default interval is 1 MiB: 256 refills of 4 KiB take one seed, the 257th reseeds.
    @Test func defaultIntervalIsOneMebibyte() {
        let entropy = CountingEntropy()
        let stream = MaskingKeyStream(entropy: entropy.fill)
        for _ in 0..<256 { _ = Self.refill(stream) }
        #expect(entropy.calls == 1)
        _ = Self.refill(stream)
        #expect(entropy.calls == 2)
    }

    /// A forked child (another process id than at the last refill) reseeds before its first refill, so
    /// it never repeats its parent's keys.
    @Test func reseedsWhenTheProcessChanged() {
        let entropy = CountingEntropy()
        let stream = MaskingKeyStream(entropy: entropy.fill)
        _ = Self.refill(stream)
        stream.processID &+= 1
        _ = Self.refill(stream)
        #expect(entropy.calls == 2)
    }

    /// Two generators seeded from the kernel produce different keys (each event loop has its own).
    @Test func twoSystemStreamsDiffer() {
        let one = MaskingKeyStream()
        let two = MaskingKeyStream()
        #expect(one.key != two.key)
        #expect(Self.refill(one, bytes: 64) != Self.refill(two, bytes: 64))
    }

    /// The relay's generator: user-space ChaCha20 seeded by `getrandom(2)`, 4 KiB per refill.
    /// Catalog P-14: fresh keys, no more repeats than chance, every bit both ways, no counter pattern.
    @Test func userSpaceGeneratorKeysAreFreshAndUnpredictable() {
        let generator = MaskingKeyGenerator.userSpace()
        let keys = (0..<4096).map { _ in generator.nextKey().packed }
        #expect(Set(keys).count >= keys.count - 2)
        #expect(keys.reduce(0, |) == UInt32.max && keys.reduce(UInt32.max, &) == 0)
        let steps = Set(zip(keys, keys.dropFirst()).map { $1 &- $0 })
        #expect(steps.count >= keys.count - 3)
    }
}
