import NIOCore
import Testing

@testable import RelayCore

@Suite struct BufferPoolTests {
    @Test func buffersAreReusedOnceWarm() {
        var pool = BufferPool(bufferSize: 1024, maxFree: 4)
        for _ in 0..<100 {
            var a = pool.take()
            var b = pool.take()
            a.writeString("hello")
            b.writeString("world")
            pool.give(a)
            pool.give(b)
        }
        #expect(pool.allocations == 2)
        #expect(pool.outstanding == 0)
        #expect(pool.freeCount == 2)
        let buffer = pool.take()
        #expect(buffer.readableBytes == 0, "a reused buffer comes back empty")
        #expect(buffer.capacity >= 1024)
    }

    @Test func theFreeListIsBoundedAndGrownBuffersAreDropped() {
        var pool = BufferPool(bufferSize: 64, maxFree: 2)
        let buffers = (0..<4).map { _ in pool.take() }
        for buffer in buffers { pool.give(buffer) }
        #expect(pool.freeCount == 2)
        var grown = pool.take()
        grown.writeBytes([UInt8](repeating: 1, count: 1000))
        pool.give(grown)
        #expect(pool.freeCount == 1, "a buffer that grew past the pool's size is not kept")
    }
}
