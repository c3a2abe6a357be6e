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

    /// A buffer given back while another copy of it is still alive (as at the end of a send) keeps its
    /// storage: the next take writes into the same bytes, no new allocation (core22's call counts).
    @Test func aBufferGivenBackWhileACopyIsAliveKeepsItsStorage() {
        var pool = BufferPool(bufferSize: 1024, maxFree: 4)
        var buffer = pool.take()
        buffer.writeString("hello")
        let address = buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        do {
            let copy = buffer
            pool.give(consume buffer)
            #expect(copy.readableBytes == 5, "the copy still sees its bytes")
        }
        var again = pool.take()
        again.writeString("world")
        #expect(again.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) } == address)
        #expect(again.readableBytes == 5 && again.readerIndex == 0)
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
