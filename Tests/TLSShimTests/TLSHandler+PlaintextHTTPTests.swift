import NIOCore
import NIOEmbedded
import Testing

@testable import TLSShim

/// Issue #11 §3: plain HTTP sent to a TLS server gets the configured clear-text answer (not a
/// silent close), and still fails the handshake with its own class.
@Suite struct TLSHandlerPlaintextHTTPTests {
    private func server(response: [UInt8]?) throws -> (EmbeddedChannel, Recorder) {
        let channel = EmbeddedChannel(loop: EmbeddedEventLoop())
        let recorder = Recorder()
        let handler = try TLSHandler.server(context: TLSHandlerTests.serverContext, configuration: .init { $0.plaintextHTTPResponse = response })
        try channel.pipeline.syncOperations.addHandlers([handler, recorder])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 443)).wait()
        return (channel, recorder)
    }

    /// Catalog T-08: plain HTTP on a TLS listener gets the clear-text 400, fails the handshake as its own class and never reaches the application.
    @Test(arguments: ["GET / HTTP/1.1\r\nHost: x\r\n\r\n", "G", "POST /x HTTP/1.1\r\n", "OPTIONS * HTTP/1.1\r\n", "PRI * HTTP/2.0\r\n"])
    func aPlainHTTPRequestGetsTheClearTextAnswerAndFailsTheHandshake(_ request: String) throws {
        let answer = Array("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".utf8)
        let (channel, recorder) = try server(response: answer)
        try channel.writeInbound(ByteBuffer(string: request))
        var written = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(written.readBytes(length: written.readableBytes) == answer)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        #expect(recorder.tlsErrors.map(\.code) == [.plaintextHTTP])
        #expect(recorder.tlsErrors.first?.code.isHandshakeFailure == true)
        #expect(recorder.received.readableBytes == 0)  // nothing goes up as if it were plaintext
        #expect(!channel.isActive)
    }

    @Test func withoutAConfiguredAnswerTheConnectionJustCloses() throws {
        let (channel, recorder) = try server(response: nil)
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n"))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        #expect(recorder.tlsErrors.map(\.code) == [.plaintextHTTP])
        #expect(!channel.isActive)
    }

    @Test func aTLSClientHelloIsNotMistakenForHTTP() throws {
        let pair = try InMemoryPair(server: TLSHandlerTests.serverContext, client: TLSHandlerTests.clientContext)
        try pair.handshake(chunk: 1)  // the first byte alone decides
        #expect(pair.serverRecorder.handshakeCompleted == ["http/1.1"])
        #expect(try pair.finish())
    }

    @Test func onlyUpperCaseLettersStartAPlainHTTPRequest() {
        for byte in UInt8.min...UInt8.max {
            let expected = (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            #expect(TLSHandlerStateMachine.isPlaintextHTTP(firstByte: byte) == expected)
        }
        for contentType: UInt8 in [20, 21, 22, 23, 24, 0x80] {
            #expect(!TLSHandlerStateMachine.isPlaintextHTTP(firstByte: contentType))
        }
    }
}
