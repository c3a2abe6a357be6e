import Frames
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TLSShim

/// A scripted upstream on loopback for fault tests: it answers the upgrade request with whatever the
/// test says (a valid 101, a 426, a wrong accept value…), then sends scripted bytes, floods, holds or
/// closes, and records every byte it receives after the request head.
final class FakeUpstream: Sendable {
    struct Request: Sendable {
        var head: String
        var key: String
        var accept: String { HandshakeKey.acceptValue(forKey: self.key) }

        /// The value of the first header called `name` (case-insensitive).
        func header(_ name: String) -> String? {
            for line in self.head.split(separator: "\r\n").dropFirst() {
                let parts = line.split(separator: ":", maxSplits: 1)
                if parts.count == 2, parts[0].lowercased() == name.lowercased() {
                    return parts[1].trimmingCharacters(in: .whitespaces)
                }
            }
            return nil
        }
    }

    struct Reply: Sendable {
        var response: [UInt8]
        /// Bytes written right after the response (frames, garbage).
        var then: [UInt8] = []
        var closeAfter = false
        /// Keep writing binary frames of this size for as long as the socket takes them.
        var flood: Int? = nil

        /// A valid 101 for `request`, plus `extraHeaders`.
        static func accept(_ request: Request, extraHeaders: String = "") -> Reply {
            Reply(
                response: Array(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(request.accept)\r\n\(extraHeaders)\r\n"
                        .utf8
                )
            )
        }
    }

    private struct State {
        /// Connections accepted and connections ended (their channel went inactive).
        var accepted = 0
        var ended = 0
        /// Every byte received on any connection, the request heads included.
        var rawReceived = 0
        var received: [UInt8] = []
        var requests: [Request] = []
        var flooded = 0
        var channels: [any Channel] = []
    }

    private let state = NIOLockedValueBox(State())
    private let serverChannel: any Channel
    let port: Int

    private init(serverChannel: any Channel, port: Int) {
        self.serverChannel = serverChannel
        self.port = port
    }

    /// Starts listening on loopback; with `tls`, as a `wss://` server with that certificate.
    static func start(tls: TLSServerContext? = nil, _ script: @escaping @Sendable (Request) -> Reply) async throws -> FakeUpstream {
        let box = NIOLockedValueBox<FakeUpstream?>(nil)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(TLSHandler.server(context: tls)) }
                    try channel.pipeline.syncOperations.addHandler(FakeUpstreamHandler(script: script, owner: box))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        let upstream = FakeUpstream(serverChannel: channel, port: channel.localAddress!.port!)
        box.withLockedValue { $0 = upstream }
        return upstream
    }

    var received: [UInt8] { self.state.withLockedValue { $0.received } }
    /// How many connections were accepted, how many have ended, and how many bytes came in on all of
    /// them (heads included): "nothing reached the upstream" is `accepted == 0`.
    var accepted: Int { self.state.withLockedValue { $0.accepted } }
    var ended: Int { self.state.withLockedValue { $0.ended } }
    var rawReceived: Int { self.state.withLockedValue { $0.rawReceived } }

    /// Waits until every accepted connection has ended, up to `timeout`.
    func waitUntilAllEnded(timeout: Duration = .seconds(10)) async throws {
        let deadline = ContinuousClock.now + timeout
        while self.state.withLockedValue({ $0.ended < $0.accepted }) {
            guard ContinuousClock.now < deadline else {
                throw PeerError("fake upstream: \(self.accepted - self.ended) connection(s) still open after \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
    var requests: [Request] { self.state.withLockedValue { $0.requests } }
    var flooded: Int { self.state.withLockedValue { $0.flooded } }

    /// Waits until `predicate(received)` holds, up to `timeout`.
    func waitUntilReceived(timeout: Duration = .seconds(15), _ predicate: ([UInt8]) -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !predicate(self.received) {
            guard ContinuousClock.now < deadline else { throw PeerError("fake upstream: condition not met within \(timeout)") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// The frames received so far, parsed as a server parses client frames (RSV1 allowed on first data
    /// frames when `compressed`, as after a permessage-deflate agreement).
    func receivedFrames(compressed: Bool = false) throws -> [(FrameHeader?, ControlFrame?, [UInt8])] {
        var parser = FrameParser(
            role: .server,
            configuration: .init {
                $0.maxFrameSize = 1 << 30
                $0.maxMessageSize = 1 << 30
                if compressed { $0.allowedReservedBits = .rsv1 }
            }
        )
        var buffer = ByteBuffer(bytes: self.received)
        var frames: [(FrameHeader?, ControlFrame?, [UInt8])] = []
        while let event = try parser.next(&buffer) {
            switch event {
            case .header(let header): frames.append((header, nil, []))
            case .payload(let bytes): frames[frames.count - 1].2 += Array(buffer: bytes)
            case .frameEnd: break
            case .control(let frame): frames.append((nil, frame, Array(buffer: frame.payload)))
            }
        }
        return frames
    }

    fileprivate func recordAccepted() { self.state.withLockedValue { $0.accepted += 1 } }
    fileprivate func recordEnded() { self.state.withLockedValue { $0.ended += 1 } }
    fileprivate func recordRaw(_ count: Int) { self.state.withLockedValue { $0.rawReceived += count } }
    fileprivate func record(_ bytes: ByteBuffer) { self.state.withLockedValue { $0.received += Array(buffer: bytes) } }
    fileprivate func record(request: Request, channel: any Channel) {
        self.state.withLockedValue {
            $0.requests.append(request)
            $0.channels.append(channel)
        }
    }
    fileprivate func addFlooded(_ count: Int) { self.state.withLockedValue { $0.flooded += count } }

    /// Writes `bytes` to every live connection (the rest of a frame, say).
    func write(_ bytes: [UInt8]) {
        for channel in self.state.withLockedValue({ $0.channels }) {
            channel.writeAndFlush(ByteBuffer(bytes: bytes), promise: nil)
        }
    }

    /// Closes the live connections abruptly (no Close frame): an upstream that vanishes.
    func dropConnections() {
        for channel in self.state.withLockedValue({ $0.channels }) { channel.close(promise: nil) }
    }

    func close() async {
        self.dropConnections()
        try? await self.serverChannel.close()
    }
}

private final class FakeUpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let script: @Sendable (FakeUpstream.Request) -> FakeUpstream.Reply
    private let owner: NIOLockedValueBox<FakeUpstream?>
    private var head: [UInt8] = []
    private var answered = false
    private var floodFrame: ByteBuffer?

    init(script: @escaping @Sendable (FakeUpstream.Request) -> FakeUpstream.Reply, owner: NIOLockedValueBox<FakeUpstream?>) {
        self.script = script
        self.owner = owner
    }

    private var upstream: FakeUpstream { self.owner.withLockedValue { $0! } }

    func channelActive(context: ChannelHandlerContext) {
        self.upstream.recordAccepted()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.upstream.recordEnded()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = Self.unwrapInboundIn(data)
        self.upstream.recordRaw(buffer.readableBytes)
        if self.answered {
            self.upstream.record(buffer)
            return
        }
        self.head += buffer.readBytes(length: buffer.readableBytes)!
        guard let end = self.head.firstRange(of: [13, 10, 13, 10]) else { return }
        self.answered = true
        let headText = String(decoding: self.head[..<end.lowerBound], as: UTF8.self)
        var request = FakeUpstream.Request(head: headText, key: "")
        request.key = request.header("Sec-WebSocket-Key") ?? ""
        self.upstream.record(request: request, channel: context.channel)
        let rest = ByteBuffer(bytes: self.head[end.upperBound...])
        if rest.readableBytes > 0 { self.upstream.record(rest) }
        let reply = self.script(request)
        context.write(Self.wrapOutboundOut(ByteBuffer(bytes: reply.response)), promise: nil)
        if !reply.then.isEmpty { context.write(Self.wrapOutboundOut(ByteBuffer(bytes: reply.then)), promise: nil) }
        context.flush()
        if reply.closeAfter {
            context.close(promise: nil)
        } else if let size = reply.flood {
            var frame = ByteBuffer()
            FrameHeader(opcode: .binary, payloadLength: size).write(to: &frame)
            frame.writeRepeatingByte(0x5A, count: size)
            self.floodFrame = frame
            self.flood(context: context)
        }
    }

    private func flood(context: ChannelHandlerContext) {
        guard let frame = self.floodFrame else { return }
        while context.channel.isWritable && context.channel.isActive {
            context.writeAndFlush(Self.wrapOutboundOut(frame), promise: nil)
            self.upstream.addFlooded(frame.readableBytes)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.flood(context: context)
    }
}
