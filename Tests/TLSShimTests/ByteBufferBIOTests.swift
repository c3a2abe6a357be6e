import NIOCore
import NIOEmbedded
import Testing

@testable import TLSShim

/// ``ByteBufferBIO``: OpenSSL reads received ciphertext straight from the buffers it arrived in, and
/// writes into one buffer that the handler sends as is.
@Suite struct ByteBufferBIOTests {
    /// A server and a client connection, handshaken over their BIOs directly (no pipeline).
    static func establishedPair() throws -> (server: TLSConnection, client: TLSConnection) {
        let server = try TLSConnection(serverContext: TLSHandlerTests.serverContext)
        let client = try TLSConnection(clientContext: TLSHandlerTests.clientContext, serverName: "localhost")
        var clientDone = false
        var serverDone = false
        for _ in 0..<10 where !(clientDone && serverDone) {
            if !clientDone { clientDone = client.handshake() == .complete }
            if let flight = client.takeOutbound() { server.receive(flight) }
            if !serverDone { serverDone = server.handshake() == .complete }
            if let flight = server.takeOutbound() { client.receive(flight) }
        }
        try #require(clientDone && serverDone)
        return (server, client)
    }

    /// Everything `connection` can decrypt now, and how the last read ended.
    static func readAll(_ connection: TLSConnection) -> (ByteBuffer, TLSConnection.ReadResult) {
        var plaintext = ByteBuffer()
        while true {
            let result = connection.read(into: &plaintext, maximum: 65_536)
            if result != .data { return (plaintext, result) }
        }
    }

    /// One record cut at every byte: OpenSSL reads its header and body across the two buffers.
    @Test func aRecordSplitAtEveryByteIsReadWhole() throws {
        let (server, client) = try Self.establishedPair()
        _ = Self.readAll(server)  // the client's session tickets and the like: nothing for the server
        let message = patternBuffer(100)
        for cut in 0...200 {
            #expect(client.write(message) == nil)
            var record = try #require(client.takeOutbound())
            let cut = min(cut, record.readableBytes)
            server.receive(record.readSlice(length: cut)!)
            let (early, earlyResult) = Self.readAll(server)
            if record.readableBytes > 0 {
                #expect(early.readableBytes == 0 && earlyResult == .wouldBlock, "cut \(cut)")
            }
            server.receive(record)
            let (plaintext, result) = Self.readAll(server)
            #expect(early.readableBytes + plaintext.readableBytes == 100, "cut \(cut)")
            #expect(result == .wouldBlock)
            #expect(server.pendingInboundBytes == 0)
        }
    }

    /// A flight of many records delivered in buffers of 1, 2, 3, ... bytes, all queued before OpenSSL
    /// reads any of them.
    @Test func manySmallBuffersQueuedBeforeReadingAreReadInOrder() throws {
        let (server, client) = try Self.establishedPair()
        let message = patternBuffer(40_000, seed: 3)
        #expect(client.write(message) == nil)
        var ciphertext = try #require(client.takeOutbound())
        var size = 1
        while ciphertext.readableBytes > 0 {
            server.receive(ciphertext.readSlice(length: min(size, ciphertext.readableBytes))!)
            size += 1
        }
        let (plaintext, result) = Self.readAll(server)
        #expect(plaintext == message)
        #expect(result == .wouldBlock)
        #expect(server.pendingInboundBytes == 0)
    }

    /// No input is "more input needed", never EOF or an error; data queued later still reads.
    @Test func anEmptyBIOAsksForMoreInput() throws {
        let (server, client) = try Self.establishedPair()
        _ = Self.readAll(server)
        var nothing = ByteBuffer()
        #expect(server.read(into: &nothing, maximum: 100) == .wouldBlock)
        #expect(client.write(ByteBuffer(string: "late")) == nil)
        server.receive(try #require(client.takeOutbound()))
        let (plaintext, _) = Self.readAll(server)
        #expect(String(buffer: plaintext) == "late")
    }

    /// The tail of a large read that is only part of a record does not keep the read buffer: OpenSSL
    /// takes the partial record into its own record buffer, so the queue is empty when it stops.
    @Test func aPartialRecordDoesNotKeepTheReadBuffer() throws {
        let (server, client) = try Self.establishedPair()
        _ = Self.readAll(server)
        let message = patternBuffer(65_536, seed: 9)
        #expect(client.write(message) == nil)
        var ciphertext = try #require(client.takeOutbound())
        // One whole 16 KiB record and the first 100 bytes of the next, as a slice of the big buffer.
        let first = ciphertext.readSlice(length: 16_384 + 22 + 5 + 100)!
        server.receive(first)
        var (plaintext, result) = Self.readAll(server)
        #expect(plaintext.readableBytes == 16_384 && result == .wouldBlock)
        #expect(server.inboundStorageBytes == 0)
        server.receive(ciphertext)
        var rest: ByteBuffer
        (rest, result) = Self.readAll(server)
        plaintext.writeBuffer(&rest)
        #expect(plaintext == message)
        #expect(server.inboundStorageBytes == 0)
    }

    /// A flush's ciphertext is one buffer, sent as is; nothing stays behind in the BIO afterwards.
    @Test func theOutboundBufferIsHandedOverWhole() throws {
        let (server, client) = try Self.establishedPair()
        _ = Self.readAll(server)
        server.reserveOutbound(plaintextBytes: 65_536)
        #expect(server.write(patternBuffer(65_536)) == nil)
        let ciphertext = try #require(server.takeOutbound())
        #expect(ciphertext.readableBytes > 65_536 && ciphertext.readableBytes < 65_536 + 5 * 100)
        #expect(server.pendingOutboundBytes == 0)
        #expect(server.takeOutbound() == nil)
        client.receive(ciphertext)
        let (plaintext, _) = Self.readAll(client)
        #expect(plaintext == patternBuffer(65_536))
    }

    /// After a 64 KiB message each way through the handlers, an idle connection holds no ciphertext
    /// (memory BIOs kept a buffer of the largest burst for the connection's life).
    @Test func anIdleConnectionHoldsNoCiphertext() throws {
        let pair = try InMemoryPair(server: TLSHandlerTests.serverContext, client: TLSHandlerTests.clientContext)
        try pair.handshake()
        pair.client.writeAndFlush(patternBuffer(65_536), promise: nil)
        try pair.interact(chunk: 10_000)
        pair.server.writeAndFlush(patternBuffer(65_536, seed: 1), promise: nil)
        try pair.interact(chunk: 10_000)
        #expect(pair.serverRecorder.received == patternBuffer(65_536))
        #expect(pair.clientRecorder.received == patternBuffer(65_536, seed: 1))
        for handler in [pair.serverHandler, pair.clientHandler] {
            #expect(handler.connection.inboundStorageBytes == 0)
            #expect(handler.connection.pendingOutboundBytes == 0)
        }
        #expect(try pair.finish())
    }
}
