import Foundation
import Frames
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A WebSocket client for tests (RFC 6455 client role) over a real loopback socket.
///
/// Frames it receives go through `FrameParser(role: .client)`, so a server that breaks the protocol
/// (a masked frame, a bad Close…) makes the next receive throw the parser's ``FramesError``. Frames it
/// sends go through `FrameEncoder(role: .client)`, masked with fresh keys; ``sendRaw(_:)`` sends any
/// bytes, for tests that must break the protocol themselves.
///
/// Every wait is bounded: a receive, a write, the handshake and ``waitForTCPClose(timeout:)`` throw
/// ``Failure/timedOut(_:)`` instead of hanging. All state of the connection lives on its event loop
/// (``TestWebSocketClientHandler``), reached through `NIOLoopBound`; waits are `EventLoopPromise`s
/// with a scheduled failure. Use one client from one task at a time.
final class TestWebSocketClient {
    /// A whole message or control frame as ``receiveMessage(timeout:)`` returns it.
    enum Message: Hashable, Sendable {
        case text(String)
        case binary([UInt8])
        case ping([UInt8])
        case pong([UInt8])
        /// A Close frame: its code (`nil` for an empty body) and reason.
        case close(CloseCode?, String)
    }

    /// Why a client call failed.
    enum Failure: Error, Hashable, CustomStringConvertible {
        /// A bounded wait ran out; the text says what was awaited.
        case timedOut(String)
        /// The opening handshake was refused or its answer was not a valid 101.
        case handshakeFailed(String)
        /// The connection closed while something was awaited from it.
        case connectionClosed

        var description: String {
            switch self {
            case .timedOut(let what): "timed out waiting for \(what)"
            case .handshakeFailed(let why): "handshake failed: \(why)"
            case .connectionClosed: "connection closed"
            }
        }
    }

    /// The underlying channel (for tests that need to inspect or close it directly).
    let channel: any Channel
    private let handler: NIOLoopBound<TestWebSocketClientHandler>
    /// The headers of the server's 101 answer, in order.
    let responseHeaders: [(String, String)]
    /// The timeout `connect` was given: the default for every later wait.
    let defaultTimeout: Duration
    private var encoder = FrameEncoder(role: .client)
    /// A fragmented data message being assembled by ``receiveMessage(timeout:)`` when a control frame
    /// interrupted it.
    private var partial: (opcode: Opcode, bytes: [UInt8])?

    private init(
        channel: any Channel,
        handler: NIOLoopBound<TestWebSocketClientHandler>,
        responseHeaders: [(String, String)],
        timeout: Duration
    ) {
        self.channel = channel
        self.handler = handler
        self.responseHeaders = responseHeaders
        self.defaultTimeout = timeout
    }

    deinit {
        self.channel.close(promise: nil)
    }

    // MARK: Connecting

    /// Connects, performs the opening handshake on `path` and checks the answer: status 101,
    /// `Upgrade: websocket`, `Connection: upgrade` and the `Sec-WebSocket-Accept` for our key
    /// (RFC 6455 §4.1). `headers` are added to the request. `pipelined` bytes are sent in the same
    /// write, right behind the request head (to test that a server keeps them).
    static func connect(
        host: String = "127.0.0.1",
        port: Int,
        path: String,
        headers: [(String, String)] = [],
        pipelined: [UInt8] = [],
        timeout: Duration = .seconds(15)
    ) async throws -> TestWebSocketClient {
        let key = HandshakeKey.makeKey()
        var request = "GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
        for (name, value) in headers {
            request += "\(name): \(value)\r\n"
        }
        request += "\r\n"
        let (channel, handler) = try await Self.open(host: host, port: port, mode: .webSocket, timeout: timeout)
        do {
            var bytes = channel.allocator.buffer(capacity: request.utf8.count + pipelined.count)
            bytes.writeString(request)
            bytes.writeBytes(pipelined)
            try await Self.bounded(channel.writeAndFlush(bytes), timeout, "the request to be written")
            let response = try await Self.bounded(Self.responseFuture(handler), timeout, "the handshake answer")
            guard response.status == 101 else {
                throw Failure.handshakeFailed("status \(response.status): \(response.body)")
            }
            func values(_ name: String) -> [String] {
                response.headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1)
            }
            guard values("Upgrade").map({ $0.lowercased() }) == ["websocket"] else {
                throw Failure.handshakeFailed("Upgrade is \(values("Upgrade"))")
            }
            guard values("Connection").contains(where: { $0.lowercased().contains("upgrade") }) else {
                throw Failure.handshakeFailed("Connection is \(values("Connection"))")
            }
            let expected = HandshakeKey.acceptValue(forKey: key)
            guard values("Sec-WebSocket-Accept") == [expected] else {
                throw Failure.handshakeFailed(
                    "Sec-WebSocket-Accept is \(values("Sec-WebSocket-Accept")), expected \(expected)"
                )
            }
            return TestWebSocketClient(
                channel: channel,
                handler: handler,
                responseHeaders: response.headers,
                timeout: timeout
            )
        } catch {
            channel.close(promise: nil)
            throw error
        }
    }

    /// Sends `request` verbatim (write the whole request, `\r\n\r\n` included) and returns the server's
    /// answer: status, headers and body (by `Content-Length`, else up to the server's close). A 101 is
    /// returned as soon as its head is complete. The connection is closed afterwards.
    static func rawHandshake(
        host: String = "127.0.0.1",
        port: Int,
        request: String,
        timeout: Duration = .seconds(15)
    ) async throws -> (status: Int, headers: [(String, String)], body: String) {
        let (channel, handler) = try await Self.open(host: host, port: port, mode: .raw, timeout: timeout)
        defer { channel.close(promise: nil) }
        var bytes = channel.allocator.buffer(capacity: request.utf8.count)
        bytes.writeString(request)
        do {
            try await Self.bounded(channel.writeAndFlush(bytes), timeout, "the request to be written")
        } catch {
            // The server may have answered and closed before the request went out (a deadline from
            // accept that a slow machine let pass first): that answer is the outcome. Without one
            // (closed at accept), the write's error.
            guard let response = try? await Self.bounded(Self.responseFuture(handler), timeout, "the HTTP answer") else {
                throw error
            }
            return (response.status, response.headers, response.body)
        }
        let response = try await Self.bounded(Self.responseFuture(handler), timeout, "the HTTP answer")
        return (response.status, response.headers, response.body)
    }

    private static func open(
        host: String,
        port: Int,
        mode: TestWebSocketClientHandler.Mode,
        timeout: Duration
    ) async throws -> (any Channel, NIOLoopBound<TestWebSocketClientHandler>) {
        // The handler is kept from the initializer: looking it up after `connect` fails when the server
        // has already answered and closed (a fast refusal), which is exactly what some tests expect.
        let added = NIOLockedValueBox<NIOLoopBound<TestWebSocketClientHandler>?>(nil)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(TimeAmount(timeout))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = TestWebSocketClientHandler(mode: mode)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    added.withLockedValue { $0 = NIOLoopBound(handler, eventLoop: channel.eventLoop) }
                }
            }
            .connect(host: host, port: port)
            .get()
        return (channel, added.withLockedValue { $0! })
    }

    private static func responseFuture(
        _ handler: NIOLoopBound<TestWebSocketClientHandler>
    ) -> EventLoopFuture<TestWebSocketClientHandler.Response> {
        handler.eventLoop.submit { handler.value.responsePromise.futureResult }.flatMap { $0 }
    }

    /// `future`'s value, or ``Failure/timedOut(_:)`` after `timeout`.
    static func bounded<Value: Sendable>(
        _ future: EventLoopFuture<Value>,
        _ timeout: Duration,
        _ what: String
    ) async throws -> Value {
        let promise = future.eventLoop.makePromise(of: Value.self)
        future.cascade(to: promise)
        let timer = future.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            promise.fail(Failure.timedOut(what))
        }
        defer { timer.cancel() }
        return try await promise.futureResult.get()
    }

    // MARK: Sending

    /// Sends a text message in one frame.
    func send(text: String) async throws {
        try await self.sendFrame(opcode: .text, payload: Array(text.utf8))
    }

    /// Sends a binary message in one frame.
    func send(binary: [UInt8]) async throws {
        try await self.sendFrame(opcode: .binary, payload: binary)
    }

    /// Sends one frame, masked with a fresh key.
    func sendFrame(opcode: Opcode, fin: Bool = true, payload: [UInt8]) async throws {
        var bytes = self.channel.allocator.buffer(capacity: payload.count + 14)
        self.encoder.writeFrame(opcode: opcode, fin: fin, payload: ByteBuffer(bytes: payload), to: &bytes)
        try await self.write(bytes)
    }

    /// Sends `bytes` as they are (no framing, no masking).
    func sendRaw(_ bytes: [UInt8]) async throws {
        try await self.write(ByteBuffer(bytes: bytes))
    }

    /// Sends a Ping.
    func ping(_ payload: [UInt8] = []) async throws {
        try await self.sendFrame(opcode: .ping, payload: payload)
    }

    /// Sends a Close with `code` (or an empty body if `nil`) and `reason`. Does not wait for the answer.
    func close(code: CloseCode? = .normalClosure, reason: String = "") async throws {
        var bytes = self.channel.allocator.buffer(capacity: 4 + reason.utf8.count)
        self.encoder.writeClose(code: code, reason: reason, to: &bytes)
        try await self.write(bytes)
    }

    private func write(_ bytes: ByteBuffer) async throws {
        try await Self.bounded(self.channel.writeAndFlush(bytes), self.defaultTimeout, "a write")
    }

    // MARK: Receiving

    /// The next frame as received: data frames whole (their payload assembled), control frames whole.
    /// Throws the parser's ``FramesError`` if the server broke the protocol, ``Failure/connectionClosed``
    /// once the connection is closed and nothing is left, ``Failure/timedOut(_:)`` after `timeout`.
    func receiveFrame(timeout: Duration? = nil) async throws -> (FrameHeader, [UInt8]) {
        let timeout = timeout ?? self.defaultTimeout
        let handler = self.handler
        let frame = try await handler.eventLoop.flatSubmit {
            handler.value.nextFrame(timeout: TimeAmount(timeout))
        }.get()
        return (frame.header, frame.payload)
    }

    /// The next message (fragments joined) or control frame. A control frame that arrives between the
    /// fragments of a message is returned first; the message follows on a later call.
    func receiveMessage(timeout: Duration? = nil) async throws -> Message {
        let timeout = timeout ?? self.defaultTimeout
        let deadline = ContinuousClock.now + timeout
        while true {
            let remaining = max(deadline - ContinuousClock.now, .zero)
            let (header, payload) = try await self.receiveFrame(timeout: remaining)
            switch header.opcode {
            case .ping: return .ping(payload)
            case .pong: return .pong(payload)
            case .close:
                guard payload.count >= 2 else { return .close(nil, "") }
                let code = CloseCode(UInt16(payload[0]) << 8 | UInt16(payload[1]))
                return .close(code, String(decoding: payload[2...], as: UTF8.self))
            case .continuation:
                // The parser guarantees a message is open (RFC 6455 §5.4).
                self.partial!.bytes += payload
            default:
                self.partial = (header.opcode, payload)
            }
            if header.fin, let message = self.partial {
                self.partial = nil
                return message.opcode == .text
                    ? .text(String(decoding: message.bytes, as: UTF8.self)) : .binary(message.bytes)
            }
        }
    }

    /// Waits until the TCP connection is closed (by either side).
    func waitForTCPClose(timeout: Duration? = nil) async throws {
        try await Self.bounded(self.channel.closeFuture, timeout ?? self.defaultTimeout, "the TCP close")
    }
}

/// The event-loop side of ``TestWebSocketClient``: reads the HTTP answer, then parses frames into a
/// queue that bounded waiters take from.
final class TestWebSocketClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    /// What the connection is for.
    enum Mode: Sendable {
        /// A WebSocket: the answer's head, then frames.
        case webSocket
        /// Any HTTP exchange: the whole answer (head and body).
        case raw
    }

    /// An HTTP answer.
    struct Response: Sendable {
        var status: Int
        var headers: [(String, String)]
        var body: String
    }

    /// One received frame.
    struct Frame: Sendable {
        var header: FrameHeader
        var payload: [UInt8]
    }

    private enum State {
        /// Collecting the HTTP answer.
        case awaitingResponse(ByteBuffer)
        /// Parsing frames; `current` collects the data frame being received.
        case frames(current: Frame?)
        /// The answer is delivered (raw mode), the parser failed, or the connection closed.
        case done
    }

    private let mode: Mode
    private var state: State
    private var parser = FrameParser(
        role: .client,
        configuration: .init {
            $0.maxFrameSize = 64 << 20
            $0.maxMessageSize = 64 << 20
            $0.maxFragmentsPerMessage = 1 << 24
        }
    )
    /// Fulfilled with the HTTP answer; created in `handlerAdded`.
    private(set) var responsePromise: EventLoopPromise<Response>!
    private var frames = CircularBuffer<Frame>()
    /// Set when no more frames can come: the parser's error or ``TestWebSocketClient/Failure/connectionClosed``.
    private var terminalError: (any Error)?
    private var waiters: [(id: Int, promise: EventLoopPromise<Frame>)] = []
    private var nextWaiterID = 0
    private var eventLoop: (any EventLoop)?

    init(mode: Mode) {
        self.mode = mode
        self.state = .awaitingResponse(ByteBuffer())
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.eventLoop = context.eventLoop
        self.responsePromise = context.eventLoop.makePromise()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        switch self.state {
        case .awaitingResponse(var received):
            received.writeBuffer(&buffer)
            self.state = .awaitingResponse(received)
            self.tryCompleteResponse(received, atEOF: false, context: context)
        case .frames:
            self.parseFrames(&buffer, context: context)
        case .done:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .awaitingResponse(let received) = self.state {
            self.tryCompleteResponse(received, atEOF: true, context: context)
        }
        self.state = .done
        self.responsePromise.fail(TestWebSocketClient.Failure.connectionClosed)
        self.finish(with: TestWebSocketClient.Failure.connectionClosed)
        context.fireChannelInactive()
    }

    /// A channel whose connect failed (a timeout under load, a refusal) is torn down without
    /// `channelInactive`: the response promise must still be completed (NIO traps on a leaked promise).
    func handlerRemoved(context: ChannelHandlerContext) {
        self.responsePromise.fail(TestWebSocketClient.Failure.connectionClosed)
        self.finish(with: TestWebSocketClient.Failure.connectionClosed)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.responsePromise.fail(error)
        self.finish(with: error)
        context.close(promise: nil)
    }

    /// The next frame, failing after `timeout`.
    func nextFrame(timeout: TimeAmount) -> EventLoopFuture<Frame> {
        let eventLoop = self.eventLoop!
        if let frame = self.frames.popFirst() {
            return eventLoop.makeSucceededFuture(frame)
        }
        if let error = self.terminalError {
            return eventLoop.makeFailedFuture(error)
        }
        let promise = eventLoop.makePromise(of: Frame.self)
        let id = self.nextWaiterID
        self.nextWaiterID += 1
        self.waiters.append((id, promise))
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        eventLoop.scheduleTask(in: timeout) {
            bound.value.expire(waiter: id)
        }
        return promise.futureResult
    }

    private func expire(waiter id: Int) {
        guard let index = self.waiters.firstIndex(where: { $0.id == id }) else { return }
        self.waiters.remove(at: index).promise.fail(TestWebSocketClient.Failure.timedOut("a frame"))
    }

    private func deliver(_ frame: Frame) {
        if self.waiters.isEmpty {
            self.frames.append(frame)
        } else {
            self.waiters.removeFirst().promise.succeed(frame)
        }
    }

    /// No frame will come any more: later waits fail with `error` once the queue is empty.
    private func finish(with error: any Error) {
        guard self.terminalError == nil else { return }
        self.terminalError = error
        let waiting = self.waiters
        self.waiters = []
        for waiter in waiting {
            waiter.promise.fail(error)
        }
    }

    private func parseFrames(_ buffer: inout ByteBuffer, context: ChannelHandlerContext) {
        guard case .frames(var current) = self.state else { return }
        do {
            while let event = try self.parser.next(&buffer) {
                switch event {
                case .header(let header):
                    current = Frame(header: header, payload: [])
                    current!.payload.reserveCapacity(header.payloadLength)
                case .payload(let chunk):
                    current!.payload += chunk.readableBytesView
                case .frameEnd:
                    self.deliver(current!)
                    current = nil
                case .control(let control):
                    let payload = Array(control.payload.readableBytesView)
                    self.deliver(
                        Frame(
                            header: FrameHeader(opcode: control.opcode, payloadLength: payload.count),
                            payload: payload
                        )
                    )
                }
            }
            self.state = .frames(current: current)
        } catch {
            // The server broke the protocol: fail the connection (RFC 6455 §7.1.7) and report why.
            self.state = .done
            self.finish(with: error)
            context.close(promise: nil)
        }
    }

    /// Parses the answer in `received` once its head (and, in raw mode, its body) is complete.
    private func tryCompleteResponse(_ received: ByteBuffer, atEOF: Bool, context: ChannelHandlerContext) {
        let bytes = Array(received.readableBytesView)
        guard let headEnd = Self.find([13, 10, 13, 10], in: bytes) else {
            if atEOF {
                self.responsePromise.fail(
                    TestWebSocketClient.Failure.handshakeFailed(
                        "incomplete answer: \(String(decoding: bytes, as: UTF8.self))"
                    )
                )
            }
            return
        }
        let lines = String(decoding: bytes[..<headEnd], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ", maxSplits: 2)
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]) else {
            self.responsePromise.fail(TestWebSocketClient.Failure.handshakeFailed("bad status line: \(lines[0])"))
            self.state = .done
            return
        }
        var headers: [(String, String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = String(line[..<colon])
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            headers.append((name, value))
        }
        let bodyStart = headEnd + 4
        var rest = received
        rest.moveReaderIndex(forwardBy: bodyStart)

        if self.mode == .webSocket && status == 101 {
            // permessage-deflate agreed: compressed messages (RSV1 on their first frame) are delivered as
            // they are; the test inflates them.
            if headers.contains(where: { $0.0.lowercased() == "sec-websocket-extensions" && $0.1.lowercased().contains("permessage-deflate") }) {
                self.parser.configuration.allowedReservedBits = .rsv1
            }
            self.state = .frames(current: nil)
            self.responsePromise.succeed(Response(status: status, headers: headers, body: ""))
            self.parseFrames(&rest, context: context)
            return
        }
        let length = headers.first { $0.0.lowercased() == "content-length" }.flatMap { Int($0.1) }
        let available = bytes.count - bodyStart
        if let length, available >= length {
            let body = String(decoding: bytes[bodyStart..<(bodyStart + length)], as: UTF8.self)
            self.state = .done
            self.responsePromise.succeed(Response(status: status, headers: headers, body: body))
        } else if atEOF || (length == nil && status == 101) {
            let body = String(decoding: bytes[bodyStart...], as: UTF8.self)
            self.state = .done
            self.responsePromise.succeed(Response(status: status, headers: headers, body: body))
        }
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count)
        where haystack[start..<(start + needle.count)].elementsEqual(needle) {
            return start
        }
        return nil
    }
}

@available(*, unavailable)
extension TestWebSocketClientHandler: Sendable {}
