import Frames
import NIOCore
import NIOEmbedded
import NIOHTTP1
import TestPeers
import Testing

@testable import Gateway

/// The client's request-head scanner (issue #15): the verdict at every split, the head limit met at the
/// same byte however the bytes are read (RELIABILITY H-02), the strict refusals, and llhttp (NIO's
/// `HTTPRequestDecoder`, which read heads before) as the differential reference on a corpus and on random
/// mutations of it.
@Suite struct RequestHeadScannerTests {
    /// The scanner's verdict on `bytes` delivered in reads ending at `cuts`, and the bytes delivered when
    /// it was reached (nil while it needs more).
    static func scan(_ bytes: [UInt8], cuts: [Int] = [], limit: Int = 16 * 1024) -> (RequestHeadScanner.Outcome, at: Int?) {
        var scanner = RequestHeadScanner(limit: limit)
        var buffer = ByteBuffer()
        var start = 0
        for end in cuts.filter({ $0 > 0 && $0 < bytes.count }) + [bytes.count] where end > start {
            buffer.writeBytes(bytes[start..<end])
            start = end
            let outcome = scanner.scan(buffer)
            if outcome != .needMore { return (outcome, end) }
        }
        return (.needMore, nil)
    }

    /// What llhttp makes of `bytes` in one read: the first head, or nil (an error, or no head yet).
    static func llhttp(_ bytes: [UInt8]) -> HTTPRequestHead? {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)))
        _ = try? channel.writeInbound(ByteBuffer(bytes: bytes))
        var head: HTTPRequestHead?
        while head == nil, let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            if case .head(let first) = part { head = first }
        }
        _ = try? channel.finish(acceptAlreadyClosed: true)
        return head
    }

    static let valid = ClientConnectionHostileRequestTests.request()

    @Test func aValidHeadIsReadTheSameAtEverySplit() throws {
        let bytes = Array((Self.valid + "tail").utf8)
        let expected = try #require(Self.llhttp(bytes))
        for cut in 0...bytes.count {
            let (outcome, _) = Self.scan(bytes, cuts: [cut])
            #expect(outcome == .head(expected, length: bytes.count - 4), "cut at \(cut)")
        }
        #expect(Self.scan(bytes, cuts: Array(1..<bytes.count)).0 == .head(expected, length: bytes.count - 4))
        // Empty lines before the request line (RFC 9112 §2.2) are skipped, and counted in the length.
        #expect(Self.scan(Array(("\r\n\r\n" + Self.valid).utf8)).0 == .head(expected, length: bytes.count))
    }

    /// Catalog H-11: empty header name, space before the colon, obs-fold, bare LF, NUL or CR in a value, empty or list-valued Content-Length: malformed at every split, found by the read that carries the offending byte.
    @Test func strictRefusalsAtEverySplit() {
        let request = { (extra: String) in ClientConnectionHostileRequestTests.request(extra: extra) }
        let cases: [(String, String)] = [
            ("empty name", request(": x\r\n")),
            ("space before the colon", request("X-a : 1\r\n")),
            ("obs-fold", request("X-a: 1\r\n 2\r\n")),
            ("obs-fold with a tab", request("X-a: 1\r\n\t2\r\n")),
            ("bare LF everywhere", Self.valid.replacingOccurrences(of: "\r\n", with: "\n")),
            ("bare LF once", request("X-a: 1\n")),
            ("bare CR", request("X-a: 1\r2\r\n")),
            ("NUL in a value", request("X-a: 1\u{0}2\r\n")),
            ("DEL in a value", request("X-a: 1\u{7F}2\r\n")),
            ("empty Content-Length", request("Content-Length:\r\n")),
            ("Content-Length list", request("Content-Length: 1, 1\r\n")),
            ("Content-Length sign", request("Content-Length: +0\r\n")),
            ("two Content-Length lines", request("Content-Length: 0\r\nContent-Length: 0\r\n")),
            ("non-token name", request("X(a): 1\r\n")),
            ("unknown method", Self.valid.replacingOccurrences(of: "GET ", with: "GOT ")),
            ("lower-case method", Self.valid.replacingOccurrences(of: "GET ", with: "get ")),
            ("version", Self.valid.replacingOccurrences(of: "HTTP/1.1", with: "HTTP/1.10")),
            ("space first", " " + Self.valid),
            ("target with a control byte", Self.valid.replacingOccurrences(of: "/chat", with: "/c\u{1}hat")),
            ("not HTTP", "NOT HTTP AT ALL\r\n\r\n"),
            ("a stray LF first", "\n" + Self.valid),
            ("absolute-form", Self.valid.replacingOccurrences(of: "/chat", with: "ws://gw.example/chat")),
            ("a relative target", Self.valid.replacingOccurrences(of: "/chat", with: "chat")),
        ]
        for (name, text) in cases {
            let bytes = Array(text.utf8)
            for cuts in [[]] + (1..<bytes.count).map({ [$0] }) {
                guard case .failure(.malformed) = Self.scan(bytes, cuts: cuts).0 else {
                    Issue.record("\(name): \(Self.scan(bytes, cuts: cuts).0) at cut \(cuts)")
                    break
                }
            }
        }
    }

    /// Catalog H-02: a head of exactly the limit is read at every split; one byte more is too large, met by the read that carries byte limit + 1; the request line's LF at the limit is 431 (headers), one byte later 414 (request line), leading empty lines included in the count.
    @Test func theLimitIsMetAtTheSameByteHoweverTheHeadIsSplit() {
        let limit = 64
        let line = "GET /c HTTP/1.1\r\n"
        let head = { (size: Int) in line + "X: " + String(repeating: "p", count: size - line.utf8.count - 7) + "\r\n\r\n" }
        let target = { (size: Int) in "GET /" + String(repeating: "t", count: size - 16) + " HTTP/1.1\r\n" }
        let cases: [(String, String, RequestHeadScanner.Outcome?)] = [
            ("exactly the limit", head(limit), nil),
            ("one byte over", head(limit + 1), .failure(.tooLarge(inRequestLine: false))),
            ("twice the limit", head(limit * 2), .failure(.tooLarge(inRequestLine: false))),
            ("line ends at the limit", target(limit) + "Host: x\r\n\r\n", .failure(.tooLarge(inRequestLine: false))),
            ("line ends after the limit", target(limit + 1) + "Host: x\r\n\r\n", .failure(.tooLarge(inRequestLine: true))),
            ("empty lines first", "\r\n\r\n" + target(limit - 3) + "Host: x\r\n\r\n", .failure(.tooLarge(inRequestLine: true))),
        ]
        for (name, text, expected) in cases {
            let bytes = Array(text.utf8)
            for cuts in [[], Array(1..<bytes.count)] + (1..<bytes.count).map({ [$0] }) {
                let (outcome, at) = Self.scan(bytes, cuts: cuts, limit: limit)
                if let expected {
                    let meetingRead = (cuts.filter { $0 > 0 && $0 < bytes.count } + [bytes.count]).first { $0 > limit }
                    #expect(outcome == expected && at == meetingRead, "\(name), cuts \(cuts.prefix(1)): \(outcome) at \(String(describing: at))")
                } else {
                    guard case .head(_, let length) = outcome, length == bytes.count else {
                        Issue.record("\(name), cuts \(cuts.prefix(1)): \(outcome)")
                        continue
                    }
                }
            }
        }
    }

    // MARK: Differential against llhttp

    /// Heads both parsers read: the upgrade request, other methods and versions, the headers the gateway
    /// reads and forwards, odd but legal spellings (OWS, obs-text, empty values, long names, repeated SP
    /// in the request line).
    static let corpus: [String] = [
        valid,
        ClientConnectionHostileRequestTests.request(extra: "Origin: https://a.example\r\nSec-WebSocket-Protocol: a, b\r\n"),
        ClientConnectionHostileRequestTests.request(extra: "X-Empty:\r\nX-Tab:\tv\t\r\nX-Obs: caf\u{E9}\r\n"),
        ClientConnectionHostileRequestTests.request(extra: "Content-Length: 0\r\nX-Forwarded-For: 192.0.2.1, 10.0.0.1\r\n"),
        ClientConnectionHostileRequestTests.request(extra: "Transfer-Encoding: chunked\r\n"),
        ClientConnectionHostileRequestTests.request(extra: "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"),
        "POST /x HTTP/1.1\r\nHost: a\r\n\r\n",
        "HEAD / HTTP/1.0\r\n\r\n",
        "GET /chat?x=1&y=%20 HTTP/1.1\r\nHost: gw.example:8080\r\n\r\n",
        "GET  /chat  HTTP/1.1\r\nHost: gw.example\r\n\r\n",
        "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        "OPTIONS / HTTP/1.1\r\nA!#$%&'*+-.^_`|~: 1\r\n\r\n",
        "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    ]

    /// Agreement: whatever the scanner reads, llhttp reads the same (the scanner never accepts what llhttp
    /// refuses); whatever llhttp reads that the gateway would upgrade, the scanner reads the same.
    static func expectAgreement(_ bytes: [UInt8], _ name: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let reference = Self.llhttp(bytes)
        let (outcome, _) = Self.scan(bytes, limit: 1 << 20)
        switch outcome {
        case .head(let head, _):
            // The scanner drops a value's trailing OWS (RFC 9110 §5.5), which llhttp keeps.
            var trimmed = reference
            trimmed?.headers = HTTPHeaders(reference?.headers.map { ($0.name, HTTPSyntax.trimmingOWS($0.value)) } ?? [])
            #expect(trimmed == head, "\(name): scanner \(head), llhttp \(String(describing: reference))", sourceLocation: sourceLocation)
        case .needMore, .failure:
            guard let reference else { return }
            let routes = RouteTable([.init(pathPrefix: "/", upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 9000)])])
            if case .success = ClientUpgradeRequest.validate(reference, limits: .init(), routes: routes) {
                Issue.record("\(name): llhttp read an upgrade the scanner refused (\(outcome)): \(bytes)", sourceLocation: sourceLocation)
            }
        }
    }

    @Test func theCorpusReadsAsLLHTTPReadsIt() throws {
        for (index, text) in Self.corpus.enumerated() {
            let bytes = Array(text.utf8)
            #expect(Self.llhttp(bytes) != nil, "corpus \(index) is not a head to llhttp")
            Self.expectAgreement(bytes, "corpus \(index)")
        }
    }

    @Test func randomMutationsOfTheCorpusAgreeWithLLHTTP() {
        var random = SplitMix64(seed: 15)
        let interesting: [UInt8] = Array(" \t\r\n:,/;=\"\\".utf8) + [0, 1, 0x7F, 0x80, 0xC3, 0xFF, 0x41, 0x61, 0x30]
        for round in 0..<4_000 {
            var bytes = Array(Self.corpus[Int(random.next() % UInt64(Self.corpus.count))].utf8)
            for _ in 0..<(1 + Int(random.next() % 3)) {
                let at = Int(random.next() % UInt64(bytes.count))
                let byte =
                    random.next() % 4 == 0 ? UInt8(truncatingIfNeeded: random.next()) : interesting[Int(random.next() % UInt64(interesting.count))]
                switch random.next() % 3 {
                case 0: bytes[at] = byte
                case 1: bytes.insert(byte, at: at)
                default: bytes.remove(at: at)
                }
            }
            Self.expectAgreement(bytes, "round \(round)")
        }
    }

    /// Every `HTTP/D.D` version agrees with llhttp, which reads only the versions HTTP has (0.9, 1.0, 1.1,
    /// 2.0): the fuzzing smoke run found the scanner reading `HTTP/0.1` that llhttp refuses.
    @Test func everyVersionAgreesWithLLHTTP() {
        for major in 0...9 {
            for minor in 0...9 {
                let bytes = Array("GET / HTTP/\(major).\(minor)\r\nHost: a\r\n\r\n".utf8)
                let scanned: Bool
                if case .head = Self.scan(bytes).0 { scanned = true } else { scanned = false }
                #expect(scanned == (Self.llhttp(bytes) != nil), "HTTP/\(major).\(minor)")
                Self.expectAgreement(bytes, "HTTP/\(major).\(minor)")
            }
        }
    }
}
