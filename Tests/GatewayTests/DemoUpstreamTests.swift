import Foundation
import Frames
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import Testing

@testable import Gateway

/// The built-in demo upstream over real loopback sockets, driven by ``TestWebSocketClient`` and, in
/// ``DemoUpstreamInteropTests``, by an independent implementation (Python `websockets`).
@Suite("DemoUpstream", .timeLimit(.minutes(1)))
struct DemoUpstreamTests {
    // MARK: /echo

    @Test func echoesTextAndBinary() async throws {
        try await withDemo { demo in
            let client = try await TestWebSocketClient.connect(port: demo.port, path: "/echo")
            try await client.send(text: "héllo, wörld")
            #expect(try await client.receiveMessage() == .text("héllo, wörld"))
            try await client.send(binary: [0, 1, 2, 0xFF])
            #expect(try await client.receiveMessage() == .binary([0, 1, 2, 0xFF]))
            try await client.send(text: "")
            #expect(try await client.receiveMessage() == .text(""))
        }
    }

    @Test func echoesOneMebibyteByteExactInOneFrame() async throws {
        try await withDemo { demo in
            let client = try await TestWebSocketClient.connect(port: demo.port, path: "/echo")
            let payload = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 ^ $0 >> 9) }
            try await client.send(binary: payload)
            let (header, echoed) = try await client.receiveFrame()
            #expect(header.opcode == .binary && header.fin && header.payloadLength == 1 << 20)
            #expect(header.maskingKey == nil)
            #expect(echoed == payload)
        }
    }

    @Test func preservesFragmentationAndAnswersPingsBetweenFragments() async throws {
        try await withDemo { demo in
            let client = try await TestWebSocketClient.connect(port: demo.port, path: "/echo")
            try await client.sendFrame(opcode: .text, fin: false, payload: Array("Hel".utf8))
            try await client.ping([7, 7])
            try await client.sendFrame(opcode: .continuation, fin: false, payload: Array("lo, ".utf8))
            try await client.sendFrame(opcode: .continuation, fin: true, payload: Array("world".utf8))

            let expected: [(Opcode, Bool, String)] = [
                (.text, false, "Hel"), (.pong, true, "\u{7}\u{7}"), (.continuation, false, "lo, "),
                (.continuation, true, "world"),
            ]
            for (opcode, fin, text) in expected {
                let (header, payload) = try await client.receiveFrame()
                #expect(header.opcode == opcode)
                #expect(header.fin == fin)
                #expect(payload == Array(text.utf8))
            }
        }
    }

    @Test func answersPingWithPongCarryingTheSamePayload() async throws {
        try await withDemo { demo in
            let client = try await TestWebSocketClient.connect(port: demo.port, path: "/echo")
            try await client.ping([1, 2, 3])
            #expect(try await client.receiveMessage() == .pong([1, 2, 3]))
            try await client.ping()
            #expect(try await client.receiveMessage() == .pong([]))
        }
    }

    @Test func echoesTheCloseCodeAndClosesTCP() async throws {
        try await withDemo { demo in
            let client = try await TestWebSocketClient.connect(port: demo.port, path: "/echo")
            try await client.close(code: CloseCode(4000), reason: "bye")
            #expect(try await client.receiveMessage() == .close(CloseCode(4000), "bye"))
            try await client.waitForTCPClose()

            let empty = try await TestWebSocketClient.connect(port: demo.port, path: "/echo")
            try await empty.close(code: nil)
            #expect(try await empty.receiveMessage() == .close(nil, ""))
            try await empty.waitForTCPClose()
        }
    }

    @Test func answersAnUnmaskedFrameWithClose1002() async throws {
        try await withDemo { demo in
            let client = try await TestWebSocketClient.connect(port: demo.port, path: "/echo")
            // FIN + text, MASK bit clear, length 2, "hi": clients MUST mask (RFC 6455 §5.1).
            try await client.sendRaw([0x81, 0x02, 0x68, 0x69])
            let (header, payload) = try await client.receiveFrame()
            // The exact Close frame: FIN + Close, length 2, 1002 (0x03EA).
            #expect(header == FrameHeader(opcode: .close, payloadLength: 2))
            #expect(payload == [0x03, 0xEA])
            try await client.waitForTCPClose()
        }
    }

    @Test func answersInvalidUTF8WithClose1007() async throws {
        try await withDemo { demo in
            let client = try await TestWebSocketClient.connect(port: demo.port, path: "/echo")
            // 0xC0 0xAF is an overlong encoding of "/" (RFC 3629 §3).
            try await client.sendFrame(opcode: .text, payload: [0xC0, 0xAF])
            #expect(try await client.receiveMessage() == .close(.invalidPayloadData, ""))
            try await client.waitForTCPClose()
        }
    }

    @Test func keepsFramesSentRightBehindTheRequestHead() async throws {
        try await withDemo { demo in
            var encoder = FrameEncoder(role: .client)
            var frame = ByteBuffer()
            encoder.writeFrame(opcode: .text, payload: ByteBuffer(string: "early"), to: &frame)
            let client = try await TestWebSocketClient.connect(
                port: demo.port,
                path: "/echo",
                pipelined: Array(frame.readableBytesView)
            )
            #expect(try await client.receiveMessage() == .text("early"))
        }
    }

    // MARK: Opening handshake

    /// Requests the demo must refuse, with the status it must answer.
    static let refusals: [(String, String, Int)] = [
        ("not an upgrade", "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", 426),
        ("version 8", upgradeRequest(version: "8"), 426),
        ("no version", upgradeRequest(version: nil), 400),
        ("version list", upgradeRequest(version: "13, 8"), 400),
        ("key of 4 bytes", upgradeRequest(key: "AAAAAA=="), 400),
        ("no key", upgradeRequest(key: nil), 400),
        ("POST", upgradeRequest(method: "POST"), 400),
        ("unknown path", upgradeRequest(path: "/nope"), 404),
        ("Connection without upgrade", upgradeRequest(connection: "keep-alive"), 426),
        ("HTTP/1.0", upgradeRequest(httpVersion: "1.0"), 400),
    ]

    @Test(arguments: 0..<refusals.count)
    func refusesInvalidUpgradeRequests(index: Int) async throws {
        let (name, request, status) = Self.refusals[index]
        try await withDemo { demo in
            let response = try await TestWebSocketClient.rawHandshake(port: demo.port, request: request)
            #expect(response.status == status, "\(name)")
            #expect(
                response.headers.contains { $0.0.lowercased() == "sec-websocket-version" && $0.1 == "13" },
                "\(name)"
            )
        }
    }

    /// `GET /` is the chat page (a browser's request, no upgrade); a WebSocket handshake to `/` is still 404.
    @Test func servesTheChatPageAtTheRootAndRefusesAnUpgradeThere() async throws {
        try await withDemo { demo in
            let page = try await TestWebSocketClient.rawHandshake(
                port: demo.port,
                request: "GET /?gateway=ws://127.0.0.1:8080 HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\n\r\n"
            )
            #expect(page.status == 200)
            let headers = Dictionary(page.headers.map { ($0.0.lowercased(), $0.1) }, uniquingKeysWith: { first, _ in first })
            #expect(headers["content-type"] == "text/html; charset=utf-8")
            #expect(headers["content-security-policy"]?.contains("connect-src ws: wss:") == true)
            #expect(page.body == DemoChatPage.html)
            let upgrade = try await TestWebSocketClient.rawHandshake(port: demo.port, request: Self.upgradeRequest(path: "/"))
            #expect(upgrade.status == 404)
        }
    }

    @Test func acceptsUpgradeAndConnectionTokensCaseInsensitively() async throws {
        try await withDemo { demo in
            let request = Self.upgradeRequest(upgrade: "WebSocket", connection: "keep-alive, UPGRADE")
            let response = try await TestWebSocketClient.rawHandshake(port: demo.port, request: request)
            #expect(response.status == 101)
            let accept = response.headers.first { $0.0.lowercased() == "sec-websocket-accept" }?.1
            #expect(accept == HandshakeKey.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ=="))
            #expect(accept == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")  // RFC 6455 §1.3's example.
        }
    }

    // MARK: /chat

    @Test func chatBroadcastsPresenceAndEscapedMessages() async throws {
        try await withDemo { demo in
            let alice = try await TestWebSocketClient.connect(port: demo.port, path: "/chat?name=alice")
            #expect(try await alice.receiveMessage() == .text(#"{"type":"presence","online":["alice"]}"#))

            // Percent-decoded, and '+' is a space.
            let bob = try await TestWebSocketClient.connect(port: demo.port, path: "/chat?name=b%C3%B6b+jr")
            let both = #"{"type":"presence","online":["alice","böb jr"]}"#
            #expect(try await alice.receiveMessage() == .text(both))
            #expect(try await bob.receiveMessage() == .text(both))

            let text = "he said \"hi\"\n\\ \u{1} ✓"
            try await alice.send(text: text)
            let expected = #"{"type":"message","from":"alice","text":"he said \"hi\"\n\\ \u0001 ✓"}"#
            for client in [alice, bob] {
                guard case .text(let json) = try await client.receiveMessage() else {
                    Issue.record("expected a text message")
                    return
                }
                #expect(json == expected)
                // Valid JSON that decodes back to the original text.
                let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: String]
                #expect(object?["text"] == text)
            }

            // A fragmented message is assembled before it is broadcast.
            try await bob.sendFrame(opcode: .text, fin: false, payload: Array("frag".utf8))
            try await bob.sendFrame(opcode: .continuation, fin: true, payload: Array("ment".utf8))
            let fragmented = #"{"type":"message","from":"böb jr","text":"fragment"}"#
            #expect(try await alice.receiveMessage() == .text(fragmented))
            #expect(try await bob.receiveMessage() == .text(fragmented))

            try await bob.close()
            #expect(try await bob.receiveMessage() == .close(.normalClosure, ""))
            try await bob.waitForTCPClose()
            #expect(try await alice.receiveMessage() == .text(#"{"type":"presence","online":["alice"]}"#))
        }
    }

    @Test func chatNamesGuestsAndLimitsNames() async throws {
        try await withDemo { demo in
            let guest = try await TestWebSocketClient.connect(port: demo.port, path: "/chat")
            #expect(try await guest.receiveMessage() == .text(#"{"type":"presence","online":["guest-1"]}"#))
            let long = String(repeating: "x", count: 40)
            let named = try await TestWebSocketClient.connect(port: demo.port, path: "/chat?name=\(long)")
            let cut = String(repeating: "x", count: 32)
            #expect(try await named.receiveMessage() == .text(#"{"type":"presence","online":["guest-1","\#(cut)"]}"#))
        }
    }

    @Test func chatClosesWith1009OverSixtyFourKiB() async throws {
        try await withDemo { demo in
            let client = try await TestWebSocketClient.connect(port: demo.port, path: "/chat?name=big")
            _ = try await client.receiveMessage()  // presence
            try await client.send(text: String(repeating: "a", count: 64 * 1024 + 1))
            #expect(try await client.receiveMessage() == .close(.messageTooBig, ""))
            try await client.waitForTCPClose()
        }
    }

    // MARK: Helpers

    static func upgradeRequest(
        method: String = "GET",
        path: String = "/echo",
        httpVersion: String = "1.1",
        upgrade: String = "websocket",
        connection: String = "Upgrade",
        version: String? = "13",
        key: String? = "dGhlIHNhbXBsZSBub25jZQ=="
    ) -> String {
        var request = "\(method) \(path) HTTP/\(httpVersion)\r\nHost: localhost\r\n"
        request += "Upgrade: \(upgrade)\r\nConnection: \(connection)\r\n"
        if let version { request += "Sec-WebSocket-Version: \(version)\r\n" }
        if let key { request += "Sec-WebSocket-Key: \(key)\r\n" }
        return request + "\r\n"
    }
}

/// Runs `body` against a fresh demo upstream on an ephemeral loopback port, and closes it afterwards.
func withDemo(_ body: (DemoUpstream) async throws -> Void) async throws {
    let demo = try await DemoUpstream.start(host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton)
    do {
        try await body(demo)
    } catch {
        try? await demo.close()
        throw error
    }
    try await demo.close()
}

/// The demo's `/echo` against an independent implementation: the Python `websockets` client.
///
/// Needs the provisioned Python peers (`websockets`; `scripts/provision-test-peers`). Missing, it fails, unless
/// `WSGATE_SKIP_PYTHON=1` is set, in which case it says loudly that it was skipped.
@Suite("DemoUpstream interop (Python websockets)", .timeLimit(.minutes(1)))
struct DemoUpstreamInteropTests {
    /// The asyncio client reads while it sends. (The sync client does not: it holds its protocol lock
    /// in `sendall`, so against any echo that applies backpressure a message larger than the buffers
    /// in between, about a few hundred KiB on loopback, deadlocks.)
    static let script = #"""
        import asyncio, sys
        from websockets.asyncio.client import connect

        async def main(uri):
            async with connect(uri, open_timeout=5, close_timeout=5, max_size=2**24) as ws:
                await ws.send("héllo from python")
                got = await ws.recv()
                assert got == "héllo from python", repr(got)

                data = bytes(range(256)) * 4096  # 1 MiB
                await ws.send(data)
                got = await ws.recv()
                assert got == data, "binary echo differs (%d bytes)" % len(got)

                # websockets sends an iterable as one message, a frame per item, and ends it with an
                # empty FIN continuation (it cannot know which item is last): the echo keeps all four.
                await ws.send(["frag-1 ", "frag-2 ", "frag-3"])
                frames = [frame async for frame in ws.recv_streaming()]
                assert frames == ["frag-1 ", "frag-2 ", "frag-3", ""], repr(frames)

                await ws.send([b"\x00\x01", b"\x02"])
                frames = [frame async for frame in ws.recv_streaming()]
                assert frames == [b"\x00\x01", b"\x02", b""], repr(frames)

                pong = await ws.ping(b"py")
                await pong

                await ws.close(code=4001, reason="done")
                assert ws.close_code == 4001 and ws.close_reason == "done", (ws.close_code, ws.close_reason)
            print("interop ok")

        asyncio.run(asyncio.wait_for(main(sys.argv[1]), 15))
        """#

    @Test func pythonWebsocketsClientTalksToEcho() async throws {
        guard try await PythonPeer.require("websockets") else { return }
        try await withDemo { demo in
            let scriptURL = FileManager.default.temporaryDirectory
                .appendingPathComponent("wsgate-interop-\(UUID().uuidString).py")
            try Self.script.write(to: scriptURL, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: scriptURL) }
            let run = try await runPython([scriptURL.path, "ws://127.0.0.1:\(demo.port)/echo"], timeout: .seconds(20))
            #expect(run.status == 0, "python websockets: \(run.output)")
            #expect(run.output.contains("interop ok"), "\(run.output)")
        }
    }
}

/// The demo's handlers in memory (EmbeddedChannel): exact bytes in, exact bytes out (STYLE P12), and
/// its pure parts.
@Suite("DemoUpstream handlers in memory")
struct DemoUpstreamHandlerTests {
    @Test func echoDripFedFrameComesBackUnmaskedByteExact() throws {
        let channel = EmbeddedChannel(handler: DemoEchoHandler())
        // RFC 6455 §5.7: a masked "Hello" (FIN + text, MASK, length 5, key 37 fa 21 3d), one byte per read.
        let frame: [UInt8] = [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
        for byte in frame {
            try channel.writeInbound(ByteBuffer(bytes: [byte]))
        }
        // The unmasked single-frame "Hello" (RFC 6455 §5.7).
        #expect(try channel.readAllOutboundBytes() == [0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
        #expect(try channel.finish().isClean)
    }

    @Test func echoAnswersAnUnmaskedFrameWithTheExactClose() throws {
        let channel = EmbeddedChannel(handler: DemoEchoHandler())
        // FIN + binary, MASK clear, length 1: clients MUST mask (RFC 6455 §5.1).
        try channel.writeInbound(ByteBuffer(bytes: [0x82, 0x01, 0x00]))
        // FIN + Close, length 2, 1002.
        #expect(try channel.readAllOutboundBytes() == [0x88, 0x02, 0x03, 0xEA])
        #expect(!channel.isActive)
        #expect(try channel.finish(acceptAlreadyClosed: true).isClean)
    }

    @Test func echoHoldsReadsWhileTheChannelIsNotWritable() throws {
        let reads = ReadCounter()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([reads, DemoEchoHandler()])
        channel.isWritable = false
        channel.read()
        #expect(reads.count == 0)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        #expect(reads.count == 1)
        channel.read()
        #expect(reads.count == 2)
        #expect(try channel.finish().isClean)
    }

    @Test func upgradeKeepsBytesBehindTheRequestAndLeavesOnlyTheFrameHandler() throws {
        let channel = EmbeddedChannel()
        let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes))
        let encoder = HTTPResponseEncoder()
        let upgrader = DemoUpgradeHandler(room: DemoChatRoom(), decoder: decoder, encoder: encoder)
        try channel.pipeline.syncOperations.addHandlers([decoder, encoder, upgrader])
        var input = ByteBuffer(string: DemoUpstreamTests.upgradeRequest())
        // The RFC 6455 §5.7 masked "Hello", in the same read as the request.
        input.writeBytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
        try channel.writeInbound(input)
        channel.embeddedEventLoop.run()

        let output = try channel.readAllOutboundBytes()
        let text = String(decoding: output, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        #expect(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"))
        #expect(Array(output.suffix(7)) == [0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
        #expect(throws: (any Error).self) {
            try channel.pipeline.syncOperations.context(handlerType: DemoUpgradeHandler.self)
        }
        #expect(throws: (any Error).self) {
            try channel.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self)
        }
        #expect(throws: (any Error).self) {
            try channel.pipeline.syncOperations.context(handlerType: ByteToMessageHandler<HTTPRequestDecoder>.self)
        }
        _ = try channel.pipeline.syncOperations.context(handlerType: DemoEchoHandler.self)
        #expect(try channel.finish().isClean)
    }

    @Test(
        arguments: [
            ("name=alice", "alice"),
            ("x=1&name=al%20ice&name=bob", "al ice"),
            ("name=b%C3%B6b+jr", "böb jr"),
            ("name=%zz%4", "%zz%4"),
            ("name=", nil),
            ("nom=alice", nil),
            ("name=" + String(repeating: "é", count: 40), String(repeating: "é", count: 32)),
        ] as [(String, String?)]
    )
    func chatNameFromQuery(query: String, expected: String?) {
        #expect(DemoChatRoom.name(fromQuery: Substring(query)) == expected)
    }

    @Test func jsonStringsAreEscaped() {
        var json = ""
        DemoChatRoom.appendJSONString("a\"b\\c\n\r\t\u{8}\u{C}\u{0}\u{1F}é/", to: &json)
        #expect(json == #""a\"b\\c\n\r\t\b\f\u0000\u001fé/""#)
    }
}

/// Counts `read()` calls that reach it (put it in front of a handler that may hold reads back).
final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = Any
    private(set) var count = 0

    func read(context: ChannelHandlerContext) {
        self.count += 1
        context.read()
    }
}

extension EmbeddedChannel {
    /// Every byte written so far, whatever the outbound type (ByteBuffer or IOData).
    func readAllOutboundBytes() throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let item = try self.readOutbound(as: Any.self) {
            switch item {
            case let buffer as ByteBuffer:
                bytes += buffer.readableBytesView
            case let data as IOData:
                guard case .byteBuffer(let buffer) = data else {
                    Issue.record("unexpected file region")
                    continue
                }
                bytes += buffer.readableBytesView
            default:
                Issue.record("unexpected outbound \(type(of: item))")
            }
        }
        return bytes
    }
}
