#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Masking keys for frames the gateway sends as a client (RFC 6455 §5.3, §10.3: the key "MUST be
/// derived from a strong source of entropy" and be fresh and unpredictable for every frame).
///
/// Keys come from the operating system's CSPRNG (`getrandom(2)` on Linux, `getentropy(3)` elsewhere),
/// drawn in batches (256 bytes by default, one system call per 64 frames rather than one per frame), or,
/// for a generator shared by a whole event loop, from a user-space ChaCha20 stream the kernel seeds
/// (``userSpace(batchBytes:reseedInterval:)``, 4 KiB per refill). Each key is used once.
///
/// A class on purpose: copies of a value-type generator would hand out the same keys twice. Not
/// thread-safe: keep one per event loop (or per connection).
public final class MaskingKeyGenerator {
    /// 256 bytes is the most `getentropy` returns in one call: the default, for a per-connection
    /// generator's memory.
    public static let defaultBatchBytes = 256

    @usableFromInline var keys: [UInt32]
    @usableFromInline var next: Int
    @usableFromInline let fill: (UnsafeMutableRawBufferPointer) -> Void

    /// A generator over the system CSPRNG, refilled `batchBytes` at a time (rounded up to whole keys).
    ///
    /// Issue #15: a relay's per-event-loop generator takes 4,096 bytes (1,024 keys) per `getrandom(2)`
    /// call. The kernel's cost per call (the system call, `crng_make_state`) was ≈ 7 % of the relay's
    /// time per small frame toward the upstream with 256-byte batches (BENCHMARKS.md "hot15"); the keys
    /// stay fresh, unpredictable and used once (RFC 6455 §10.3).
    public convenience init(batchBytes: Int = MaskingKeyGenerator.defaultBatchBytes) {
        self.init(batchBytes: batchBytes, fill: MaskingKeyGenerator.systemEntropy)
    }

    /// A generator over a user-space ChaCha20 stream seeded from the system CSPRNG (``MaskingKeyStream``:
    /// fast key erasure per refill, reseeded from `getrandom(2)` every `reseedInterval` bytes), refilled
    /// `batchBytes` at a time: the relay's per-event-loop generator (issue #15, BENCHMARKS.md "rng15";
    /// docs/DESIGN-NOTES.md "Masking keys from a user-space ChaCha20" says why the keys stay as
    /// unpredictable as RFC 6455 §10.3 asks).
    public static func userSpace(
        batchBytes: Int = 4096,
        reseedInterval: Int = MaskingKeyStream.defaultReseedInterval
    ) -> MaskingKeyGenerator {
        MaskingKeyGenerator(batchBytes: batchBytes, fill: MaskingKeyStream(reseedInterval: reseedInterval).fill)
    }

    /// A generator over a caller-supplied byte source (tests use a deterministic one). `fill` must
    /// write every byte of the buffer it is given.
    public init(batchBytes: Int = MaskingKeyGenerator.defaultBatchBytes, fill: @escaping (UnsafeMutableRawBufferPointer) -> Void) {
        precondition(batchBytes > 0, "a batch holds at least one key")
        self.keys = [UInt32](repeating: 0, count: (batchBytes + 3) / 4)
        self.next = self.keys.count
        self.fill = fill
    }

    /// A fresh key, never returned before by this generator's source.
    @inlinable
    public func nextKey() -> MaskingKey {
        if self.next == self.keys.count {
            self.refill()
        }
        defer { self.next += 1 }
        return MaskingKey(packed: self.keys[self.next])
    }

    @usableFromInline
    func refill() {
        let fill = self.fill
        self.keys.withUnsafeMutableBytes { fill($0) }
        self.next = 0
    }

    /// Fills `buffer` from the OS CSPRNG: `getrandom(2)` for the whole buffer where the C library has
    /// it (Linux; a call may return fewer bytes than asked when a signal interrupts it past 256 bytes,
    /// so it loops), else `getentropy(3)` 256 bytes at a time. Failure would mean the kernel cannot
    /// provide entropy, in which case sending predictable keys would break RFC 6455 §10.3, so it traps.
    public static func systemEntropy(_ buffer: UnsafeMutableRawBufferPointer) {
        var offset = 0
        while offset < buffer.count {
            if let getrandom = Self.getrandom {
                let result = getrandom(buffer.baseAddress! + offset, buffer.count - offset, 0)
                if result < 0 {
                    if errno == EINTR { continue }
                    fatalError("getrandom failed: errno \(errno); cannot make masking keys (RFC 6455 §10.3)")
                }
                offset += result
                continue
            }
            let chunk = min(256, buffer.count - offset)
            let result = getentropy(buffer.baseAddress! + offset, chunk)
            if result != 0 {
                if errno == EINTR { continue }
                fatalError("getentropy failed: errno \(errno); cannot make masking keys (RFC 6455 §10.3)")
            }
            offset += chunk
        }
    }

    /// `getrandom(2)` from the C library (glibc ≥ 2.25, musl ≥ 1.1.20), looked up once: the Swift
    /// overlay of the C library does not export `<sys/random.h>`. `nil` elsewhere.
    static let getrandom: (@convention(c) (UnsafeMutableRawPointer?, Int, UInt32) -> Int)? = {
        #if os(Linux)
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "getrandom") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutableRawPointer?, Int, UInt32) -> Int).self)
        #else
        return nil
        #endif
    }()
}
