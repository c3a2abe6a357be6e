import NIOCore

/// The I/O buffers of one event loop (issue #15 part 2). A connection takes a buffer only while bytes are in
/// flight — for one read and its processing, or while a write waits for the socket — and gives it back at
/// once, so an idle connection holds no buffer (as HAProxy: its memory per idle connection is its state
/// struct and the kernel's socket). Buffers are reused, so a busy loop allocates none after warm-up.
///
/// One loop owns a pool; it is not thread-safe.
public struct BufferPool {
    /// The capacity of every buffer handed out.
    public let bufferSize: Int
    /// At most this many free buffers are kept; more are released to the allocator.
    public let maxFree: Int
    private var free: [ByteBuffer] = []
    private let allocator = ByteBufferAllocator()
    /// Buffers taken and not yet given back.
    public private(set) var outstanding: Int = 0
    /// Buffers ever allocated (for tests and the profile: stays flat once warm).
    public private(set) var allocations: Int = 0

    public init(bufferSize: Int = 16 * 1024, maxFree: Int = 256) {
        precondition(bufferSize > 0 && maxFree >= 0)
        self.bufferSize = bufferSize
        self.maxFree = maxFree
        self.free.reserveCapacity(maxFree)
    }

    /// Free buffers held by the pool.
    public var freeCount: Int { self.free.count }

    /// An empty buffer of at least ``bufferSize`` bytes.
    public mutating func take() -> ByteBuffer {
        self.outstanding += 1
        if let buffer = self.free.popLast() { return buffer }
        self.allocations += 1
        return self.allocator.buffer(capacity: self.bufferSize)
    }

    /// Returns a buffer taken from this pool. It is cleared; one that grew past ``bufferSize`` (a write that
    /// needed more) or arrives when the pool is full is dropped.
    public mutating func give(_ buffer: consuming ByteBuffer) {
        self.outstanding -= 1
        guard self.free.count < self.maxFree, buffer.capacity == self.bufferSize else { return }
        buffer.clear()
        self.free.append(buffer)
    }
}
