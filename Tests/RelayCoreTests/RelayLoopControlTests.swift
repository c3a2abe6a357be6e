import Foundation
import Frames
import NIOCore
import Testing

@testable import RelayCore

/// The loops' operations over loopback (raw-socket client, the raw-socket echo upstream of
/// `RelayCoreSmokeTests`, a 5 s receive deadline on every socket, the suite bounded by a minute): drain,
/// the listener during a drain, the drain deadline, counters after traffic.
@Suite(.timeLimit(.minutes(1))) struct RelayLoopControlTests {
    static let key = "dGhlIHNhbXBsZSBub25jZQ=="

    static func core(upstream: EchoUpstream, loops: Int = 1, configure: (inout RelayCoreConfiguration) -> Void = { _ in }) throws -> RelayCore {
        var configuration = RelayCoreConfiguration()
        configuration.upstreamPort = upstream.port
        configuration.loops = loops
        configuration.tickMilliseconds = 10
        configure(&configuration)
        return try RelayCore(configuration)
    }

    /// A relayed connection with a fragmented message open both ways: the client sent its first fragment
    /// and got the upstream's echo of it.
    static func midMessage(_ core: RelayCore, _ keys: MaskingKeyGenerator, _ parser: inout FrameParser) throws -> TestSocket {
        let client = try TestSocket(port: core.port)
        try client.upgrade(key: Self.key)
        try client.send(frame(.text, Array("hel".utf8), fin: false, key: keys.nextKey()))
        let echo = try client.readFrames(&parser, count: 1)
        #expect(echo == [Echo(opcode: .text, fin: false, payload: Array("hel".utf8))])
        return client
    }

    static func keys() -> MaskingKeyGenerator {
        MaskingKeyGenerator(fill: { raw in for index in raw.indices { raw[index] = UInt8(truncatingIfNeeded: index &+ 3) } })
    }

    /// Nothing is waiting on the socket now (the loop's sends on loopback land before `counters()` returns).
    static func nothingReceived(_ client: TestSocket) -> Bool {
        var byte: UInt8 = 0
        return recv(client.fd, &byte, 1, Int32(MSG_DONTWAIT)) < 0 && errno == EAGAIN && client.pending.readableBytes == 0
    }

    /// As RELIABILITY G-01 asks of the gateway (not a catalog citation: the prototype is not the product): on drain each leg gets Close 1001 at a boundary, after the message in flight; the loop ends with the last connection.
    @Test func drainSendsClose1001ToBothLegsAfterTheMessageInFlight() throws {
        let upstream = try EchoUpstream()
        let core = try Self.core(upstream: upstream)
        defer { core.stop() }
        let keys = Self.keys()
        var parser = FrameParser(role: .client)
        let client = try Self.midMessage(core, keys, &parser)

        core.drain(milliseconds: 20_000)
        _ = core.counters()  // commands run in order: the drain has been processed
        #expect(Self.nothingReceived(client), "no Close inside the fragmented message")

        try client.send(frame(.continuation, Array("lo".utf8), key: keys.nextKey()))
        let rest = try client.readFrames(&parser, count: 2)
        #expect(rest.first == Echo(opcode: .continuation, fin: true, payload: Array("lo".utf8)))
        #expect(rest.last?.opcode == .close)
        #expect(rest.last?.payload.prefix(2) == [0x03, 0xE9], "1001 Going Away")
        #expect(try client.readToEnd().isEmpty)
        #expect(upstream.finish().closeCodes == [1001], "the upstream got the whole message, then 1001")
        core.wait()  // the loop ended: no connection left
        let counters = core.counters()
        #expect(counters.active == 0 && counters.drainForced == 0)
        #expect(counters.messagesToUpstream == 1 && counters.messagesToClient == 1)
    }

    /// As RELIABILITY G-01 (prototype, not cited): the listeners stop accepting at once when the drain starts (new connects are refused).
    @Test func everyLoopsListenerRefusesNewConnectionsDuringTheDrain() throws {
        let upstream = try EchoUpstream()
        let core = try Self.core(upstream: upstream, loops: 2)
        defer { core.stop() }
        var parser = FrameParser(role: .client)
        let client = try Self.midMessage(core, Self.keys(), &parser)
        core.drain(milliseconds: 20_000)
        _ = core.counters()
        for _ in 0..<8 {  // SO_REUSEPORT spreads connects over both listeners: every one is refused
            #expect(throws: RelayCoreError.self) { _ = try TestSocket(port: core.port) }
        }
        #expect(core.counters().active == 1, "the connection in flight is still relayed")
        withExtendedLifetime(client) {}
    }

    /// As RELIABILITY G-02 (prototype, not cited): a peer that stays inside its message is force-closed at the drain deadline, and the loop ends.
    @Test func theDrainDeadlineClosesAConnectionThatNeverReachesABoundary() throws {
        let upstream = try EchoUpstream()
        let core = try Self.core(upstream: upstream) { $0.closeTimeoutMilliseconds = 60_000 }
        defer { core.stop() }
        var parser = FrameParser(role: .client)
        let client = try Self.midMessage(core, Self.keys(), &parser)
        let start = Date()
        core.drain(milliseconds: 300)
        #expect(try client.readToEnd().isEmpty, "no Close could be sent inside the message: TCP ends at the deadline")
        let elapsed = Date().timeIntervalSince(start)
        #expect(elapsed >= 0.25 && elapsed < 5, "closed at the deadline (\(elapsed) s)")
        core.wait()
        #expect(core.counters().drainForced == 1)
        #expect(upstream.finish().closeCodes.isEmpty)
    }

    /// As RELIABILITY G-02 (prototype, not cited): peers that never answer the drain's Close are closed at the deadline.
    @Test func theDrainDeadlineClosesPeersThatNeverAnswerTheClose() throws {
        let upstream = try EchoUpstream(silent: true)
        let core = try Self.core(upstream: upstream) { $0.closeTimeoutMilliseconds = 60_000 }
        defer { core.stop() }
        let client = try TestSocket(port: core.port)
        try client.upgrade(key: Self.key)
        let start = Date()
        core.drain(milliseconds: 300)
        var parser = FrameParser(role: .client)
        let close = try client.readFrames(&parser, count: 1)
        #expect(close.first?.payload.prefix(2) == [0x03, 0xE9], "1001 at once: nothing was in flight")
        #expect(try client.readToEnd().isEmpty, "the client never answers: its TCP ends at the deadline")
        let elapsed = Date().timeIntervalSince(start)
        #expect(elapsed >= 0.25 && elapsed < 5, "closed at the deadline (\(elapsed) s)")
        core.wait()
        #expect(core.counters().drainForced == 1)
        #expect(upstream.finish().closeCodes == [1001], "the upstream got its 1001 and never answered either")
    }

    @Test func aRequestHeadThatCompletesDuringTheDrainIsAnswered503() throws {
        let upstream = try EchoUpstream()
        let core = try Self.core(upstream: upstream)
        defer { core.stop() }
        let client = try TestSocket(port: core.port)
        for _ in 0..<500 where core.counters().accepted == 0 { usleep(2000) }  // accepted before the drain
        core.drain(milliseconds: 20_000)
        try client.send(
            Array(
                ("GET /echo HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Key: \(Self.key)\r\nSec-WebSocket-Version: 13\r\n\r\n").utf8
            )
        )
        #expect(try client.readHead().hasPrefix("HTTP/1.1 503 "))
        #expect(try client.readToEnd().isEmpty)
        core.wait()
        #expect(core.counters().refusedDraining == 1)
    }

    @Test func countersCountMessagesBytesClosesAndRefusalsAcrossLoops() throws {
        let upstream = try EchoUpstream()
        let core = try Self.core(upstream: upstream, loops: 2)
        defer { core.stop() }
        let keys = Self.keys()
        let client = try TestSocket(port: core.port)
        try client.upgrade(key: Self.key)
        let sent = [
            frame(.text, Array(repeating: UInt8(ascii: "a"), count: 10), key: keys.nextKey()),
            frame(.binary, Array(repeating: 7, count: 200), key: keys.nextKey()),
            frame(.text, Array("ab".utf8), fin: false, key: keys.nextKey()),
            frame(.continuation, Array("cd".utf8), key: keys.nextKey()),
        ]
        for bytes in sent { try client.send(bytes) }
        var parser = FrameParser(role: .client)
        let echoes = try client.readFrames(&parser, count: 4)
        let echoed = echoes.map { frame($0.opcode, $0.payload, fin: $0.fin, key: nil) }

        let refused = try TestSocket(port: core.port)
        try refused.send(Array("GET / HTTP/1.1\r\nHost: test\r\n\r\n".utf8))
        #expect(try refused.readHead().hasPrefix("HTTP/1.1 400 "))

        var counters = core.counters()
        #expect(counters.accepted == 2)
        #expect(counters.active >= 1)
        #expect(counters.messagesToUpstream == 3 && counters.messagesToClient == 3, "a fragmented message counts once")
        #expect(counters.bytesToUpstream == UInt64(sent.map(\.count).reduce(0, +)), "remasked frames keep their size")
        #expect(counters.bytesToClient == UInt64(echoed.map(\.count).reduce(0, +)))
        #expect(counters.refusedBadRequest == 1 && counters.refusedBadGateway == 0)

        try client.send(frame(.close, [0x03, 0xE8], key: keys.nextKey()))
        #expect(try client.readFrames(&parser, count: 1).first?.opcode == .close)
        counters = core.counters()
        #expect(counters.closesByCode == [1000: 2], "the client's Close and the upstream's answer")
    }
}
