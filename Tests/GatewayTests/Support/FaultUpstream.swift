import Frames
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// An upstream for fault storms (ResetStormTests): many connections at once, each tallied on its own.
/// After a valid 101 it either streams binary frames for as long as the gateway takes them (`flood`:
/// the gateway is always writing toward its client), or reads a number of bytes of what the gateway
/// relays and then resets the connection (SO_LINGER {1, 0}) while the gateway is still writing to it.
/// It records the code of every Close it receives, and how many connections ended.
final class FaultUpstream: Sendable {
    enum Behaviour: Sendable {
        /// Binary frames of this payload size, while the socket takes them; a Close is answered.
        case flood(frameSize: Int)
        /// Reset once this many bytes after the request head have arrived.
        case resetAfter(bytes: Int)
        /// Write these bytes right behind the 101, then wait for ``resetConnections()``.
        case send([UInt8])
    }

    struct Tally: Sendable, Equatable {
        var accepted = 0
        var ended = 0
        var resets = 0
        /// Close codes received (0: a Close without a code).
        var closeCodes: [UInt16: Int] = [:]
    }

    private let tally = NIOLockedValueBox(Tally())
    private let serverChannel: any Channel
    let port: Int

    private init(serverChannel: any Channel, port: Int) {
        self.serverChannel = serverChannel
        self.port = port
    }

    static func start(_ behaviour: Behaviour) async throws -> FaultUpstream {
        let box = NIOLockedValueBox<FaultUpstream?>(nil)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // A flood is only as deep as the buffers in the way: keep the kernel's small.
            .childChannelOption(.socketOption(.so_sndbuf), value: 64 << 10)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(FaultUpstreamHandler(behaviour: behaviour, owner: box))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        let upstream = FaultUpstream(serverChannel: channel, port: channel.localAddress!.port!)
        box.withLockedValue { $0 = upstream }
        return upstream
    }

    var current: Tally { self.tally.withLockedValue { $0 } }

    /// Connections of a `send` upstream, waiting for ``resetConnections()``.
    fileprivate let holding = NIOLockedValueBox<[any Channel]>([])

    /// Resets every connection a `send` upstream holds.
    func resetConnections() {
        for channel in self.holding.withLockedValue({ $0 }) { self.reset(channel) }
    }

    /// Closes with SO_LINGER {1, 0}: the kernel sends RST (what is unread on the other end is lost).
    fileprivate func reset(_ channel: any Channel) {
        self.update { $0.resets += 1 }
        (channel as? any SocketOptionProvider)?.setSoLinger(linger(l_onoff: 1, l_linger: 0))
            .whenComplete { _ in channel.close(promise: nil) }
    }

    fileprivate func update(_ change: (inout Tally) -> Void) { self.tally.withLockedValue(change) }

    func close() async { try? await self.serverChannel.close() }
}

private final class FaultUpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let behaviour: FaultUpstream.Behaviour
    private let owner: NIOLockedValueBox<FaultUpstream?>
    private var head: [UInt8] = []
    private var answered = false
    private var received = 0
    private var floodFrame: ByteBuffer?
    private var parser = FrameParser(
        role: .server,
        configuration: .init {
            $0.maxFrameSize = 1 << 30
            $0.maxMessageSize = 1 << 30
        }
    )

    init(behaviour: FaultUpstream.Behaviour, owner: NIOLockedValueBox<FaultUpstream?>) {
        self.behaviour = behaviour
        self.owner = owner
    }

    private var upstream: FaultUpstream { self.owner.withLockedValue { $0! } }

    func channelActive(context: ChannelHandlerContext) {
        self.upstream.update { $0.accepted += 1 }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.upstream.update { $0.ended += 1 }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = Self.unwrapInboundIn(data)
        if !self.answered {
            self.head += buffer.readBytes(length: buffer.readableBytes)!
            guard let end = self.head.firstRange(of: [13, 10, 13, 10]) else { return }
            self.answered = true
            buffer = ByteBuffer(bytes: self.head[end.upperBound...])
            let request = FakeUpstream.Request(head: String(decoding: self.head[..<end.lowerBound], as: UTF8.self), key: "")
            let key = request.header("Sec-WebSocket-Key") ?? ""
            let response =
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(HandshakeKey.acceptValue(forKey: key))\r\n\r\n"
            context.writeAndFlush(Self.wrapOutboundOut(ByteBuffer(string: response)), promise: nil)
            if case .send(let bytes) = self.behaviour {
                context.writeAndFlush(Self.wrapOutboundOut(ByteBuffer(bytes: bytes)), promise: nil)
                self.upstream.holding.withLockedValue { $0.append(context.channel) }
                return
            }
            if case .flood(let size) = self.behaviour {
                var frame = ByteBuffer()
                FrameHeader(opcode: .binary, payloadLength: size).write(to: &frame)
                frame.writeRepeatingByte(0x5A, count: size)
                self.floodFrame = frame
                self.flood(context: context)
            }
        }
        switch self.behaviour {
        case .resetAfter(let limit):
            self.received += buffer.readableBytes
            if self.received >= limit, context.channel.isActive {
                self.received = Int.min
                self.reset(context.channel)
            }
        case .send:
            break
        case .flood:
            self.parseClientFrames(&buffer, context: context)
        }
    }

    private func reset(_ channel: any Channel) {
        self.upstream.reset(channel)
    }

    /// Finds the gateway's Close among what it relays, records its code and answers it.
    private func parseClientFrames(_ buffer: inout ByteBuffer, context: ChannelHandlerContext) {
        while let event = try? self.parser.next(&buffer) {
            guard case .control(let frame) = event, frame.opcode == .close else { continue }
            let code = frame.payload.getInteger(at: frame.payload.readerIndex, as: UInt16.self) ?? 0
            self.upstream.update { $0.closeCodes[code, default: 0] += 1 }
            self.floodFrame = nil
            var close = ByteBuffer()
            FrameHeader(opcode: .close, payloadLength: 2).write(to: &close)
            close.writeInteger(code)
            let channel = context.channel
            context.writeAndFlush(Self.wrapOutboundOut(close)).whenComplete { _ in channel.close(promise: nil) }
            return
        }
    }

    private func flood(context: ChannelHandlerContext) {
        while let frame = self.floodFrame, context.channel.isWritable, context.channel.isActive {
            context.writeAndFlush(Self.wrapOutboundOut(frame), promise: nil)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.flood(context: context)
        context.fireChannelWritabilityChanged()
    }
}
