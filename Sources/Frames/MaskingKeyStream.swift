#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A user-space CSPRNG for masking keys (RFC 6455 §5.3, §10.3): ChaCha20 (RFC 8439) keyed from the
/// kernel's CSPRNG, with fast key erasure and periodic reseeding, as OpenBSD's `arc4random` and Linux's
/// own `get_random_bytes` are built (issue #15, docs/DESIGN-NOTES.md "Masking keys from a user-space
/// ChaCha20").
///
/// - **Seed**: 32 bytes from `getrandom(2)` when made (each event loop makes its own generator).
/// - **Each refill** (``fill(_:)``): block 0 under the current key gives the next key (its first 32
///   bytes; the current key is overwritten before any output is handed out — fast key erasure, so the
///   state in memory never lets anyone recompute output already given out); blocks 1, 2, … under the
///   current key are the output. A key is used for one refill only, so the block counter starts at 0
///   and the nonce is fixed (0).
/// - **Reseed**: after every `reseedInterval` bytes of output (1 MiB by default), 32 fresh bytes from
///   `getrandom(2)` are XORed into the key, so a state that leaked would stop predicting keys after at
///   most that much output; and in a forked child (the process id changed since the last refill), so a
///   child never repeats its parent's keys.
///
/// A class on purpose: a copy would hand out the same keystream twice. Not thread-safe: one per event
/// loop.
public final class MaskingKeyStream {
    /// Output between two reseeds from the kernel: 1 MiB (256 refills of 4 KiB, ≈ 262,000 keys).
    public static let defaultReseedInterval = 1 << 20

    /// The key of the next refill (internal for tests).
    private(set) var key: ChaCha20.Key
    private let reseedInterval: Int
    private var sinceReseed = 0
    /// The process that made the last refill: a fork changes it (internal for tests).
    var processID: pid_t
    private let entropy: (UnsafeMutableRawBufferPointer) -> Void
    /// How many times the key was (re)seeded from `entropy`, the first included (tests).
    public private(set) var seeds = 0

    /// A stream seeded from the kernel CSPRNG (`entropy`: tests give a deterministic one).
    public init(
        reseedInterval: Int = MaskingKeyStream.defaultReseedInterval,
        entropy: @escaping (UnsafeMutableRawBufferPointer) -> Void = MaskingKeyGenerator.systemEntropy
    ) {
        precondition(reseedInterval > 0, "reseed after some output")
        self.reseedInterval = reseedInterval
        self.entropy = entropy
        self.key = ChaCha20.Key(words: (0, 0, 0, 0, 0, 0, 0, 0))
        self.processID = getpid()
        self.reseed()
    }

    /// XORs 32 bytes from `entropy` into the key (the first time: the key is all zero, so it becomes them).
    private func reseed() {
        var fresh: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &fresh) { self.entropy($0) }
        withUnsafeMutableBytes(of: &self.key.words) { key in
            withUnsafeBytes(of: fresh) { fresh in
                for i in 0..<32 { key[i] ^= fresh[i] }
            }
        }
        fresh = (0, 0, 0, 0)
        self.sinceReseed = 0
        self.seeds += 1
    }

    /// Fills `buffer` with keystream (every byte), then moves to a new key. The signature of
    /// ``MaskingKeyGenerator``'s byte source.
    public func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        precondition(buffer.count / 64 < Int(UInt32.max), "one key's blocks are counted in 32 bits")
        let pid = getpid()
        if self.sinceReseed >= self.reseedInterval || pid != self.processID {
            self.processID = pid
            self.reseed()
        }
        let key = self.key
        var block: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &block) { block in
            // Fast key erasure: the next key before any output.
            ChaCha20.block(key: key, counter: 0, nonce: (0, 0, 0), into: block)
            self.key = ChaCha20.Key(bytes: UnsafeRawBufferPointer(block))
            var counter: UInt32 = 1
            var offset = 0
            while buffer.count - offset >= 64 {
                ChaCha20.block(key: key, counter: counter, nonce: (0, 0, 0), into: UnsafeMutableRawBufferPointer(rebasing: buffer[offset...]))
                counter &+= 1
                offset += 64
            }
            if offset < buffer.count {
                ChaCha20.block(key: key, counter: counter, nonce: (0, 0, 0), into: block)
                let tail = UnsafeRawBufferPointer(rebasing: block[..<(buffer.count - offset)])
                UnsafeMutableRawBufferPointer(rebasing: buffer[offset...]).copyMemory(from: tail)
            }
            block.initializeMemory(as: UInt8.self, repeating: 0)
        }
        self.sinceReseed += buffer.count
    }
}
