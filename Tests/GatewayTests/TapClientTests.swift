import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@testable import Gateway

/// `wsgate tap --admin URL` and the request it sends.
@Suite struct TapClientTests {
    @Test func parsesTheAdminURL() throws {
        #expect(try TapClient.Admin("http://127.0.0.1:9090") == .init(host: "127.0.0.1", port: 9090, prefix: ""))
        #expect(try TapClient.Admin("http://[::1]:9090/ops/") == .init(host: "::1", port: 9090, prefix: "/ops"))
        #expect(try TapClient.Admin("http://admin.internal") == .init(host: "admin.internal", port: 80, prefix: ""))
        for bad in ["https://127.0.0.1:9090", "127.0.0.1:9090", "http://:9090", "http://h:0", "http://h:99999", "http://u@h:1", "http://[::1]x"] {
            #expect(throws: TapClientError.self, "\(bad)") { try TapClient.Admin(bad) }
        }
    }

    @Test func theQueryIsPercentEncoded() throws {
        let admin = try TapClient.Admin("http://127.0.0.1:9090/ops")
        #expect(TapClient.target(admin, query: []) == "/ops/tap")
        #expect(
            TapClient.target(admin, query: [("route", "/chat"), ("client", "::1"), ("x", "a b&c=d✓")])
                == "/ops/tap?route=/chat&client=%3A%3A1&x=a%20b%26c%3Dd%E2%9C%93"
        )
    }
}

extension TapClient.Admin {
    init(host: String, port: Int, prefix: String) {
        self = try! TapClient.Admin("http://x:1")
        self.host = host
        self.port = port
        self.prefix = prefix
    }
}

/// `TapClient` over a real socket against a raw HTTP server: a chunked NDJSON body with hostile lines is
/// handed on as it arrives and ends with the stream; a refusal is thrown with its status and message.
@Suite(.timeLimit(.minutes(1))) struct TapClientSocketTests {
    /// Answers every connection with `response` (raw bytes), then closes.
    final class RawAnswer: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let response: String
        init(_ response: String) { self.response = response }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let channel = context.channel
            context.writeAndFlush(NIOAny(channel.allocator.buffer(string: self.response))).whenComplete { _ in
                channel.close(promise: nil)
            }
        }
    }

    func withRawServer(_ response: String, _ body: (TapClient.Admin) async throws -> Void) async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(RawAnswer(response)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        do {
            try await body(try TapClient.Admin("http://127.0.0.1:\(server.localAddress!.port!)"))
        } catch {
            try? await server.close()
            throw error
        }
        try await server.close()
    }

    @Test func aChunkedStreamWithHostileLinesIsReadToItsEnd() async throws {
        let lines = [
            TapStreamEventTests.open, "{broken", "\u{1B}[2J not json", #"{"event":"future"}"#, TapStreamEventTests.text, TapStreamEventTests.dropped,
        ]
        let body = lines.joined(separator: "\n") + "\n"
        // Chunks that cut lines in the middle.
        let cut = body.utf8.count / 3
        let first = String(decoding: Array(body.utf8)[..<cut], as: UTF8.self)
        let rest = String(decoding: Array(body.utf8)[cut...], as: UTF8.self)
        let chunked = [first, rest].map { String($0.utf8.count, radix: 16) + "\r\n" + $0 + "\r\n" }.joined() + "0\r\n\r\n"
        let response = "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked
        try await self.withRawServer(response) { admin in
            let received = NIOLockedValueBox<[UInt8]>([])
            let stream = try await TapClient.open(admin, query: [("route", "/")], token: "t", group: MultiThreadedEventLoopGroup.singleton) {
                buffer in
                received.withLockedValue { $0 += buffer.readableBytesView }
            }
            try await stream.finished.get()
            var splitter = TapLineSplitter()
            var decoder = TapLineDecoder()
            let events = splitter.append(received.withLockedValue { $0 }).compactMap { decoder.decode($0) }
            #expect(events.count == 3)
            #expect(events.last == .dropped(count: 7))
            #expect(decoder.broken == 2 && decoder.unknown == 1)
        }
    }

    @Test func aRefusalIsThrownWithItsStatusAndMessage() async throws {
        let body = #"{"error":"a bearer token is required (Authorization: Bearer …)"}"# + "\n"
        let response = "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
        try await self.withRawServer(response) { admin in
            do {
                _ = try await TapClient.open(admin, query: [], token: nil, group: MultiThreadedEventLoopGroup.singleton) { _ in }
                Issue.record("a 401 was not thrown")
            } catch let error as TapClientError {
                #expect(error.description.contains("401 Unauthorized") && error.description.contains("a bearer token is required"), "\(error)")
            }
        }
    }
}
