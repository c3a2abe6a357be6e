import NIOCore
import NIOEmbedded
import Testing

@testable import Gateway

/// The PROXY protocol channel handler in memory (issue #11 §1): the header is consumed, the carried
/// address announced, the bytes behind it passed on unchanged; a hostile or late header closes the
/// connection with reading turned off and passes nothing on.
@Suite struct ProxyProtocolHandlerTests {
    /// Records what reaches the handler after the PROXY handler.
    final class Sink: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var bytes: [UInt8] = []
        var events: [ProxyProtocolReceived] = []
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            self.bytes += Array(buffer: Self.unwrapInboundIn(data))
        }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let event = event as? ProxyProtocolReceived { self.events.append(event) }
        }
    }

    struct Harness {
        let channel: EmbeddedChannel
        let sink: Sink
        let loop: EmbeddedEventLoop
        let reasons: NIOLoopBoundBox<[ProxyProtocolRefusal]>
    }

    static func harness(mode: ProxyProtocolMode = .any, accept: Bool = true) throws -> Harness {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        let sink = Sink()
        let reasons = NIOLoopBoundBox([ProxyProtocolRefusal](), eventLoop: loop)
        try channel.pipeline.syncOperations.addHandler(
            ProxyProtocolHandler(mode: mode, deadline: .seconds(5), accept: { _ in accept }, rejected: { reasons.value.append($0) })
        )
        try channel.pipeline.syncOperations.addHandler(sink)
        try channel.connect(to: SocketAddress(ipAddress: "10.0.0.2", port: 1234)).wait()
        return Harness(channel: channel, sink: sink, loop: loop, reasons: reasons)
    }

    @Test func aHeaderSplitAtEveryByteIsAnnouncedAndTheRestPassedOn() throws {
        let bytes = ProxyProtocolTests.v1TCP4 + Array("GET / HTTP/1.1\r\n".utf8)
        for cut in 1..<bytes.count {
            let harness = try Self.harness()
            try harness.channel.writeInbound(ByteBuffer(bytes: bytes[..<cut]))
            try harness.channel.writeInbound(ByteBuffer(bytes: bytes[cut...]))
            #expect(harness.sink.events.map { $0.header.source?.description } == ["192.0.2.1"])
            #expect(harness.sink.bytes == Array("GET / HTTP/1.1\r\n".utf8))
            #expect(harness.channel.isActive)
            // The handler left the pipeline: later bytes flow straight through.
            #expect((try? harness.channel.pipeline.syncOperations.handler(type: ProxyProtocolHandler.self)) == nil)
            _ = try? harness.channel.finish()
        }
    }

    @Test(arguments: [
        Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8),
        Array("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n".utf8),
        Array("PROXY TCP4 ".utf8) + [UInt8](repeating: 0x31, count: 200),
        ProxyProtocolTests.v2(family: 0x41),
        ProxyProtocolTests.v2(body: [], length: 60000),
    ])
    func hostileHeadersCloseWithoutPassingAnythingOn(bytes: [UInt8]) throws {
        let harness = try Self.harness()
        _ = try? harness.channel.writeInbound(ByteBuffer(bytes: bytes))
        #expect(!harness.channel.isActive)
        #expect(harness.sink.bytes.isEmpty && harness.sink.events.isEmpty)
        #expect(harness.reasons.value.count == 1)
    }

    @Test func aLateHeaderIsClosedAtTheDeadline() throws {
        let harness = try Self.harness()
        try harness.channel.writeInbound(ByteBuffer(bytes: Array("PROXY TCP4 1.2".utf8)))
        harness.loop.advanceTime(by: .milliseconds(4999))
        #expect(harness.channel.isActive)
        harness.loop.advanceTime(by: .milliseconds(1))
        #expect(!harness.channel.isActive)
        #expect(harness.reasons.value == [.timeout])
        #expect(harness.sink.bytes.isEmpty)
    }

    @Test func aRefusedAddressCloses() throws {
        let harness = try Self.harness(accept: false)
        try harness.channel.writeInbound(ByteBuffer(bytes: ProxyProtocolTests.v1TCP4 + [0x47]))
        #expect(!harness.channel.isActive)
        #expect(harness.sink.bytes.isEmpty)
        #expect(harness.reasons.value == [.refused])
    }
}
