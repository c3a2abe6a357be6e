import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOTLS
import TLSShim

/// A TLSShim client for the gateway's TLS listeners, trusting the test CA and naming `localhost`.
enum TLSTestClient {
    static let upgradeRequest =
        "GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

    /// Connects to `port`, sends a valid upgrade for `/echo`, and waits up to `timeout` for the answer's
    /// status line (or an error): the subject of the certificate the handshake saw and the status (nil
    /// when none came). `sessionReuse: false` forces a full handshake, so a reloaded certificate shows.
    static func upgrade(port: Int, sessionReuse: Bool = true, timeout: Duration = .seconds(15)) async throws -> (subject: String?, status: Int?) {
        let context = try TLSClientContext(
            configuration: TLSClientConfiguration {
                $0.trustRoots = .certificates(.pem(GatewayTLSTests.ca.certificatePEM))
                $0.sessionReuse = sessionReuse
            }
        )
        let recorder = TLSAnswerRecorder()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TLSHandler.client(context: context, serverName: "localhost"))
                    try channel.pipeline.syncOperations.addHandler(recorder)
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
        defer { channel.close(promise: nil) }
        try await channel.writeAndFlush(ByteBuffer(string: Self.upgradeRequest))
        let deadline = ContinuousClock.now + timeout
        while recorder.status == nil, recorder.error == nil, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        return (recorder.subject, recorder.status)
    }
}

/// Collects the plaintext answer on a TLS client connection (and the server certificate's subject).
final class TLSAnswerRecorder: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    private struct State {
        var bytes: [UInt8] = []
        var subject: String?
        var error: String?
    }
    private let state = NIOLockedValueBox(State())

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            let info = try? context.pipeline.syncOperations.handler(type: TLSHandler.self).connectionInfo
            self.state.withLockedValue { $0.subject = info?.peerCertificateSubject }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = Self.unwrapInboundIn(data)
        self.state.withLockedValue { $0.bytes += buffer.readableBytesView }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.state.withLockedValue { $0.error = "\(error)" }
        context.close(promise: nil)
    }

    var text: String { String(decoding: self.state.withLockedValue { $0.bytes }, as: UTF8.self) }
    var subject: String? { self.state.withLockedValue { $0.subject } }
    var error: String? { self.state.withLockedValue { $0.error } }
    var status: Int? {
        let text = self.text
        guard text.hasPrefix("HTTP/1.1 "), text.count >= 12 else { return nil }
        return Int(text.dropFirst(9).prefix(3))
    }
}
