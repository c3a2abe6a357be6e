// The gateway's relay and upgrade in memory, shared by GatewayBenchmarks (mallocs, thresholds) and
// GatewayARCBenchmarks (retains; that target's copy of this file is a symbolic link to this one).

import Frames
@_spi(Benchmarks) import Gateway
import NIOCore
import NIOEmbedded

/// 1,000 text frames of 32 bytes (stream-32's message), masked as a client sends them or plain as an
/// upstream sends them, in one buffer: one read of the relay.
func frames(count: Int, role: FrameEncoder.Role) -> ByteBuffer {
    var out = ByteBufferAllocator().buffer(capacity: count * 40)
    var encoder = FrameEncoder(role: role)
    let body = ByteBuffer(string: String(repeating: "m", count: 32))
    for _ in 0..<count {
        encoder.writeFrame(opcode: .text, payload: body, to: &out)
    }
    return out
}

/// One relayed connection in memory: the gateway's two relay handlers over one session.
final class InMemoryRelay {
    let loop = EmbeddedEventLoop()
    let client: EmbeddedChannel
    let upstream: EmbeddedChannel

    /// `batching: false`: every frame through the per-event read loop (before issue #15's batches).
    /// `kernelKeys: true`: masking keys from `getrandom(2)` in 4 KiB batches, not the user-space
    /// ChaCha20 stream (before rng15).
    init(batching: Bool = true, kernelKeys: Bool = false) throws {
        self.client = EmbeddedChannel(loop: self.loop)
        self.upstream = EmbeddedChannel(loop: self.loop)
        let handlers = BenchmarkSupport.relayHandlers(on: self.loop, batching: batching, kernelKeys: kernelKeys)
        try self.client.pipeline.syncOperations.addHandler(handlers.client)
        try self.upstream.pipeline.syncOperations.addHandler(handlers.upstream)
        try self.client.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
        try self.upstream.connect(to: .init(ipAddress: "127.0.0.1", port: 2)).wait()
    }

    /// One read of `bytes` on `from`, its read-complete (the relay's flush), and the bytes written to
    /// the other leg taken and dropped (as the socket would), so the relay's output buffers are free again.
    func relay(_ bytes: ByteBuffer, from: EmbeddedChannel, to: EmbeddedChannel) throws -> Int {
        try from.writeInbound(bytes)
        from.pipeline.fireChannelReadComplete()
        var written = 0
        while let buffer = try to.readOutbound(as: ByteBuffer.self) {
            written += buffer.readableBytes
        }
        return written
    }
}

/// One whole connection in memory: the request head, the upstream leg (an `EmbeddedChannel` handed
/// out by the connect closure), the upstream's 101, the client's 101, one message each way, and the
/// close handshake started by the client.
final class InMemoryConnection {
    static let request = ByteBuffer(
        string: "GET /chat HTTP/1.1\r\nHost: gw.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    static let response = ByteBuffer(
        string: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    )
    static let clientMessage = frames(count: 1, role: .client)
    static let upstreamMessage = frames(count: 1, role: .server)
    static let clientClose: ByteBuffer = {
        var out = ByteBuffer()
        var encoder = FrameEncoder(role: .client)
        encoder.writeFrame(opcode: .close, payload: ByteBuffer(bytes: [0x03, 0xE8]), to: &out)
        return out
    }()
    static let upstreamClose: ByteBuffer = {
        var out = ByteBuffer()
        var encoder = FrameEncoder(role: .server)
        encoder.writeFrame(opcode: .close, payload: ByteBuffer(bytes: [0x03, 0xE8]), to: &out)
        return out
    }()

    /// Runs one connection from accept to both legs closed; returns the bytes the client received.
    static func run(_ environment: BenchmarkSupport.Environment, loop: EmbeddedEventLoop) throws -> Int {
        let upstreamBox = UpstreamBox()
        let client = EmbeddedChannel(loop: loop)
        let handlers = BenchmarkSupport.upgradeHandlers(environment) { eventLoop, initializer in
            let channel = EmbeddedChannel(loop: loop)
            upstreamBox.channel = channel
            return initializer(channel).flatMap {
                channel.connect(to: try! SocketAddress(ipAddress: "127.0.0.1", port: 9001))
            }.map { channel }
        }
        try client.pipeline.syncOperations.addHandlers(handlers)
        try client.connect(to: .init(ipAddress: "127.0.0.1", port: 40000)).wait()
        try client.writeInbound(Self.request)
        client.pipeline.fireChannelReadComplete()
        loop.run()
        guard let upstream = upstreamBox.channel else { fatalError("no upstream connect") }
        while try upstream.readOutbound(as: ByteBuffer.self) != nil {}
        try upstream.writeInbound(Self.response)
        upstream.pipeline.fireChannelReadComplete()
        loop.run()
        var received = 0
        while let buffer = try client.readOutbound(as: ByteBuffer.self) { received += buffer.readableBytes }
        // One message each way.
        try client.writeInbound(Self.clientMessage)
        client.pipeline.fireChannelReadComplete()
        while try upstream.readOutbound(as: ByteBuffer.self) != nil {}
        try upstream.writeInbound(Self.upstreamMessage)
        upstream.pipeline.fireChannelReadComplete()
        while let buffer = try client.readOutbound(as: ByteBuffer.self) { received += buffer.readableBytes }
        // The close handshake: the client's Close, the upstream's answer, the upstream's TCP close.
        try client.writeInbound(Self.clientClose)
        client.pipeline.fireChannelReadComplete()
        while try upstream.readOutbound(as: ByteBuffer.self) != nil {}
        try upstream.writeInbound(Self.upstreamClose)
        upstream.pipeline.fireChannelReadComplete()
        loop.run()
        while let buffer = try client.readOutbound(as: ByteBuffer.self) { received += buffer.readableBytes }
        _ = try? upstream.close().wait()
        _ = try? client.close().wait()
        loop.run()
        return received
    }

    final class UpstreamBox: @unchecked Sendable {
        var channel: EmbeddedChannel?
    }
}
