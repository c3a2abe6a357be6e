import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A plain TCP connection for hostile-client tests: it writes exactly the bytes it is given, when it is
/// told to, and records everything it receives and whether (when) the server closed. Every wait is
/// bounded.
final class RawConnection: Sendable {
    private final class Recorder: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let state = NIOLockedValueBox((bytes: [UInt8](), closed: false, closedAt: ContinuousClock.Instant?.none))
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = Self.unwrapInboundIn(data)
            self.state.withLockedValue { $0.bytes += buffer.readableBytesView }
        }
        func channelInactive(context: ChannelHandlerContext) {
            self.state.withLockedValue {
                $0.closed = true
                $0.closedAt = .now
            }
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            // A reset after the server's answer: the answer is what counts.
            context.close(promise: nil)
        }
    }

    let channel: any Channel
    private let recorder: Recorder
    /// When the connect started (the server accepted no earlier than this).
    let openedAt: ContinuousClock.Instant

    private init(channel: any Channel, recorder: Recorder, openedAt: ContinuousClock.Instant) {
        self.channel = channel
        self.recorder = recorder
        self.openedAt = openedAt
    }

    static func open(port: Int, host: String = "127.0.0.1") async throws -> RawConnection {
        let recorder = Recorder()
        let start = ContinuousClock.now
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(recorder) }
            }
            .connect(host: host, port: port)
            .get()
        return RawConnection(channel: channel, recorder: recorder, openedAt: start)
    }

    /// Writes `bytes`; a write refused because the server already closed is not an error here.
    func send(_ bytes: [UInt8]) async {
        try? await self.channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    func send(_ text: String) async { await self.send(Array(text.utf8)) }

    var received: [UInt8] { self.recorder.state.withLockedValue { $0.bytes } }
    var text: String { String(decoding: self.received, as: UTF8.self) }
    var isClosedByServer: Bool { self.recorder.state.withLockedValue { $0.closed } }
    /// When the server closed the connection (nil while open).
    var closedAt: ContinuousClock.Instant? { self.recorder.state.withLockedValue { $0.closedAt } }
    /// How long after the connect started the connection closed (nil while open).
    var lifetime: Duration? { self.recorder.state.withLockedValue { $0.closedAt }.map { $0 - self.openedAt } }

    /// The status of the HTTP answer received so far, if its status line is complete.
    var status: Int? {
        let text = self.text
        guard text.hasPrefix("HTTP/1.1 "), text.count >= 12 else { return nil }
        return Int(text.dropFirst(9).prefix(3))
    }

    /// Waits until `condition` holds, up to `timeout`; false if it never did.
    func wait(for timeout: Duration, until condition: (RawConnection) -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !condition(self) {
            guard ContinuousClock.now < deadline else { return false }
            try await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    /// Waits for the server to close the connection; false on timeout (a bound for a hang, not a
    /// deadline the gateway must meet: a loaded machine takes seconds).
    func waitForClose(timeout: Duration = .seconds(15)) async throws -> Bool {
        try await self.wait(for: timeout) { $0.isClosedByServer }
    }

    func close() {
        self.channel.close(promise: nil)
    }
}
