import Frames
import MetricsTestKit
import NIOCore
import Testing

@testable import Gateway

/// permessage-deflate through the gateway over real sockets (DESIGN §4): client leg only, upstream leg
/// only, both legs (verbatim), the decompression bomb, invalid upstream answers, and the counters.
@Suite(.timeLimit(.minutes(2))) struct GatewayDeflateTests {
    private static let offer = [("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")]

    private static func policy(
        client: GatewayConfiguration.ExtensionMode,
        upstream: GatewayConfiguration.ExtensionMode
    ) -> (inout GatewayConfiguration) -> Void {
        { $0.routes[0].extensions.permessageDeflate = .init(client: client, upstream: upstream) }
    }

    /// Compresses `message` as one message with a fresh context.
    private static func compress(_ message: [UInt8], takeover deflater: PerMessageDeflater? = nil) throws -> [UInt8] {
        var writer = PerMessageDeflateWriter(deflater: deflater ?? PerMessageDeflater(windowBits: 15, noContextTakeover: true))
        var out: [UInt8] = []
        try writer.append(ByteBuffer(bytes: message)) { out += $0.readableBytesView }
        out += try writer.finish { out += $0.readableBytesView }.readableBytesView
        return out
    }

    /// Reads one whole message from `client`, inflating it with `inflater` when its first frame has RSV1.
    private static func receive(
        _ client: TestWebSocketClient,
        _ inflater: PerMessageInflater
    ) async throws -> (compressed: Bool, opcode: Opcode, bytes: [UInt8]) {
        var (header, payload) = try await client.receiveFrame()
        let compressed = header.reservedBits.contains(.rsv1)
        let opcode = header.opcode
        var all = payload
        while !header.fin {
            (header, payload) = try await client.receiveFrame()
            #expect(header.opcode == .continuation && header.reservedBits.isEmpty)
            all += payload
        }
        guard compressed else { return (false, opcode, all) }
        var reader = PerMessageDeflateReader(inflater: inflater)
        try reader.begin(validatingUTF8: opcode == .text)
        var plain: [UInt8] = []
        try reader.append(ByteBuffer(bytes: all)) { plain += $0.readableBytesView }
        if let last = try reader.finish({ plain += $0.readableBytesView }) { plain += last.readableBytesView }
        return (true, opcode, plain)
    }

    private static func sendCompressed(_ client: TestWebSocketClient, opcode: Opcode = .text, _ compressed: [UInt8], fragments: Int = 1) async throws
    {
        var encoder = FrameEncoder(role: .client)
        var bytes = ByteBuffer()
        let size = (compressed.count + fragments - 1) / fragments
        var start = 0
        var index = 0
        repeat {
            let end = min(compressed.count, start + size)
            encoder.writeFrame(
                opcode: index == 0 ? opcode : .continuation,
                fin: end == compressed.count,
                reservedBits: index == 0 ? .rsv1 : [],
                payload: ByteBuffer(bytes: compressed[start..<end]),
                to: &bytes
            )
            start = end
            index += 1
        } while start < compressed.count
        try await client.sendRaw(Array(buffer: bytes))
    }

    private static func counter(_ metrics: TestMetrics, _ label: String, _ dimensions: [(String, String)]) -> Int64 {
        metrics.counters(label: label)
            .filter { counter in dimensions.allSatisfy { wanted in counter.dimensions.contains { $0 == wanted } } }
            .reduce(0) { $0 + $1.totalValue }
    }

    private static func json(_ count: Int) -> [UInt8] {
        Array((0..<count).map { "{\"n\":\($0),\"text\":\"héllo ✓ wsgate\"}" }.joined(separator: ",").utf8)
    }

    // MARK: Client leg only

    /// Catalog H-16: negotiate on the client leg only: the client leg is compressed, the upstream leg is not, messages byte-exact.
    @Test func clientLegOnlyInflatesTowardTheUpstreamAndCompressesTowardTheClient() async throws {
        let metrics = TestMetrics()
        try await withGatewayAndDemo(metrics: metrics, configure: Self.policy(client: .negotiate, upstream: .strip)) { port in
            let client = try await TestWebSocketClient.connect(
                port: port,
                path: "/echo",
                headers: [("Sec-WebSocket-Extensions", "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits")]
            )
            #expect(client.responseHeaders.filter { $0.0 == "Sec-WebSocket-Extensions" }.map(\.1) == ["permessage-deflate"])
            let inflater = PerMessageInflater(windowBits: 15, noContextTakeover: false, maxMessageSize: 64 << 20)
            // RFC 7692 §7.2.3.1 "Hello".
            try await Self.sendCompressed(client, [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00])
            let hello = try await Self.receive(client, inflater)
            // Issue #10 item 5: "Hello" deflates to 7 bytes, more than its 5: it comes back uncompressed.
            #expect(!hello.compressed && hello.opcode == .text && hello.bytes == Array("Hello".utf8))
            // A bigger message in 5 fragments comes back compressed.
            let big = Self.json(5000)
            try await Self.sendCompressed(client, try Self.compress(big), fragments: 5)
            let echoed = try await Self.receive(client, inflater)
            #expect(echoed.compressed && echoed.bytes == big)
            try await client.send(binary: [1, 2, 3])
            let binary = try await Self.receive(client, inflater)
            #expect(!binary.compressed && binary.opcode == .binary && binary.bytes == [1, 2, 3])
            let document = Self.json(50)
            try await client.send(binary: document)
            let compressedBack = try await Self.receive(client, inflater)
            #expect(compressedBack.compressed && compressedBack.bytes == document)
            // Incompressible and larger than the gateway's 32 KiB output frames: it comes back uncompressed.
            var generator = SystemRandomNumberGenerator()
            let noise = (0..<300_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
            try await Self.sendCompressed(client, opcode: .binary, try Self.compress(noise), fragments: 7)
            let noisy = try await Self.receive(client, inflater)
            #expect(!noisy.compressed && noisy.bytes == noise)
            try await client.close(code: .normalClosure)
            #expect(try await client.receiveMessage() == .close(.normalClosure, ""))
        }
        #expect(Self.counter(metrics, "wsgate_extension_decisions_total", [("side", "client"), ("decision", "negotiated")]) == 1)
        #expect(Self.counter(metrics, "wsgate_extension_decisions_total", [("side", "upstream"), ("decision", "stripped")]) == 1)
        #expect(Self.counter(metrics, "wsgate_extensions_dropped_total", [("side", "client")]) == 1)
    }

    /// Catalog H-16: with strip, no Sec-WebSocket-Extensions in the 101 and RSV1 from the client fails the connection with 1002.
    @Test func stripIsTheDefaultAndRSV1IsThenAViolation() async throws {
        let metrics = TestMetrics()
        try await withGatewayAndDemo(metrics: metrics) { port in
            let client = try await TestWebSocketClient.connect(port: port, path: "/echo", headers: Self.offer)
            #expect(!client.responseHeaders.contains { $0.0.lowercased() == "sec-websocket-extensions" })
            try await Self.sendCompressed(client, [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00])
            let close = try await client.receiveMessage()
            guard case .close(let code, _) = close else {
                Issue.record("\(close)")
                return
            }
            #expect(code == .protocolError)
        }
        #expect(Self.counter(metrics, "wsgate_extension_decisions_total", [("side", "client"), ("decision", "stripped")]) == 1)
    }

    /// RELIABILITY R-05: 100 MiB of zeros in about 100 KiB; the client gets 1009, the upstream 1001, and
    /// nothing beyond the limit is forwarded.
    @Test func decompressionBombFromTheClientGets1009() async throws {
        try await withGatewayAndRecordingUpstream(
            configure: {
                Self.policy(client: .negotiate, upstream: .strip)(&$0)
                $0.timeouts.close = .milliseconds(300)
            }
        ) { port, upstream in
            let client = try await TestWebSocketClient.connect(port: port, path: "/", headers: Self.offer)
            let deflater = PerMessageDeflater(windowBits: 15, noContextTakeover: false, level: 9)
            var input = ByteBuffer(bytes: [UInt8](repeating: 0, count: 1 << 20))
            var output = ByteBuffer()
            output.reserveCapacity(64 * 1024)
            while try deflater.compress(&input, into: &output) { output.reserveCapacity(output.capacity * 2) }
            while try deflater.flush(into: &output) { output.reserveCapacity(output.capacity * 2) }
            let segment = Array(output.readableBytesView)
            let bomb = Array([[UInt8]](repeating: segment, count: 100).joined())
            #expect(bomb.count < 200 * 1024)
            try await Self.sendCompressed(client, opcode: .binary, bomb)
            let close = try await client.receiveMessage(timeout: .seconds(10))
            guard case .close(let code, _) = close else {
                Issue.record("\(close)")
                return
            }
            #expect(code == .messageTooBig)
            // The client's 1009 no longer waits for the upstream (issue #10): the upstream's 1001 is sent in
            // the same turn, so it may still be on its way.
            try await upstream.waitUntilReceived { _ in (try? upstream.receivedFrames().last?.1?.closeCode) != nil }
            // The upstream got at most the limit (1 MiB) of inflated data, then a 1001.
            #expect(upstream.received.count <= (1 << 20) + 64 * 1024)
            let frames = try upstream.receivedFrames()
            #expect(frames.last?.1?.closeCode == .goingAway)
        }
    }

    // MARK: Upstream leg only

    @Test func upstreamLegOnlyCompressesTowardTheUpstreamAndInflatesTowardTheClient() async throws {
        // "Hello" compressed by the upstream (server frames are not masked).
        let fromUpstream: [UInt8] = [0xC1, 0x07, 0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]
        let upstream = try await FakeUpstream.start { request in
            var reply = FakeUpstream.Reply.accept(request, extraHeaders: "Sec-WebSocket-Extensions: permessage-deflate\r\n")
            reply.then = fromUpstream
            return reply
        }
        defer { Task { await upstream.close() } }
        let metrics = TestMetrics()
        try await withGateway(upstreamPort: upstream.port, metrics: metrics, configure: Self.policy(client: .strip, upstream: .negotiate)) { port in
            let client = try await TestWebSocketClient.connect(port: port, path: "/", headers: Self.offer)
            #expect(!client.responseHeaders.contains { $0.0.lowercased() == "sec-websocket-extensions" })
            #expect(upstream.requests.first?.header("Sec-WebSocket-Extensions") == "permessage-deflate; client_max_window_bits")
            #expect(try await client.receiveMessage() == .text("Hello"))
            let big = Self.json(3000)
            try await client.send(text: String(decoding: big, as: UTF8.self))
            try await upstream.waitUntilReceived { _ in ((try? upstream.receivedFrames(compressed: true)) ?? []).contains { $0.0?.fin == true } }
            let frames = try upstream.receivedFrames(compressed: true)
            #expect(frames.first?.0?.reservedBits == .rsv1)
            let wire = frames.flatMap(\.2)
            #expect(wire.count < big.count / 4)
            var reader = PerMessageDeflateReader(inflater: PerMessageInflater(windowBits: 15, noContextTakeover: false, maxMessageSize: 1 << 20))
            try reader.begin(validatingUTF8: true)
            var plain: [UInt8] = []
            try reader.append(ByteBuffer(bytes: wire)) { plain += $0.readableBytesView }
            if let last = try reader.finish({ plain += $0.readableBytesView }) { plain += last.readableBytesView }
            #expect(plain == big)
        }
        #expect(Self.counter(metrics, "wsgate_extension_decisions_total", [("side", "upstream"), ("decision", "negotiated")]) == 1)
        #expect(Self.counter(metrics, "wsgate_extension_decisions_total", [("side", "client"), ("decision", "stripped")]) == 1)
    }

    // MARK: Both legs: verbatim

    @Test func identicalParametersForwardTheCompressedPayloadVerbatim() async throws {
        let compressedHello: [UInt8] = [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]
        let upstream = try await FakeUpstream.start { request in
            var reply = FakeUpstream.Reply.accept(
                request,
                extraHeaders: "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12; client_max_window_bits=12\r\n"
            )
            reply.then = [0xC1, 0x07] + compressedHello
            return reply
        }
        defer { Task { await upstream.close() } }
        try await withGateway(upstreamPort: upstream.port, configure: Self.policy(client: .negotiate, upstream: .negotiate)) { port in
            let client = try await TestWebSocketClient.connect(port: port, path: "/", headers: Self.offer)
            // The client is answered with the upstream's parameters (its offer allows them).
            #expect(
                client.responseHeaders.filter { $0.0 == "Sec-WebSocket-Extensions" }.map(\.1)
                    == ["permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"]
            )
            let (header, payload) = try await client.receiveFrame()
            #expect(header.reservedBits == .rsv1 && payload == compressedHello, "the upstream's bytes, unchanged")
            // The client's compressed fragments reach the upstream byte for byte (remasked).
            let message = try Self.compress(Self.json(400))
            try await Self.sendCompressed(client, message, fragments: 3)
            try await upstream.waitUntilReceived { _ in ((try? upstream.receivedFrames(compressed: true)) ?? []).count >= 3 }
            let frames = try upstream.receivedFrames(compressed: true)
            #expect(frames.count == 3, "fragmentation is preserved on the verbatim path")
            #expect(frames.flatMap(\.2) == message)
            #expect(frames.map { $0.0?.reservedBits } == [.rsv1, [], []])
        }
    }

    /// The client limits the gateway's window to 10 bits, the upstream compresses with 15: upstream →
    /// client cannot go verbatim and is re-compressed; client → upstream still goes verbatim.
    @Test func differentParametersAreTranscodedPerDirection() async throws {
        let document = Self.json(40)
        var fromUpstream = ByteBuffer()
        var encoder = FrameEncoder(role: .server)
        encoder.writeFrame(opcode: .text, reservedBits: .rsv1, payload: ByteBuffer(bytes: try Self.compress(document)), to: &fromUpstream)
        let then = Array(fromUpstream.readableBytesView)
        let upstream = try await FakeUpstream.start { request in
            var reply = FakeUpstream.Reply.accept(request, extraHeaders: "Sec-WebSocket-Extensions: permessage-deflate\r\n")
            reply.then = then
            return reply
        }
        defer { Task { await upstream.close() } }
        try await withGateway(upstreamPort: upstream.port, configure: Self.policy(client: .negotiate, upstream: .negotiate)) { port in
            let client = try await TestWebSocketClient.connect(
                port: port,
                path: "/",
                headers: [("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=10")]
            )
            #expect(
                client.responseHeaders.filter { $0.0 == "Sec-WebSocket-Extensions" }.map(\.1) == ["permessage-deflate; server_max_window_bits=10"]
            )
            let inflater = PerMessageInflater(windowBits: 10, noContextTakeover: false, maxMessageSize: 1 << 20)
            let received = try await Self.receive(client, inflater)
            #expect(received.compressed && received.bytes == document)
            let message = try Self.compress(Self.json(300))
            try await Self.sendCompressed(client, message, fragments: 2)
            try await upstream.waitUntilReceived { _ in ((try? upstream.receivedFrames(compressed: true)) ?? []).count >= 2 }
            #expect(try upstream.receivedFrames(compressed: true).flatMap(\.2) == message)
        }
    }

    @Test func verbatimPathStillValidatesUTF8AfterInflation() async throws {
        let upstream = try await FakeUpstream.start { .accept($0, extraHeaders: "Sec-WebSocket-Extensions: permessage-deflate\r\n") }
        defer { Task { await upstream.close() } }
        try await withGateway(
            upstreamPort: upstream.port,
            configure: {
                Self.policy(client: .negotiate, upstream: .negotiate)(&$0)
                $0.timeouts.close = .milliseconds(300)
            }
        ) { port in
            let client = try await TestWebSocketClient.connect(port: port, path: "/", headers: [("Sec-WebSocket-Extensions", "permessage-deflate")])
            try await Self.sendCompressed(client, try Self.compress(Array("bad \u{FFFD}".utf8).dropLast(3) + [0xC0, 0xAF]))
            let close = try await client.receiveMessage()
            guard case .close(let code, _) = close else {
                Issue.record("\(close)")
                return
            }
            #expect(code == .invalidPayloadData)
        }
    }

    // MARK: Invalid upstream answers (RELIABILITY U-06)

    /// Catalog U-06: invalid permessage-deflate answers (window bits 16, 7, abc, two elements, unknown parameters, an extension not offered) are 502 before any 101.
    @Test(arguments: [
        ("negotiate", "permessage-deflate; server_max_window_bits=16"),
        ("negotiate", "permessage-deflate; server_max_window_bits=7"),
        ("negotiate", "permessage-deflate; server_max_window_bits=abc"),
        ("negotiate", "permessage-deflate, permessage-deflate"),
        ("negotiate", "permessage-deflate; x=1"),
        ("negotiate", "x-webkit-deflate-frame"),
        ("strip", "permessage-deflate"),
    ])
    func invalidExtensionAnswersFromTheUpstreamAre502(mode: String, answer: String) async throws {
        let upstream = try await FakeUpstream.start { .accept($0, extraHeaders: "Sec-WebSocket-Extensions: \(answer)\r\n") }
        defer { Task { await upstream.close() } }
        try await withGateway(
            upstreamPort: upstream.port,
            configure: Self.policy(client: .negotiate, upstream: GatewayConfiguration.ExtensionMode(mode)!)
        ) { port in
            await #expect(throws: TestWebSocketClient.Failure.self) {
                _ = try await TestWebSocketClient.connect(port: port, path: "/", headers: Self.offer)
            }
            let answer = try await TestWebSocketClient.rawHandshake(
                port: port,
                request:
                    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            #expect(answer.status == 502)
        }
    }
}
