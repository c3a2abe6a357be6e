import Frames
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import Gateway

/// ``UpstreamResponseScanner``: the upstream's answer read from its bytes (issue #15), split at every
/// byte, hostile heads refused, bodies framed as RFC 9112 §6.3 says, and, differentially, never a head
/// that NIO's llhttp `HTTPResponseDecoder` (the decoder it replaced) would read otherwise.
@Suite struct UpstreamResponseScannerTests {
    static let accept = HandshakeKey.acceptValue(forKey: "AQIDBAUGBwgJCgsMDQ4PEA==")
    static let switching =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(accept)\r\n"
        + "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n"

    /// The scanner fed `bytes` in reads cut at `cuts`, then the close: the answer and what followed it.
    static func scan(_ bytes: [UInt8], cutAt cuts: [Int] = [], close: Bool = true) -> (UpstreamResponse, after: [UInt8])?? {
        var scanner = UpstreamResponseScanner()
        var start = 0
        var result: (UpstreamResponse, after: [UInt8])?
        for end in cuts.filter({ $0 > 0 && $0 < bytes.count }) + [bytes.count] {
            var buffer = ByteBuffer(bytes: bytes[start..<end])
            start = end
            if let (response, _) = result {
                result = (response, result!.after + buffer.readableBytesView)
                continue
            }
            switch scanner.feed(&buffer) {
            case .needMore: #expect(buffer.readableBytes == 0)
            case .complete(let response, let leftover): result = (response, Array(leftover?.readableBytesView ?? ByteBufferView()))
            case .malformed: return .some(nil)
            }
        }
        if result == nil, close, let response = scanner.closed() { result = (response, []) }
        return result.map { .some($0) } ?? nil
    }

    /// The same bytes through the pipeline the scanner replaced (NIO's request encoder and llhttp's
    /// response decoder, `.forwardBytes`), completed as `UpstreamHandshakeHandler` did: at the end of the
    /// response, or at the close for a body delimited by it; nil when it failed or never completed.
    static func llhttp(_ bytes: [UInt8]) -> UpstreamResponse? {
        let channel = EmbeddedChannel()
        try! channel.pipeline.syncOperations.addHandler(HTTPRequestEncoder())
        try! channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes)))
        try! channel.writeOutbound(HTTPClientRequestPart.head(.init(version: .http1_1, method: .GET, uri: "/", headers: ["Host": "u"])))
        try! channel.writeOutbound(HTTPClientRequestPart.end(nil))
        var failed = (try? channel.writeInbound(ByteBuffer(bytes: bytes))) == nil
        var head: HTTPResponseHead?
        var body = ByteBuffer()
        var ended = false
        func drain() {
            while !ended, let part = try? channel.readInbound(as: HTTPClientResponsePart.self) {
                switch part {
                case .head(let h): head = h
                case .body(var chunk):
                    let room = UpstreamResponseScanner.maxRelayedBody - body.readableBytes
                    if room > 0, var kept = chunk.readSlice(length: min(room, chunk.readableBytes)) { body.writeBuffer(&kept) }
                case .end: ended = true
                }
            }
        }
        drain()
        if !ended, !failed { failed = (try? channel.finish()) == nil }
        drain()
        _ = try? channel.finish(acceptAlreadyClosed: true)
        guard let head, ended || !failed else { return nil }
        return UpstreamResponse(head: head, body: body)
    }

    @Test func a101SplitAtEveryByteIsReadTheSameAndLeavesWhatFollowsIt() throws {
        let frame: [UInt8] = [0x81, 0x02, 0x68, 0x69]
        let bytes = Array(Self.switching.utf8) + frame
        let whole = try #require(Self.scan(bytes) ?? nil)
        #expect(whole.0.head.status == .switchingProtocols)
        #expect(whole.0.head.headers["Sec-WebSocket-Accept"] == [Self.accept])
        #expect(whole.after == frame)
        #expect(whole.0 == Self.llhttp(Array(Self.switching.utf8)))
        for cut in 1..<bytes.count {
            let split = try #require(Self.scan(bytes, cutAt: [cut]) ?? nil, "cut at \(cut)")
            #expect(split.0 == whole.0 && split.after == frame, "cut at \(cut)")
        }
        let everyByte = try #require(Self.scan(bytes, cutAt: Array(1..<bytes.count)) ?? nil)
        #expect(everyByte.0 == whole.0 && everyByte.after == frame)
    }

    @Test(arguments: [
        "HTTP/1.1 101 OK\nUpgrade: websocket\r\n\r\n",  // bare LF
        "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n folded\r\n\r\n",  // obs-fold
        "HTTP/1.1 101 OK\r\nUpgrade : websocket\r\n\r\n",  // space before the colon
        "HTTP/1.1 101 OK\r\nUpgrade: web\u{01}socket\r\n\r\n",  // control byte in a value
        "HTTP/1.1 101 OK\r\n: websocket\r\n\r\n",  // empty name
        "HTTP/2.0 101 OK\r\n\r\n", "HTTP/1.1 1010 OK\r\n\r\n", "HTTP/1.1 10 OK\r\n\r\n", "http/1.1 101 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\nx",
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ])
    func hostileHeadsAreRefusedAtEveryCut(_ text: String) {
        let bytes = Array(text.utf8)
        for cut in 0..<bytes.count {
            let result = Self.scan(bytes, cutAt: [cut])
            #expect(result != nil && result! == nil, "cut at \(cut): \(text.debugDescription)")
        }
    }

    @Test func aHeadOverTheLimitIsRefused() {
        let filler = "X-Filler: " + String(repeating: "a", count: 1000) + "\r\n"
        let text = "HTTP/1.1 101 OK\r\n" + String(repeating: filler, count: 70) + "\r\n"
        let result = Self.scan(Array(text.utf8), cutAt: stride(from: 500, to: 70_000, by: 500).map { $0 })
        #expect(result != nil && result! == nil)
    }

    @Test(arguments: [
        ("HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!trailing", "nope!"),
        ("HTTP/1.1 503 Busy\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", "abcde"),
        ("HTTP/1.0 401 No\r\nWWW-Authenticate: Bearer\r\n\r\nuntil the close", "until the close"),
        ("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", ""),
        ("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 404 No\r\nContent-Length: 1\r\n\r\n?", "?"),
    ])
    func bodiesAreFramedAsRFC9112SaysAtEveryCut(_ text: String, _ body: String) throws {
        let bytes = Array(text.utf8)
        let reference = try #require(Self.llhttp(bytes))
        #expect(reference.body == ByteBuffer(string: body))
        for cut in 0..<bytes.count {
            let result = try #require(Self.scan(bytes, cutAt: [cut]) ?? nil, "cut at \(cut)")
            #expect(result.0 == reference, "cut at \(cut)")
        }
        let everyByte = try #require(Self.scan(bytes, cutAt: Array(1..<bytes.count)) ?? nil)
        #expect(everyByte.0 == reference)
    }

    @Test func aBodyIsCollectedUpTo64KiB() throws {
        let text = "HTTP/1.1 500 Oops\r\nContent-Length: 70000\r\n\r\n" + String(repeating: "b", count: 70_000)
        let result = try #require(Self.scan(Array(text.utf8), cutAt: [100, 30_000, 60_000]) ?? nil)
        #expect(result.0.body.readableBytes == UpstreamResponseScanner.maxRelayedBody)
        #expect(result.0 == Self.llhttp(Array(text.utf8)))
    }

    /// Differential against llhttp: every answer the scanner reads (valid ones and every one-byte
    /// mutation of them: flipped to each of a set of delimiter and control bytes, dropped, doubled),
    /// llhttp reads as the same head and body; the valid ones both read.
    @Test func neverReadsAnAnswerOtherwiseThanLLHTTP() {
        let valid = [
            Self.switching,
            "HTTP/1.1 101 \r\nupgrade:websocket\r\nCONNECTION: keep-alive, Upgrade \r\nSec-WebSocket-Accept:\t\(Self.accept)\t\r\n\r\n",
            "HTTP/1.1 101\r\nUpgrade: websocket\r\nX-Empty:\r\nX-Obs: caf\u{E9}\r\n\r\n",
            "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nno!!",
            "HTTP/1.1 503 Busy\r\nRetry-After: 1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbusy\r\n0\r\n\r\n",
            "HTTP/1.0 302 Found\r\nLocation: /x\r\n\r\nbody",
        ]
        let replacements: [UInt8] = [0x00, 0x09, 0x0A, 0x0D, 0x20, 0x3A, 0x2C, 0x7F, 0x80, 0x30, 0x39, 0x41]
        var compared = 0
        for text in valid {
            let bytes = Array(text.utf8)
            let scanned = Self.scan(bytes) ?? nil
            #expect(scanned != nil, "\(text.debugDescription)")
            #expect(scanned?.0 == Self.llhttp(bytes), "\(text.debugDescription)")
            for index in bytes.indices {
                var mutations = replacements.map { byte -> [UInt8] in
                    var mutated = bytes
                    mutated[index] = byte
                    return mutated
                }
                mutations.append(Array(bytes[..<index] + bytes[(index + 1)...]))
                mutations.append(Array(bytes[...index] + bytes[index...]))
                for mutated in mutations {
                    guard let (response, _) = Self.scan(mutated) ?? nil else { continue }
                    compared += 1
                    let reference = Self.llhttp(mutated)
                    #expect(reference == response, "\(String(decoding: mutated, as: UTF8.self).debugDescription)")
                }
            }
        }
        #expect(compared > 1000)
    }
}
