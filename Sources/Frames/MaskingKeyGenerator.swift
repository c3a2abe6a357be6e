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
/// Keys come from the operating system's CSPRNG (`getentropy(3)`, which is `getrandom(2)` on Linux),
/// drawn in batches of 256 bytes so that there is one system call per 64 frames rather than one per
/// frame. Each key is used once.
///
/// A class on purpose: copies of a value-type generator would hand out the same keys twice. Not
/// thread-safe: keep one per event loop (or per connection).
public final class MaskingKeyGenerator {
    /// 256 bytes is the most `getentropy` returns in one call.
    @usableFromInline static let batchBytes = 256

    @usableFromInline var keys: [UInt32]
    @usableFromInline var next: Int
    @usableFromInline let fill: (UnsafeMutableRawBufferPointer) -> Void

    /// A generator over the system CSPRNG.
    public convenience init() {
        self.init(fill: MaskingKeyGenerator.systemEntropy)
    }

    /// A generator over a caller-supplied byte source (tests use a deterministic one). `fill` must
    /// write every byte of the buffer it is given.
    public init(fill: @escaping (UnsafeMutableRawBufferPointer) -> Void) {
        self.keys = [UInt32](repeating: 0, count: Self.batchBytes / 4)
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

    /// Fills `buffer` from the OS CSPRNG. Failure would mean the kernel cannot provide entropy, in which
    /// case sending predictable keys would break RFC 6455 §10.3, so it traps.
    static func systemEntropy(_ buffer: UnsafeMutableRawBufferPointer) {
        var offset = 0
        while offset < buffer.count {
            let chunk = min(256, buffer.count - offset)
            let result = getentropy(buffer.baseAddress! + offset, chunk)
            if result != 0 {
                if errno == EINTR { continue }
                fatalError("getentropy failed: errno \(errno); cannot make masking keys (RFC 6455 §10.3)")
            }
            offset += chunk
        }
    }
}
