import NIOCore
import NIOEmbedded
import Testing

@testable import Gateway

/// The request-head byte limit (``RequestBytesLimiter``, DESIGN §1.3, RELIABILITY H-02) read by read: a
/// head split at any byte must meet the limit at exactly the byte where it meets it in one read, pass on
/// exactly the same bytes, and report once, with the same verdict (414 or 431).
@Suite struct HandshakeGuardsTests {
    /// What came through the limiter, and every error it fired.
    final class Sink: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var forwarded = 0
        var exceeded: [(afterBytes: Int, inRequestLine: Bool)] = []
        var delivered = 0

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            self.forwarded += Self.unwrapInboundIn(data).readableBytes
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            guard let exceeded = error as? RequestBytesLimiter.LimitExceeded else { return }
            self.exceeded.append((self.delivered, exceeded.inRequestLine))
        }
    }

    struct Outcome: Equatable {
        /// Bytes delivered when the limit was met (nil: never).
        var exceededAt: Int?
        var inRequestLine: Bool?
        /// Bytes passed on to the HTTP decoder.
        var forwarded: Int
        var reports: Int
    }

    static let limit = 64

    /// Delivers `bytes` in reads that end at `cuts` (and at the end).
    static func run(_ bytes: [UInt8], cuts: [Int]) throws -> Outcome {
        let channel = EmbeddedChannel()
        let sink = Sink()
        try channel.pipeline.syncOperations.addHandler(RequestBytesLimiter(limit: Self.limit))
        try channel.pipeline.syncOperations.addHandler(sink)
        var start = 0
        for end in cuts + [bytes.count] where end > start {
            sink.delivered = end
            try channel.writeInbound(ByteBuffer(bytes: bytes[start..<end]))
            start = end
        }
        _ = try channel.finish(acceptAlreadyClosed: true)
        return Outcome(
            exceededAt: sink.exceeded.first?.afterBytes,
            inRequestLine: sink.exceeded.first?.inRequestLine,
            forwarded: sink.forwarded,
            reports: sink.exceeded.count
        )
    }

    /// `text` whole, one byte per read, and cut once at every byte: every way must agree with the
    /// byte-by-byte count (the limit is met by the read that carries byte `limit + 1`).
    static func expectSameAtEverySplit(_ name: String, _ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let bytes = Array(text.utf8)
        let whole = try Self.run(bytes, cuts: [])
        let splits: [[Int]] = [Array(1..<bytes.count)] + (1..<bytes.count).map { [$0] }
        for cuts in splits {
            let split = try Self.run(bytes, cuts: cuts)
            // Where the limit is met: the end of the read holding byte limit + 1.
            let meetingRead = (cuts + [bytes.count]).first { $0 > Self.limit }
            #expect(
                split.exceededAt == (bytes.count > Self.limit ? meetingRead : nil),
                "\(name), cuts \(cuts.prefix(1))",
                sourceLocation: sourceLocation
            )
            #expect(split.inRequestLine == whole.inRequestLine, "\(name), cuts \(cuts.prefix(1))", sourceLocation: sourceLocation)
            #expect(
                split.reports == whole.reports,
                "\(name), cuts \(cuts.prefix(1)): reported \(split.reports) times",
                sourceLocation: sourceLocation
            )
            // Only whole reads within the limit are passed on; none of the read that passed it.
            let passed = (cuts + [bytes.count]).filter { $0 <= Self.limit }.last ?? 0
            #expect(
                split.forwarded == (bytes.count > Self.limit ? passed : bytes.count),
                "\(name), cuts \(cuts.prefix(1))",
                sourceLocation: sourceLocation
            )
        }
    }

    /// Catalog H-02: a head of exactly the limit passes at every split; one byte more is refused at every split by the read that carries the extra byte, reported once, as 431; the request line's end at the limit is 431 and one byte later 414, the same at every split.
    @Test func theLimitIsMetAtTheSameByteHoweverTheHeadIsSplit() throws {
        let line = "GET /c HTTP/1.1\r\n"  // 17 bytes
        func head(_ size: Int) -> String {
            let end = "\r\n"
            return line + "X: " + String(repeating: "p", count: size - line.utf8.count - 3 - end.utf8.count * 2) + end + end
        }
        #expect(head(Self.limit).utf8.count == Self.limit)
        try Self.expectSameAtEverySplit("exactly the limit", head(Self.limit))
        #expect(
            try Self.run(Array(head(Self.limit).utf8), cuts: []) == Outcome(exceededAt: nil, inRequestLine: nil, forwarded: Self.limit, reports: 0)
        )
        try Self.expectSameAtEverySplit("one byte over", head(Self.limit + 1))
        #expect(
            try Self.run(Array(head(Self.limit + 1).utf8), cuts: [])
                == Outcome(exceededAt: Self.limit + 1, inRequestLine: false, forwarded: 0, reports: 1)
        )
        // Far over (the bytes keep coming after the limit was met): still one report.
        try Self.expectSameAtEverySplit("twice the limit", head(Self.limit * 2))

        // A request line whose LF is byte `limit` is whole within the limit (431); one byte later, 414.
        let target = { (size: Int) in "GET /" + String(repeating: "t", count: size - 16) + " HTTP/1.1\r\n" }
        #expect(target(Self.limit).utf8.count == Self.limit)
        try Self.expectSameAtEverySplit("line ends at the limit", target(Self.limit) + "Host: x\r\n\r\n")
        #expect(try Self.run(Array((target(Self.limit) + "Host: x\r\n\r\n").utf8), cuts: []).inRequestLine == false)
        try Self.expectSameAtEverySplit("line ends after the limit", target(Self.limit + 1) + "Host: x\r\n\r\n")
        #expect(try Self.run(Array((target(Self.limit + 1) + "Host: x\r\n\r\n").utf8), cuts: []).inRequestLine == true)
        // Leading empty lines (RFC 9112 §2.2), split between CR and LF, do not end the request line.
        try Self.expectSameAtEverySplit("empty lines first", "\r\n\r\n" + target(Self.limit - 3) + "Host: x\r\n\r\n")
        #expect(try Self.run(Array(("\r\n\r\n" + target(Self.limit - 3) + "Host: x\r\n\r\n").utf8), cuts: []).inRequestLine == true)
    }
}

extension HandshakeGuardsTests {
    /// Catalog H-02: a head within the limit followed, before the 101, by frames that take the bytes over it: at every split the head is passed on whole and the limit reported once (so the answer is the early-data refusal, not 431 for a head that fits).
    @Test func aHeadThatFitsIsPassedOnWholeWhenEarlyDataTakesTheBytesOverTheLimit() throws {
        let head = Array("GET /c HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        let bytes = head + Array(repeating: 0x82, count: Self.limit)
        for cuts in [[]] + [Array(1..<bytes.count)] + (1..<bytes.count).map({ [$0] }) {
            let outcome = try Self.run(bytes, cuts: cuts)
            // Reads that end within the limit pass whole; of the read that passes it, only the head's part.
            let passed = (cuts + [bytes.count]).filter { $0 <= Self.limit }.last ?? 0
            #expect(outcome.forwarded == max(head.count, passed), "cuts \(cuts.prefix(1))")
            #expect(outcome.reports == 1 && outcome.inRequestLine == false, "cuts \(cuts.prefix(1))")
        }
    }

    /// Catalog H-02: frames sent before the 101 get the same answer whether they come in the head's read or after it: small ones wait for the switch (then 400 early data), ones that take the bytes past the head limit are refused at once with 400 early data, not 431.
    @Test func earlyDataGetsTheSameAnswerInTheHeadsReadOrAfterIt() throws {
        let head = Array(ClientConnectionHostileRequestTests.request().utf8)
        for size in [16, 17 * 1024] {
            let frame = RelayHandlerEmbeddedTests.clientFrame(.binary, Array(repeating: 0x61, count: size))
            let whole = try ClientConnectionHostileRequestTests.run(head + frame, cuts: [])
            let split = try ClientConnectionHostileRequestTests.run(head + frame, cuts: [head.count])
            let statuses = "\(String(describing: whole.status)) in one read, \(String(describing: split.status)) after the head"
            #expect(whole.status == split.status && whole.closed == split.closed, "\(size) bytes of frame: \(statuses)")
            if size > 16 * 1024 { #expect(whole.status == 400 && whole.closed, "\(statuses)") }
        }
    }
}
