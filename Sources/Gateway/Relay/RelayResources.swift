import Frames
import NIOCore
import NIOPosix

/// What every ``RelaySession`` on one event-loop thread shares, so that no connection pays for it and
/// no frame pays a thread-local lookup: the masking-key generator and the buffers client → upstream
/// bytes are remasked into. One thread, no locks.
///
/// The keys (issue #15): a user-space ChaCha20 stream seeded from `getrandom(2)` when the loop first
/// relays, 4 KiB (1,024 keys) per refill, fast key erasure, reseeded from the kernel every 1 MiB
/// (``MaskingKeyGenerator/userSpace(batchBytes:reseedInterval:)``; BENCHMARKS.md "rng15",
/// docs/DESIGN-NOTES.md "Masking keys from a user-space ChaCha20"). Before: 4 KiB per `getrandom(2)`
/// call (BENCHMARKS.md "hot15").
final class RelayResources {
    let maskingKeys: MaskingKeyGenerator
    /// One generator per event loop, so its 4 KiB is paid once per thread, not per connection.
    static let maskingKeyBatchBytes = 4096

    /// `maskingKeys`: the user-space ChaCha20 stream by default; tests give a deterministic one.
    init(maskingKeys: MaskingKeyGenerator = MaskingKeyGenerator.userSpace(batchBytes: RelayResources.maskingKeyBatchBytes)) {
        self.maskingKeys = maskingKeys
    }

    /// Output buffers for reads from clients. One is reused when the upstream socket has taken all of
    /// its last contents (nothing else references it); NIO reads up to 4 times before the flush, so up to
    /// 4 are kept. Each grows to the largest read (64 KiB with NIO's default receive allocator).
    private var outputBuffers: [ByteBuffer] = []
    private static let maxOutputBuffers = 4
    private let allocator = ByteBufferAllocator()

    /// A buffer to append one read's output to: empty, uniquely owned, with at least
    /// `minimumWritableBytes` of room.
    func takeOutputBuffer(minimumWritableBytes: Int) -> ByteBuffer {
        // Checked in place: a copy taken to check it would be a second reference.
        for index in self.outputBuffers.indices where self.outputBuffers[index].modifyIfUniquelyOwned({ _ in }) != nil {
            var buffer = self.outputBuffers.remove(at: index)
            buffer.clear()
            buffer.reserveCapacity(minimumWritableBytes: minimumWritableBytes)
            return buffer
        }
        // Rounded up to 2 KiB so the small reads of request/response traffic reuse one size.
        return self.allocator.buffer(capacity: max(minimumWritableBytes, 2048))
    }

    /// Gives a buffer from ``takeOutputBuffer(minimumWritableBytes:)`` back once its bytes are written.
    func returnOutputBuffer(_ buffer: ByteBuffer) {
        guard self.outputBuffers.count < Self.maxOutputBuffers else { return }
        self.outputBuffers.append(buffer)
    }

    /// The receive-buffer sizing of both legs' channels. NIO keeps each channel's last read buffer for
    /// the next read, so an idle connection holds two of them: NIO's default starts them at 2,048
    /// bytes (4 KiB of the ~10 KiB an idle relayed connection cost). 512 fits a typical upgrade
    /// request or 101 response; each read that fills the buffer doubles the next one, up to NIO's
    /// 64 KiB, so bulk traffic pays a few extra small reads at its start. Small reads shrink it back.
    static let receiveAllocator = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536)

    /// This thread's resources, made on first use.
    static var current: RelayResources {
        if let resources = threadResources.currentValue { return resources }
        let resources = RelayResources()
        threadResources.currentValue = resources
        return resources
    }

    /// Each thread sees only its own value, so sharing the variable across threads is safe.
    nonisolated(unsafe) private static let threadResources = ThreadSpecificVariable<RelayResources>()
}
