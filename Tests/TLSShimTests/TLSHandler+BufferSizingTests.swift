import NIOCore
import NIOEmbedded
import Testing

@testable import TLSShim

/// Issue #11 §3: the plaintext buffers the TLS handler passes up are sized to the data, so what a
/// layer above keeps (a partial request head, a queued slice) costs what it holds, not 64 KiB.
@Suite struct TLSHandlerBufferSizingTests {
    /// Keeps every buffer it is given (as an HTTP decoder keeps a partial head) and notes capacities.
    final class Keeper: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var kept: [ByteBuffer] = []
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            self.kept.append(Self.unwrapInboundIn(data))
        }
        var capacities: [Int] { self.kept.map(\.capacity) }
        var bytes: Int { self.kept.map(\.readableBytes).reduce(0, +) }
    }

    @Test(arguments: [1, 7])
    func aOneByteRecordIsNotDeliveredIn64KiB(chunk: Int) throws {
        let pair = try InMemoryPair(server: TLSHandlerTests.serverContext, client: TLSHandlerTests.clientContext)
        let keeper = Keeper()
        try pair.server.pipeline.syncOperations.addHandler(keeper, position: .after(pair.serverHandler))
        try pair.handshake()
        for byte: UInt8 in [71, 69, 84] {  // "GET", one record each, like a slow client typing
            pair.client.writeAndFlush(ByteBuffer(bytes: [byte]), promise: nil)
            try pair.interact(chunk: chunk)
        }
        #expect(keeper.bytes == 3)
        #expect(keeper.capacities.allSatisfy { $0 <= TLSHandler.minimumReadChunk }, "\(keeper.capacities)")
        #expect(try pair.finish())
    }

    /// Many tiny records in one read (an upstream sending small messages to a client that stopped
    /// reading): what is held stays within twice what was delivered.
    @Test func manySmallRecordsInOneReadAreHeldAtMostTwice() throws {
        let pair = try InMemoryPair(server: TLSHandlerTests.serverContext, client: TLSHandlerTests.clientContext)
        let keeper = Keeper()
        try pair.server.pipeline.syncOperations.addHandler(keeper, position: .after(pair.serverHandler))
        try pair.handshake()
        for index in 0..<2_000 { pair.client.write(ByteBuffer(bytes: [UInt8(truncatingIfNeeded: index), 1, 2]), promise: nil) }
        pair.client.flush()  // coalesced: one ciphertext buffer of 2,000 records
        try pair.interact()
        #expect(keeper.bytes == 6_000)
        let held = keeper.capacities.reduce(0, +)
        #expect(held <= 2 * keeper.bytes + TLSHandler.minimumReadChunk, "held \(held) for \(keeper.bytes)")
        #expect(try pair.finish())
    }

    @Test(arguments: [16_384, 100_000, 1 << 20])
    func bulkDataStillArrivesInLargeBuffersAndWhole(size: Int) throws {
        let pair = try InMemoryPair(server: TLSHandlerTests.serverContext, client: TLSHandlerTests.clientContext)
        let keeper = Keeper()
        try pair.server.pipeline.syncOperations.addHandler(keeper, position: .after(pair.serverHandler))
        try pair.handshake()
        pair.client.writeAndFlush(patternBuffer(size), promise: nil)
        try pair.interact()
        var received = ByteBuffer()
        for var buffer in keeper.kept { received.writeBuffer(&buffer) }
        #expect(received == patternBuffer(size))
        #expect(keeper.capacities.max()! >= 16_000 && keeper.capacities.max()! <= TLSHandler.readChunk)
        #expect(keeper.capacities.reduce(0, +) <= 2 * size)
        #expect(try pair.finish())
    }

    @Test func capacityFollowsWhatIsPending() {
        #expect(TLSHandler.readCapacity(pending: 0) == TLSHandler.minimumReadChunk)
        #expect(TLSHandler.readCapacity(pending: 23) == TLSHandler.minimumReadChunk)
        #expect(TLSHandler.readCapacity(pending: 5_000) == 5_000)
        #expect(TLSHandler.readCapacity(pending: 1 << 20) == TLSHandler.readChunk)
        let allocator = ByteBufferAllocator()
        var big = allocator.buffer(capacity: 4_096)
        big.writeBytes([1, 2, 3])
        let small = TLSHandler.rightSized(big, allocator: allocator)
        #expect(small == big && small.capacity < 64)
        var full = allocator.buffer(capacity: 4_096)
        full.writeBytes([UInt8](repeating: 7, count: 3_000))
        #expect(TLSHandler.rightSized(full, allocator: allocator).capacity == full.capacity)
    }
}
