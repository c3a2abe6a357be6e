import Frames
import NIOCore
import NIOEmbedded
import Testing

@testable import Gateway

@Suite struct RelaySessionTests {
    /// The session holds both legs' contexts, each context its handler and each handler the session:
    /// a cycle that kept every closed connection's session, handlers and pipelines alive (~1.5 KiB per
    /// connection, the RSS growth seen over the load runs). Removing the handlers must free them.
    @Test func aSessionIsFreedWhenBothLegsAreClosed() throws {
        let loop = EmbeddedEventLoop()
        weak var weakSession: RelaySession?
        weak var weakHandler: RelayHandler?
        try {
            let session = RelaySession(eventLoop: loop, limits: .init(), closeTimeout: .seconds(5), idleTimeout: .seconds(120))
            weakSession = session
            let handler = RelayHandler(side: .client, session: session)
            weakHandler = handler
            let client = EmbeddedChannel(handler: handler, loop: loop)
            let upstream = EmbeddedChannel(handler: RelayHandler(side: .upstream, session: session), loop: loop)
            _ = try client.finish(acceptAlreadyClosed: true)
            _ = try upstream.finish(acceptAlreadyClosed: true)
            loop.run()
        }()
        #expect(weakHandler == nil)
        #expect(weakSession == nil)
    }

    /// The transport keeps one scheduled callback per connection, at the earliest of its timers: once
    /// the legs close and every timer is cancelled, the loop must not keep the session (and through it
    /// both pipelines) until the farthest deadline (a keep-alive, a lifetime of hours, a token expiry).
    /// Then a session whose timers are due together: each fires at its own deadline, to the millisecond.
    @Test func longTimersDoNotKeepAClosedSessionAndEarlierOnesAreNotDelayedByThem() throws {
        let loop = EmbeddedEventLoop()
        weak var weakSession: RelaySession?
        try {
            var policy = RelayPolicy()
            policy.pingInterval = .seconds(30)
            policy.maxLifetime = .hours(10)
            policy.tokenExpiry = .hours(5)
            let (session, client, upstream) = try Self.connectedLegs(on: loop, idleTimeout: .hours(1), policy: policy)
            weakSession = session
            _ = try client.finish(acceptAlreadyClosed: true)
            _ = try upstream.finish(acceptAlreadyClosed: true)
            loop.run()
        }()
        #expect(weakSession == nil, "the loop still holds the closed session")

        // Lifetime 10 s armed first, then a keep-alive at 4 s: the keep-alive's Ping comes at 4 s
        // exactly, not at the 10 s callback armed before it; the lifetime's 1001 at 10 s exactly.
        let pair = try RelayHandlerEmbeddedTests.Pair {
            $0.maxLifetime = .seconds(10)
            $0.pingInterval = .seconds(4)
        }
        pair.loop.advanceTime(by: .milliseconds(3999))
        #expect(try pair.written(to: .client).isEmpty)
        pair.loop.advanceTime(by: .milliseconds(1))
        #expect(try RelayHandlerEmbeddedTests.frames(pair.written(to: .client), sentTo: .client).map(\.opcode) == [.ping])
        try pair.deliver(RelayHandlerEmbeddedTests.clientFrame(.pong, []), from: .client)
        _ = try pair.written(to: .upstream)
        pair.loop.advanceTime(by: .milliseconds(5999))
        let beforeLifetime = try RelayHandlerEmbeddedTests.frames(pair.written(to: .client), sentTo: .client)
        #expect(!beforeLifetime.contains { $0.opcode == .close })
        pair.loop.advanceTime(by: .milliseconds(1))
        let atLifetime = try RelayHandlerEmbeddedTests.frames(pair.written(to: .client), sentTo: .client)
        #expect(atLifetime.last?.opcode == .close)
        #expect(atLifetime.last.map { UInt16($0.payload[0]) << 8 | UInt16($0.payload[1]) } == 1001)
    }

    /// The read that completes the close handshake ends with the parser past its Close (not "between
    /// messages"): the frame deadline must not be armed after the session finished. It was, and held the
    /// finished session, both pipelines and a slot in the loop's timer queue for `timeouts.frame` (30 s)
    /// after every connection that closed cleanly.
    @Test(arguments: [Side.client, .upstream])
    func noTimerIsArmedByTheReadThatFinishesTheSession(lastCloseFrom last: Side) throws {
        let loop = EmbeddedEventLoop()
        weak var weakSession: RelaySession?
        try {
            var policy = RelayPolicy()
            policy.frameTimeout = .seconds(30)
            let (session, client, upstream) = try Self.connectedLegs(on: loop, idleTimeout: .seconds(120), policy: policy)
            weakSession = session
            let close = RelayHandlerEmbeddedTests.closePayload(1000)
            let frames = PerSide(
                client: RelayHandlerEmbeddedTests.clientFrame(.close, close),
                upstream: RelayHandlerEmbeddedTests.upstreamFrame(.close, close)
            )
            for side in [last.other, last] {
                let channel = side == .client ? client : upstream
                try channel.writeInbound(ByteBuffer(bytes: frames[side]))
                channel.pipeline.fireChannelReadComplete()
            }
            #expect(!client.isActive && !upstream.isActive, "the close handshake ended both connections")
            loop.run()
        }()
        #expect(weakSession == nil, "a timer armed after the end holds the session")
    }

    /// A session under `policy` with both legs' relay handlers on connected embedded channels.
    private static func connectedLegs(
        on loop: EmbeddedEventLoop,
        idleTimeout: TimeAmount,
        policy: RelayPolicy
    ) throws -> (RelaySession, client: EmbeddedChannel, upstream: EmbeddedChannel) {
        let session = RelaySession(eventLoop: loop, limits: .init(), closeTimeout: .seconds(5), idleTimeout: idleTimeout, policy: policy)
        let client = EmbeddedChannel(handler: RelayHandler(side: .client, session: session), loop: loop)
        let upstream = EmbeddedChannel(handler: RelayHandler(side: .upstream, session: session), loop: loop)
        try client.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
        try upstream.connect(to: .init(ipAddress: "127.0.0.1", port: 2)).wait()
        return (session, client, upstream)
    }

    /// The relay forwards what one read parsed as one write: a header or control frame split across
    /// reads must still come out whole and in order, in both directions, wherever the reads end.
    @Test(arguments: [1, 2, 3, 5, 7, 13, 64, 4096])
    func framesSplitAnywhereAreRelayedExactly(readSize: Int) throws {
        let loop = EmbeddedEventLoop()
        let session = RelaySession(eventLoop: loop, limits: .init(), closeTimeout: .seconds(5), idleTimeout: .seconds(120))
        let client = EmbeddedChannel(handler: RelayHandler(side: .client, session: session), loop: loop)
        let upstream = EmbeddedChannel(handler: RelayHandler(side: .upstream, session: session), loop: loop)

        // Upstream → client: unmasked frames go out byte for byte as they came.
        var server = FrameEncoder(role: .server)
        var fromUpstream = ByteBuffer()
        Self.writeSample(with: &server, to: &fromUpstream)
        let upstreamBytes = Array(buffer: fromUpstream)
        for start in stride(from: 0, to: upstreamBytes.count, by: readSize) {
            try upstream.writeInbound(ByteBuffer(bytes: upstreamBytes[start..<min(upstreamBytes.count, start + readSize)]))
        }
        var toClient: [UInt8] = []
        while let bytes = try client.readOutbound(as: ByteBuffer.self) { toClient += Array(buffer: bytes) }
        #expect(toClient == upstreamBytes)

        // Client → upstream: the same frames, masked by the client, arrive remasked, in order.
        var clientEncoder = FrameEncoder(role: .client)
        var fromClient = ByteBuffer()
        Self.writeSample(with: &clientEncoder, to: &fromClient)
        let clientBytes = Array(buffer: fromClient)
        for start in stride(from: 0, to: clientBytes.count, by: readSize) {
            try client.writeInbound(ByteBuffer(bytes: clientBytes[start..<min(clientBytes.count, start + readSize)]))
        }
        var toUpstream = ByteBuffer()
        while var bytes = try upstream.readOutbound(as: ByteBuffer.self) { toUpstream.writeBuffer(&bytes) }
        #expect(try Self.frames(in: toUpstream, role: .server) == Self.frames(in: fromUpstream, role: .client))
        #expect(session.stats.client.messages == 3 && session.stats.upstream.messages == 3)

        _ = try client.finish(acceptAlreadyClosed: true)
        _ = try upstream.finish(acceptAlreadyClosed: true)
    }

    /// A fragmented text message with a Ping between its fragments, then a 300-byte binary message (a
    /// 16-bit length), then a one-byte text message.
    private static func writeSample(with encoder: inout FrameEncoder, to buffer: inout ByteBuffer) {
        encoder.writeFrame(opcode: .text, fin: false, payload: ByteBuffer(string: "héllo "), to: &buffer)
        encoder.writeFrame(opcode: .ping, payload: ByteBuffer(string: "p"), to: &buffer)
        encoder.writeFrame(opcode: .continuation, payload: ByteBuffer(string: "wörld"), to: &buffer)
        encoder.writeFrame(opcode: .binary, payload: ByteBuffer(repeating: 7, count: 300), to: &buffer)
        encoder.writeFrame(opcode: .text, payload: ByteBuffer(string: "!"), to: &buffer)
    }

    /// Opcode, FIN and unmasked payload of each frame; the parser's role checks the masking.
    private static func frames(in buffer: ByteBuffer, role: FrameParser.Role) throws -> [String] {
        var parser = FrameParser(role: role)
        var buffer = buffer
        var frames: [String] = []
        var payload: [UInt8] = []
        var current = ""
        while let event = try parser.next(&buffer) {
            switch event {
            case .header(let header): current = "\(header.opcode) fin=\(header.fin)"
            case .payload(let bytes): payload += Array(buffer: bytes)
            case .frameEnd:
                frames.append("\(current) \(payload)")
                payload = []
            case .control(let frame): frames.append("\(frame.opcode) \(Array(buffer: frame.payload))")
            }
        }
        #expect(buffer.readableBytes == 0)
        return frames
    }
}
