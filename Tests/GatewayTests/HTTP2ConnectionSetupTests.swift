import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Testing

@testable import Gateway

/// The gateway's swift-nio-http2 handler (``HTTP2ConnectionSetup/handler(limits:on:streamDelegate:initializer:)``)
/// against a client handler in memory, bytes carried by hand (issue #16, hostile input).
@Suite struct HTTP2ConnectionSetupTests {
    /// What a client stream saw: its frames and the reset codes it was closed with.
    final class StreamRecorder: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame.FramePayload
        var statuses: [String] = []
        var resets: [HTTP2ErrorCode] = []

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch Self.unwrapInboundIn(data) {
            case .headers(let headers): self.statuses += headers.headers[":status"]
            case .rstStream(let code): self.resets.append(code)
            default: break
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            if let closed = error as? NIOHTTP2Errors.StreamClosed { self.resets.append(closed.errorCode) }
        }
    }

    final class Connection {
        let loop = EmbeddedEventLoop()
        let server: EmbeddedChannel
        let client: EmbeddedChannel
        let clientHandler: NIOHTTP2Handler
        /// Streams swift-nio-http2 handed to the gateway's initializer.
        final class Count { var value = 0 }
        final class Box { var channel: (any Channel)? }
        let opened = Count()
        var serverStreams: Int { self.opened.value }

        init() throws {
            self.server = EmbeddedChannel(loop: self.loop)
            self.client = EmbeddedChannel(loop: self.loop)
            let opened = NIOLoopBound(self.opened, eventLoop: self.loop)
            let handler = HTTP2ConnectionSetup.handler(limits: .init(), on: self.loop, streamDelegate: nil) { stream in
                opened.value.value += 1
                return stream.eventLoop.makeSucceededVoidFuture()
            }
            try self.server.pipeline.syncOperations.addHandler(handler)
            // A client that sends what it likes (no validation of its own header blocks).
            var configuration = NIOHTTP2Handler.ConnectionConfiguration()
            configuration.headerBlockValidation = .disabled
            self.clientHandler = NIOHTTP2Handler(
                mode: .client,
                eventLoop: self.loop,
                connectionConfiguration: configuration,
                streamConfiguration: .init()
            ) { $0.eventLoop.makeSucceededVoidFuture() }
            try self.client.pipeline.syncOperations.addHandler(self.clientHandler)
            let address = try SocketAddress(ipAddress: "127.0.0.1", port: 443)
            try self.server.connect(to: address).wait()
            try self.client.connect(to: address).wait()
        }

        /// Carries what `from` wrote to `to`.
        /// Stream errors swift-nio-http2 fired on the server's connection pipeline.
        var serverErrors: [any Error] = []

        func carry(from: EmbeddedChannel, to: EmbeddedChannel) throws {
            while let bytes = try from.readOutbound(as: ByteBuffer.self) {
                // A stream error (the stream reset) is also fired down the connection's pipeline.
                do { try to.writeInbound(bytes) } catch { if to === self.server { self.serverErrors.append(error) } else { throw error } }
            }
            self.loop.run()
        }

        /// Opens a stream that sends `headers`; its recorder.
        func open(_ headers: HPACKHeaders) throws -> StreamRecorder {
            let recorder = StreamRecorder()
            let bound = NIOLoopBound(recorder, eventLoop: self.loop)
            let created = NIOLoopBound(Box(), eventLoop: self.loop)
            _ = try self.clientHandler.syncMultiplexer().createStreamChannel { channel in
                created.value.channel = channel
                return channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(bound.value) }
            }
            self.loop.run()
            // Never `wait()` on an embedded loop's future: a test thread blocked there stalls the others.
            let channel = try #require(created.value.channel, "no client stream")
            channel.writeAndFlush(HTTP2Frame.FramePayload.headers(.init(headers: headers)), promise: nil)
            self.loop.run()
            return recorder
        }
    }

    /// RFC 8441 §3–§4: `:protocol` may be used only once the server's SETTINGS_ENABLE_CONNECT_PROTOCOL = 1
    /// took effect (the client acknowledged our SETTINGS). Before that an extended CONNECT is malformed:
    /// RST_STREAM PROTOCOL_ERROR from swift-nio-http2, and no stream reaches the gateway's codec. Once the
    /// settings are exchanged the same request opens a stream.
    @Test func protocolBeforeTheSettingTookEffectIsRefusedWithProtocolError() throws {
        let connection = try Connection()
        // The client's preface and a CONNECT with :protocol go out before it saw the server's SETTINGS.
        let early = try connection.open(ExtendedConnectTests.request())
        try connection.carry(from: connection.client, to: connection.server)
        try connection.carry(from: connection.server, to: connection.client)
        try connection.carry(from: connection.client, to: connection.server)
        #expect(connection.serverStreams == 0, "a stream with :protocol before the setting reached the gateway")
        #expect(!early.resets.isEmpty && early.resets.allSatisfy { $0 == .protocolError }, "\(early.resets)")
        #expect(connection.serverErrors.contains { "\($0)".contains("UnsupportedPseudoHeader") }, "\(connection.serverErrors)")
        #expect(early.statuses.isEmpty)
        // Settings exchanged and acknowledged: the same request is a stream for the gateway.
        _ = try connection.open(ExtendedConnectTests.request())
        try connection.carry(from: connection.client, to: connection.server)
        #expect(connection.serverStreams == 1)
        #expect(connection.server.isActive, "a stream error ended the connection")
    }

    /// `:protocol` on a method other than CONNECT passes swift-nio-http2 (it only requires `:scheme` and
    /// `:path` with it) and reaches the gateway, whose ``ExtendedConnect`` answers 405 with `allow: CONNECT`
    /// (``ExtendedConnectTests``); `:protocol` without the other pseudo-headers is malformed here.
    @Test func protocolWithoutSchemeAndPathIsRefusedWithProtocolError() throws {
        let connection = try Connection()
        try connection.carry(from: connection.client, to: connection.server)
        try connection.carry(from: connection.server, to: connection.client)
        try connection.carry(from: connection.client, to: connection.server)
        let stream = try connection.open(ExtendedConnectTests.request([":scheme": nil, ":path": nil]))
        try connection.carry(from: connection.client, to: connection.server)
        try connection.carry(from: connection.server, to: connection.client)
        #expect(connection.serverStreams == 0)
        #expect(!stream.resets.isEmpty && stream.resets.allSatisfy { $0 == .protocolError }, "\(stream.resets)")
        #expect(connection.serverErrors.contains { "\($0)".contains("InvalidPseudoHeaders") }, "\(connection.serverErrors)")
    }
}
