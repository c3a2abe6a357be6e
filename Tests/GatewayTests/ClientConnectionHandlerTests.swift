import MetricsTestKit
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import Gateway

/// The client side of the upgrade handshake in memory: the same handlers the listener installs
/// (`RequestBytesLimiter`, NIO's request decoder, ``ClientConnectionHandler``) on an `EmbeddedChannel`,
/// with the request delivered split at every byte and the head deadline driven by hand. Only refusals are
/// tested here (an accepted request connects a real upstream: `GatewayHandshakeTests`).
@Suite struct ClientConnectionHandlerEmbeddedTests {
    static func request(version: String = "13", extra: String = "") -> String {
        "GET /chat HTTP/1.1\r\nHost: gw.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: \(version)\r\n\(extra)\r\n"
    }

    /// A client connection as the listener sets it up, without TLS.
    static func makeChannel(metrics: TestMetrics = TestMetrics(), configure: (inout GatewayConfiguration) -> Void = { _ in }) throws -> EmbeddedChannel {
        var configuration = GatewayConfiguration(
            listeners: [.init(name: "public", host: "127.0.0.1", port: 0)],
            routes: [.init(hosts: ["gw.example"], pathPrefix: "/chat", upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 1)])],
            accessLog: .off
        )
        configure(&configuration)
        let environment = try GatewayEnvironment(configuration, metrics: GatewayMetrics(factory: metrics))
        let channel = EmbeddedChannel()
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(RequestBytesLimiter(limit: environment.limits.requestHeadBytes))
        try pipeline.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)))
        try pipeline.addHandler(
            ClientConnectionHandler(environment: environment, record: ConnectionRecord(id: 1, clientAddress: "127.0.0.1", listener: "public"), clientUsedTLS: false)
        )
        try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 40000)).wait()
        return channel
    }

    /// Delivers `text` in reads cut at `cuts` (errors from the pipeline are the handler's business).
    static func deliver(_ text: String, to channel: EmbeddedChannel, cutAt cuts: [Int] = []) {
        let bytes = Array(text.utf8)
        var start = 0
        for end in cuts.filter({ $0 > 0 && $0 < bytes.count }) + [bytes.count] where channel.isActive {
            _ = try? channel.writeInbound(ByteBuffer(bytes: bytes[start..<end]))
            start = end
        }
    }

    /// The HTTP answer written to the client: its status and headers.
    static func answer(_ channel: EmbeddedChannel) throws -> (status: Int, headers: [(String, String)])? {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            text += String(buffer: buffer)
        }
        guard let headEnd = text.range(of: "\r\n\r\n") else { return nil }
        let lines = text[..<headEnd.lowerBound].split(separator: "\r\n").map(String.init)
        let statusLine = lines[0].split(separator: " ")
        guard statusLine.count >= 2, statusLine[0] == "HTTP/1.1", let status = Int(statusLine[1]) else { return nil }
        let headers = lines.dropFirst().map { line -> (String, String) in
            let colon = line.firstIndex(of: ":")!
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        return (status, headers)
    }

    @Test func anUnsupportedVersionIs426AtEverySplit() throws {
        let request = Self.request(version: "8")
        for cut in 0...request.utf8.count {
            let channel = try Self.makeChannel()
            Self.deliver(request, to: channel, cutAt: [cut])
            let answer = try #require(try Self.answer(channel), "no answer when cut at \(cut)")
            #expect(answer.status == 426, "cut at \(cut)")
            #expect(answer.headers.contains { $0 == ("Sec-WebSocket-Version", "13") })
            #expect(answer.headers.contains { $0 == ("Connection", "close") })
            #expect(!channel.isActive, "the connection stays open after a refusal (cut at \(cut))")
        }
    }

    @Test func eachInvalidRequestGetsItsExactAnswerAndIsCounted() throws {
        let metrics = TestMetrics()
        let cases: [(request: String, status: Int, reason: String)] = [
            (Self.request().replacingOccurrences(of: "GET", with: "POST"), 405, "method"),
            (Self.request().replacingOccurrences(of: "Host: gw.example", with: "Host: other.example"), 404, "no-route"),
            (Self.request().replacingOccurrences(of: "Upgrade: websocket\r\n", with: ""), 426, "not-an-upgrade"),
            (Self.request().replacingOccurrences(of: "dGhlIHNhbXBsZSBub25jZQ==", with: "short"), 400, "ws-key"),
            (Self.request(extra: "X-Pad: \(String(repeating: "p", count: 17 * 1024))\r\n"), 431, "head-too-large"),
            ("NOT HTTP AT ALL\r\n\r\n", 400, "malformed"),
        ]
        for (request, status, reason) in cases {
            let channel = try Self.makeChannel(metrics: metrics)
            Self.deliver(request, to: channel, cutAt: [5, 20, 100])
            #expect(try Self.answer(channel)?.status == status, "\(reason)")
            #expect(!channel.isActive)
            let counted = metrics.counters(label: "wsgate_upgrades_refused_total").filter { $0.dimensions.contains { $0 == ("reason", reason) } }
            #expect(counted.map(\.totalValue) == [1], "refusal \(reason) not counted once with its reason")
            #expect(counted.first?.dimensions.contains { $0 == ("status", String(status)) } == true)
        }
    }

    @Test func aHeadThatDoesNotArriveByTheDeadlineIs408() throws {
        let channel = try Self.makeChannel { $0.timeouts.requestHead = .seconds(10) }
        Self.deliver("GET /chat HTTP/1.1\r\nHost: gw.ex", to: channel)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(9_999))
        #expect(try Self.answer(channel) == nil)
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(try Self.answer(channel)?.status == 408)
        #expect(!channel.isActive)
    }
}
