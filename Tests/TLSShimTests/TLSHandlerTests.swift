import NIOCore
import NIOEmbedded
import NIOTLS
import Testing

@testable import TLSShim

/// Client and server handlers back to back over EmbeddedChannels: real OpenSSL on both sides.
@Suite struct TLSHandlerTests {
    static let serverContext = try! TLSServerContext(configuration: Fixtures.serverConfiguration())
    static let clientContext = try! TLSClientContext(configuration: Fixtures.clientConfiguration())

    static func server(_ configure: (inout TLSServerConfiguration) -> Void) throws -> TLSServerContext {
        try TLSServerContext(configuration: Fixtures.serverConfiguration(configure))
    }

    static func client(_ configure: (inout TLSClientConfiguration) -> Void) throws -> TLSClientContext {
        try TLSClientContext(configuration: Fixtures.clientConfiguration(configure))
    }

    @Test(arguments: [TLSVersion.tls1_2, .tls1_3], [1, Int.max])
    func handshakeNegotiatesVersionALPNAndReportsInfo(version: TLSVersion, chunk: Int) throws {
        let client = try Self.client {
            $0.maximumVersion = version
            $0.sessionReuse = false
        }
        let pair = try InMemoryPair(server: Self.serverContext, client: client)
        try pair.handshake(chunk: chunk)

        #expect(pair.clientRecorder.handshakeCompleted == ["http/1.1"])
        #expect(pair.serverRecorder.handshakeCompleted == ["http/1.1"])
        let serverInfo = try #require(pair.serverHandler.connectionInfo)
        let clientInfo = try #require(pair.clientHandler.connectionInfo)
        #expect(serverInfo.version == version)
        #expect(clientInfo.version == version)
        #expect(serverInfo.serverName == "localhost")
        #expect(clientInfo.serverName == "localhost")
        #expect(clientInfo.peerCertificateSubject == "CN=localhost")
        #expect(serverInfo.peerCertificateSubject == nil)
        #expect(serverInfo.cipherSuite == clientInfo.cipherSuite)
        #expect(version == .tls1_3 ? serverInfo.cipherSuite.hasPrefix("TLS_") : serverInfo.cipherSuite.hasPrefix("ECDHE-"))
        #expect(pair.clientRecorder.errors.isEmpty && pair.serverRecorder.errors.isEmpty)
        #expect(try pair.finish())
    }

    @Test(arguments: [1, 7, 16_383, 16_384, 16_385, 100_000, 1 << 20])
    func dataOfAnySizeBothWays(size: Int) throws {
        let pair = try InMemoryPair(server: Self.serverContext, client: Self.clientContext)
        try pair.handshake()
        let payload = patternBuffer(size)
        pair.client.writeAndFlush(payload, promise: nil)
        pair.server.writeAndFlush(patternBuffer(size, seed: 9), promise: nil)
        try pair.interact()
        #expect(pair.serverRecorder.received == payload)
        #expect(pair.clientRecorder.received == patternBuffer(size, seed: 9))
        #expect(try pair.finish())
    }

    /// Catalog T-10: a handshake delivered one byte per read (TCP-level fragmentation) completes.
    @Test func oneByteAtATimeHandshakeAndDataInBothDirections() throws {
        let pair = try InMemoryPair(server: Self.serverContext, client: Self.clientContext)
        try pair.handshake(chunk: 1)
        // One-byte plaintext writes, each its own record, and the ciphertext dripped one byte at a time.
        for index in 0..<100 {
            pair.client.writeAndFlush(ByteBuffer(bytes: [UInt8(index)]), promise: nil)
            pair.server.writeAndFlush(ByteBuffer(bytes: [UInt8(255 - index)]), promise: nil)
        }
        try pair.interact(chunk: 1)
        #expect(pair.serverRecorder.received == ByteBuffer(bytes: (0..<100).map { UInt8($0) }))
        #expect(pair.clientRecorder.received == ByteBuffer(bytes: (0..<100).map { UInt8(255 - $0) }))
        let bulk = patternBuffer(40_000)
        pair.client.writeAndFlush(bulk, promise: nil)
        try pair.interact(chunk: 1)
        #expect(pair.serverRecorder.received.readableBytes == 100 + 40_000)
        #expect(pair.serverRecorder.received.getSlice(at: 100, length: 40_000) == bulk)
        #expect(try pair.finish())
    }

    @Test func writesBeforeTheHandshakeAreBufferedAndSentAfterIt() throws {
        let pair = try InMemoryPair(server: Self.serverContext, client: Self.clientContext)
        try pair.activate()
        let written = pair.client.writeAndFlush(ByteBuffer(string: "early"))
        try pair.interact()
        #expect(pair.serverRecorder.received == ByteBuffer(string: "early"))
        try written.wait()
        #expect(try pair.finish())
    }

    @Test func flushesAreCoalescedIntoOneCiphertextWrite() throws {
        let pair = try InMemoryPair(server: Self.serverContext, client: Self.clientContext)
        try pair.handshake()
        let before = pair.clientWrites
        let futures = (0..<10).map { pair.client.write(ByteBuffer(string: "part\($0);")) }
        pair.client.flush()
        try pair.interact()
        #expect(pair.clientWrites == before + 1)
        for future in futures { try future.wait() }
        #expect(pair.serverRecorder.received == ByteBuffer(string: (0..<10).map { "part\($0);" }.joined()))
        #expect(try pair.finish())
    }

    @Test func unflushedWritesStayBufferedUntilFlush() throws {
        let pair = try InMemoryPair(server: Self.serverContext, client: Self.clientContext)
        try pair.handshake()
        pair.client.write(ByteBuffer(string: "later"), promise: nil)
        try pair.interact()
        #expect(pair.serverRecorder.received.readableBytes == 0)
        pair.client.flush()
        try pair.interact()
        #expect(pair.serverRecorder.received == ByteBuffer(string: "later"))
        #expect(try pair.finish())
    }

    @Test func closeSendsCloseNotifyAndThePeerAnswersAndCloses() throws {
        let pair = try InMemoryPair(server: Self.serverContext, client: Self.clientContext)
        try pair.handshake()
        pair.client.writeAndFlush(ByteBuffer(string: "bye"), promise: nil)
        let closed = pair.client.close()
        try pair.interact()
        try closed.wait()
        #expect(pair.serverRecorder.received == ByteBuffer(string: "bye"))
        #expect(!pair.server.isActive)
        // Clean close: no uncleanShutdown on either side.
        #expect(pair.serverRecorder.errors.isEmpty)
        #expect(try pair.finish())
    }

    @Test func halfClosureKeepsTheOtherDirectionOpen() throws {
        let pair = try InMemoryPair(
            server: Self.serverContext,
            client: Self.clientContext,
            serverHandlerConfiguration: .init { $0.allowHalfClosure = true },
            clientHandlerConfiguration: .init { $0.allowHalfClosure = true }
        )
        // EmbeddedChannel closes fully on close(mode: .output); a socket half-closes.
        try pair.client.pipeline.syncOperations.addHandler(HalfCloseTransport(), position: .first)
        try pair.handshake()
        pair.client.writeAndFlush(ByteBuffer(string: "request"), promise: nil)
        let outputClosed = pair.client.close(mode: .output)
        try pair.interact()
        try outputClosed.wait()
        #expect(pair.serverRecorder.inputClosed)
        #expect(pair.serverRecorder.received == ByteBuffer(string: "request"))
        // The server still writes; the client still reads.
        pair.server.writeAndFlush(ByteBuffer(string: "response"), promise: nil)
        try pair.interact()
        #expect(pair.clientRecorder.received == ByteBuffer(string: "response"))
        // A client write after its own close_notify fails.
        #expect(throws: TLSError(code: .writeAfterClose, reason: "")) {
            try pair.client.writeAndFlush(ByteBuffer(string: "x")).wait()
        }
        pair.server.close(promise: nil)
        try pair.interact()
        #expect(!pair.client.isActive)
        #expect(pair.serverRecorder.errors.isEmpty && pair.clientRecorder.errors.isEmpty)
        #expect(try pair.finish())
    }

    @Test func transportClosedAfterHandshakeWithoutCloseNotifyIsUnclean() throws {
        let pair = try InMemoryPair(server: Self.serverContext, client: Self.clientContext)
        try pair.handshake()
        pair.server.pipeline.fireChannelInactive()
        #expect(pair.serverRecorder.tlsErrors.map(\.code) == [.uncleanShutdown])
        _ = try? pair.finish()
    }

    @Test func tls13KeyUpdateIsHandledInBothDirections() throws {
        let pair = try InMemoryPair(server: Self.serverContext, client: Self.clientContext)
        try pair.handshake()
        // A post-handshake KeyUpdate that also asks the peer to update (RFC 8446 §4.6.3).
        try pair.clientHandler.requestKeyUpdate(channel: pair.client)
        try pair.interact()
        pair.client.writeAndFlush(patternBuffer(50_000), promise: nil)
        pair.server.writeAndFlush(patternBuffer(50_000, seed: 3), promise: nil)
        try pair.interact(chunk: 333)
        #expect(pair.serverRecorder.received == patternBuffer(50_000))
        #expect(pair.clientRecorder.received == patternBuffer(50_000, seed: 3))
        #expect(pair.serverRecorder.errors.isEmpty && pair.clientRecorder.errors.isEmpty)
        #expect(try pair.finish())
    }

    @Test func backpressureReadsAreOnlyIssuedDuringTheHandshake() throws {
        // With autoRead off, the handler asks for input during the handshake only; afterwards reads
        // are the business of the layers above.
        let pair = try InMemoryPair(server: Self.serverContext, client: Self.clientContext)
        let readCounter = ReadCounter()
        try pair.server.pipeline.syncOperations.addHandler(readCounter, position: .first)
        try pair.handshake()
        let duringHandshake = readCounter.reads
        #expect(duringHandshake > 0)
        pair.client.writeAndFlush(patternBuffer(100_000), promise: nil)
        try pair.interact()
        #expect(readCounter.reads == duringHandshake)
        #expect(try pair.finish())
    }
}

/// Counts `read()` calls that pass below it (it sits at the channel end of the pipeline).
final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    var reads = 0

    func read(context: ChannelHandlerContext) {
        self.reads += 1
        context.read()
    }
}

@available(*, unavailable)
extension ReadCounter: Sendable {}

/// Stands in for a socket's output half-closure below the TLS handler.
final class HalfCloseTransport: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    var outputClosed = false

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .output {
            self.outputClosed = true
            promise?.succeed()
        } else {
            context.close(mode: mode, promise: promise)
        }
    }
}

@available(*, unavailable)
extension HalfCloseTransport: Sendable {}
