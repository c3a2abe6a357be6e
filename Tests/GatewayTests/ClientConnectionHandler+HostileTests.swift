import Frames
import NIOCore
import NIOEmbedded
import NIOTLS
import Testing

@testable import Gateway

/// Hostile request heads in memory, through the listener's handler (``ClientConnectionHandler`` and its
/// ``RequestHeadScanner``) with an in-memory upstream connector
/// (``EmbeddedUpstreamConnector``): each is answered with its exact status whole, one byte per read and
/// cut at every byte, the answer says `Connection: close`, the connection is closed, and no upstream is
/// ever connected (the connector records every attempt).
@Suite struct ClientConnectionHostileRequestTests {
    typealias Upgrade = ClientConnectionHandlerTests.Upgrade

    static let key = ClientConnectionHandlerTests.clientKey

    /// A valid upgrade request for the in-memory route (`gw.example/chat`), then `extra` header lines,
    /// the blank line and `body`; `edit` rewrites the head before that.
    static func request(_ edit: (String) -> String = { $0 }, extra: String = "", body: String = "") -> String {
        let head =
            "GET /chat HTTP/1.1\r\nHost: gw.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
        return edit(head) + extra + "\r\n" + body
    }

    static func replacing(_ old: String, _ new: String) -> (String) -> String {
        { head in
            precondition(head.contains(old), "the fixture has no \(old)")
            return head.replacingOccurrences(of: old, with: new)
        }
    }

    struct Outcome {
        var status: Int?
        var headers: [(String, String)]
        var closed: Bool
        var upstreamAttempts: [String]
    }

    /// Runs one connection with `bytes` delivered in reads cut at `cuts` (every byte when `cuts` is nil).
    static func run(_ bytes: [UInt8], cuts: [Int]?, configure: (inout GatewayConfiguration) -> Void = { _ in }) throws -> Outcome {
        let upgrade = try Upgrade(configure: configure)
        upgrade.deliver(bytes, to: upgrade.client, cutAt: cuts ?? Array(1..<max(1, bytes.count)))
        let answer = try ClientConnectionHandlerTests.answer(upgrade.client)
        let outcome = Outcome(
            status: answer?.status,
            headers: answer?.headers ?? [],
            closed: !upgrade.client.isActive,
            upstreamAttempts: upgrade.connector.targets
        )
        // The decoder may report the half-read request again at close: not the upgrade's business.
        _ = try? upgrade.client.finish(acceptAlreadyClosed: true)
        return outcome
    }

    /// Asserts `request` is refused with `status` at every split (every cut when it is short, else a
    /// sample of cuts), closed, with `Connection: close` and no upstream attempt.
    static func expectRefused(
        _ name: String,
        _ request: String,
        _ status: Int,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let bytes = Array(request.utf8)
        var splits: [[Int]?] = [[], nil]
        let cuts = bytes.count <= 600 ? Array(1..<bytes.count) : Array(stride(from: 1, to: bytes.count, by: max(1, bytes.count / 50)))
        splits += cuts.map { [$0] }
        for split in splits {
            let outcome = try Self.run(bytes, cuts: split)
            let how = split.map { $0.isEmpty ? "whole" : "cut at \($0[0])" } ?? "one byte per read"
            #expect(outcome.status == status, "\(name), \(how)", sourceLocation: sourceLocation)
            #expect(outcome.headers.contains { $0 == ("Connection", "close") }, "\(name), \(how)", sourceLocation: sourceLocation)
            #expect(outcome.closed, "\(name): still open, \(how)", sourceLocation: sourceLocation)
            #expect(outcome.upstreamAttempts.isEmpty, "\(name): an upstream was contacted, \(how)", sourceLocation: sourceLocation)
            if status == 426 {
                #expect(outcome.headers.contains { $0 == ("Sec-WebSocket-Version", "13") }, "\(name)", sourceLocation: sourceLocation)
            }
        }
    }

    /// Catalog H-11: empty header name, space before the colon, obs-fold, bare LF, NUL or CR in a value, empty or list-valued Content-Length, a Transfer-Encoding list, a 300-byte name: 400, closed, nothing forwarded.
    @Test func headerSyntaxDifferentialsAre400AtEverySplitAndNeverReachTheUpstream() throws {
        let cases: [(String, String)] = [
            ("empty name", Self.request(extra: ": x\r\n")),
            ("empty name and value", Self.request(extra: ":\r\n")),
            ("space before the colon", Self.request(Self.replacing("Host: gw.example", "Host : gw.example"))),
            ("space before the colon, other header", Self.request(extra: "X-a : 1\r\n")),
            ("obs-fold", Self.request(extra: "X-a: 1\r\n 2\r\n")),
            ("obs-fold with a tab", Self.request(extra: "X-a: 1\r\n\t2\r\n")),
            ("bare LF ending one line", Self.request(extra: "X-a: 1\n")),
            ("bare LF everywhere", Self.request().replacingOccurrences(of: "\r\n", with: "\n")),
            ("NUL in a value", Self.request(extra: "X-a: 1\u{0}2\r\n")),
            ("CR in a value", Self.request(extra: "X-a: 1\r2\r\n")),
            ("empty Content-Length", Self.request(extra: "Content-Length:\r\n")),
            ("Content-Length list", Self.request(extra: "Content-Length: 1, 1\r\n")),
            ("Content-Length not a number", Self.request(extra: "Content-Length: +0\r\n")),
            ("Transfer-Encoding list", Self.request(extra: "Transfer-Encoding: chunked, identity\r\n")),
            ("Transfer-Encoding identity", Self.request(extra: "Transfer-Encoding: identity\r\n")),
            ("300-byte name", Self.request(extra: String(repeating: "X", count: 300) + ": 1\r\n")),
            ("not HTTP", "NOT HTTP AT ALL\r\n\r\n"),
        ]
        for (name, request) in cases {
            try Self.expectRefused(name, request, 400)
        }
    }

    /// Catalog H-11: a long but legal header name (the limit exactly) is accepted and re-serialized upstream.
    @Test func aHeaderNameOfExactlyTheLimitIsAccepted() throws {
        let name = "X-" + String(repeating: "n", count: OpeningHandshake.maxFieldNameBytes - 2)
        let upgrade = try Upgrade()
        upgrade.deliver(Array(Self.request(extra: "\(name): 1\r\n").utf8), to: upgrade.client)
        #expect(upgrade.connector.targets == ["127.0.0.1:9001"])
        let sent = String(decoding: try upgrade.written(on: upgrade.upstream), as: UTF8.self)
        #expect(sent.contains("\r\n\(name): 1\r\n"))
        upgrade.client.close(promise: nil)
        upgrade.loop.run()
        _ = try? upgrade.client.finish(acceptAlreadyClosed: true)
    }

    /// Catalog H-08: a body (Content-Length: 7, chunked, or both) on the upgrade request is 400; the body is never read as frames nor forwarded.
    @Test func aBodyOnTheUpgradeRequestIs400() throws {
        try Self.expectRefused("Content-Length body", Self.request(extra: "Content-Length: 7\r\n", body: "abcdefg"), 400)
        try Self.expectRefused("chunked body", Self.request(extra: "Transfer-Encoding: chunked\r\n", body: "3\r\n123\r\n0\r\n\r\n"), 400)
        try Self.expectRefused(
            "both",
            Self.request(extra: "Content-Length: 7\r\nTransfer-Encoding: chunked\r\n", body: "3\r\n123\r\n0\r\n\r\n"),
            400
        )
    }

    /// Catalog H-05: two Sec-WebSocket-Key lines, a list-valued key, two Sec-WebSocket-Version lines, two Upgrade lines: 400.
    @Test func duplicateUpgradeHeadersAre400() throws {
        try Self.expectRefused("two keys", Self.request(extra: "Sec-WebSocket-Key: \(Self.key)\r\n"), 400)
        try Self.expectRefused("key list", Self.request(Self.replacing("Key: \(Self.key)", "Key: \(Self.key), \(Self.key)")), 400)
        try Self.expectRefused("two versions", Self.request(extra: "Sec-WebSocket-Version: 13\r\n"), 400)
        try Self.expectRefused("two Upgrade lines", Self.request(extra: "Upgrade: websocket\r\n"), 400)
    }

    /// Catalog H-06: versions 8 and 14 get 426 with Sec-WebSocket-Version: 13; a missing or malformed version (13, 8 / 013 / 256 / empty) gets 400; nothing is forwarded.
    @Test func versionNegotiation() throws {
        try Self.expectRefused("version 8", Self.request(Self.replacing("Version: 13", "Version: 8")), 426)
        try Self.expectRefused("version 14", Self.request(Self.replacing("Version: 13", "Version: 14")), 426)
        try Self.expectRefused("no version", Self.request(Self.replacing("Sec-WebSocket-Version: 13\r\n", "")), 400)
        for malformed in ["13, 8", "013", "256", "", "13a", "-13"] {
            try Self.expectRefused("version \(malformed)", Self.request(Self.replacing("Version: 13", "Version: \(malformed)")), 400)
        }
    }

    /// Catalog H-04: no key, `abc`, 24 base64 characters of 18 bytes, 24 non-base64 characters, an empty key: 400.
    @Test func missingOrMalformedKeysAre400() throws {
        try Self.expectRefused("no key", Self.request(Self.replacing("Sec-WebSocket-Key: \(Self.key)\r\n", "")), 400)
        for key in ["abc", "AAAAAAAAAAAAAAAAAAAAAAAA", "!!!!!!!!!!!!!!!!!!!!!!==", ""] {
            try Self.expectRefused("key \(key)", Self.request(Self.replacing(Self.key, key)), 400)
        }
    }

    /// Catalog H-10: no Host, two Host lines, absolute-form, userinfo, a path or an empty value in Host: 400.
    @Test func hostHeaderViolationsAre400() throws {
        try Self.expectRefused("no Host", Self.request(Self.replacing("Host: gw.example\r\n", "")), 400)
        try Self.expectRefused("two Host lines", Self.request(extra: "Host: gw.example\r\n"), 400)
        try Self.expectRefused("absolute-form", Self.request(Self.replacing("GET /chat", "GET http://other.example/chat")), 400)
        try Self.expectRefused("absolute-form, same host", Self.request(Self.replacing("GET /chat", "GET http://gw.example:81/chat")), 400)
        for host in ["user@gw.example", "gw.example/x", ""] {
            try Self.expectRefused("Host \(host)", Self.request(Self.replacing("Host: gw.example", "Host: \(host)")), 400)
        }
    }

    /// Catalog H-07: POST and HEAD are 405, HTTP/1.0 is 400, an h2c upgrade is refused as plain HTTP (426): never upgraded or forwarded.
    @Test func otherMethodsVersionsAndUpgradeTokensAreRefused() throws {
        try Self.expectRefused("POST", Self.request(Self.replacing("GET", "POST")), 405)
        try Self.expectRefused("HEAD", Self.request(Self.replacing("GET", "HEAD")), 405)
        try Self.expectRefused("HTTP/1.0", Self.request(Self.replacing("HTTP/1.1", "HTTP/1.0")), 400)
        let h2c = Self.request(
            Self.replacing(
                "Upgrade: websocket\r\nConnection: Upgrade",
                "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nConnection: Upgrade, HTTP2-Settings"
            )
        )
        try Self.expectRefused("h2c", h2c, 426)
    }

    /// Catalog H-07: `Upgrade: websocket, h2c` goes upstream as exactly one `Upgrade: websocket`.
    @Test func onlyTheWebSocketUpgradeTokenGoesUpstream() throws {
        let upgrade = try Upgrade()
        upgrade.deliver(Array(Self.request(Self.replacing("Upgrade: websocket", "Upgrade: websocket, h2c")).utf8), to: upgrade.client)
        let sent = try #require(ClientConnectionHandlerTests.parseHead(try upgrade.written(on: upgrade.upstream)))
        #expect(sent.headers.filter { $0.0.lowercased() == "upgrade" }.map(\.1) == ["websocket"])
        #expect(sent.headers.filter { $0.0.lowercased() == "sec-websocket-key" }.count == 1)
        #expect(sent.headers.filter { $0.0.lowercased() == "sec-websocket-version" }.map(\.1) == ["13"])
        upgrade.client.close(promise: nil)
        upgrade.loop.run()
        _ = try? upgrade.client.finish(acceptAlreadyClosed: true)
    }

    /// Catalog H-02: one 100 KiB header and 200 headers of 1 KiB are 431; a 20 KiB request target is 414; 101 small headers are 431 (the header-count limit); closed, nothing forwarded.
    @Test func oversizedHeadsAre431AndAnOversizedRequestLineIs414() throws {
        try Self.expectRefused("100 KiB header", Self.request(extra: "X-Big: \(String(repeating: "b", count: 100 * 1024))\r\n"), 431)
        let kilobyteHeaders = (0..<200).map { "X-H\($0): \(String(repeating: "h", count: 1000))\r\n" }.joined()
        try Self.expectRefused("200 headers of 1 KiB", Self.request(extra: kilobyteHeaders), 431)
        try Self.expectRefused(
            "20 KiB target",
            Self.request(Self.replacing("GET /chat", "GET /chat/\(String(repeating: "t", count: 20 * 1024))")),
            414
        )
        // Leading empty lines (RFC 9112 §2.2) do not end the request line.
        try Self.expectRefused(
            "20 KiB target after empty lines",
            "\r\n\r\n" + Self.request(Self.replacing("GET /chat", "GET /chat/\(String(repeating: "t", count: 20 * 1024))")),
            414
        )
        let many = (0..<101).map { "X-\($0): 1\r\n" }.joined()
        try Self.expectRefused("101 headers", Self.request(extra: many), 431)
    }

    /// Catalog H-02: a head of exactly the limit is accepted (the upstream is contacted), one byte more is 431; the limit is wsgate's 16 KiB, not NIO's 80 KiB.
    @Test func aHeadOfExactlyTheLimitIsAcceptedAndOneMoreByteIs431() throws {
        let limit = GatewayConfiguration.Limits().requestHeadBytes
        #expect(limit == 16 * 1024)
        func padded(to size: Int) -> String {
            let bare = Self.request(extra: "X-Pad: \r\n")
            return Self.request(extra: "X-Pad: \(String(repeating: "p", count: size - bare.utf8.count))\r\n")
        }
        let exact = try Self.run(Array(padded(to: limit).utf8), cuts: [])
        #expect(exact.status == nil && !exact.closed && exact.upstreamAttempts == ["127.0.0.1:9001"])
        let over = try Self.run(Array(padded(to: limit + 1).utf8), cuts: [])
        #expect(over.status == 431 && over.closed && over.upstreamAttempts.isEmpty)
    }

    // MARK: Slowloris (H-01), under virtual time

    /// Catalog H-01: a head trickled one byte every 2 s, a new header every 5 s, nothing for 9 s then everything but the end: 408 + Connection: close at exactly 10 s from accept (progress never resets the deadline), and the upstream is never contacted.
    @Test func theHeadDeadlineCountsFromAcceptHoweverTheBytesTrickle() throws {
        let requestLine = "GET /chat HTTP/1.1\r\n"
        let endless = requestLine + String(repeating: "X-a: b\r\n", count: 100)
        // (bytes delivered at each step, the time between steps)
        let patterns: [(String, [String], Int64)] = [
            ("one byte every 2 s", endless.map(String.init), 2_000),
            ("a header every 5 s", [requestLine] + Array(repeating: "X-a: b\r\n", count: 10), 5_000),
            ("a header every 100 ms", [requestLine] + Array(repeating: "X-a: b\r\n", count: 200), 100),
            ("silent 9 s, then all but the end", ["", Self.request().replacingOccurrences(of: "\r\n\r\n", with: "\r\n")], 9_000),
        ]
        for (name, steps, interval) in patterns {
            let upgrade = try Upgrade { $0.timeouts.requestHead = .seconds(10) }
            var elapsed: Int64 = 0
            for step in steps where elapsed < 10_000 {
                if !step.isEmpty { upgrade.deliver(Array(step.utf8), to: upgrade.client) }
                let wait = min(interval, 9_999 - elapsed)
                guard wait > 0 else { break }
                upgrade.loop.advanceTime(by: .milliseconds(wait))
                elapsed += wait
            }
            upgrade.loop.advanceTime(by: .milliseconds(9_999 - elapsed))
            #expect(try ClientConnectionHandlerTests.answer(upgrade.client) == nil, "\(name): answered before the deadline")
            #expect(upgrade.client.isActive, "\(name)")
            upgrade.loop.advanceTime(by: .milliseconds(1))
            let answer = try ClientConnectionHandlerTests.answer(upgrade.client)
            #expect(answer?.status == 408, "\(name)")
            #expect(answer?.headers.contains { $0 == ("Connection", "close") } == true, "\(name)")
            #expect(!upgrade.client.isActive, "\(name): still open after the deadline")
            #expect(upgrade.connector.targets.isEmpty, "\(name): the upstream was contacted for an incomplete head")
            #expect(upgrade.refusals("head-timeout") == 1, "\(name)")
            _ = try? upgrade.client.finish(acceptAlreadyClosed: true)
        }
    }

    /// Catalog H-01: a head that completes before the deadline stops it: the upgrade goes on, nothing fires at 10 s.
    @Test func aHeadCompletedInTimeStopsTheDeadline() throws {
        let upgrade = try Upgrade { $0.timeouts.requestHead = .seconds(10) }
        let bytes = Array(Self.request().utf8)
        upgrade.deliver(Array(bytes.dropLast()), to: upgrade.client)
        upgrade.loop.advanceTime(by: .milliseconds(9_999))
        upgrade.deliver([bytes.last!], to: upgrade.client)
        upgrade.loop.advanceTime(by: .seconds(1))
        #expect(try ClientConnectionHandlerTests.answer(upgrade.client) == nil)
        #expect(upgrade.connector.targets == ["127.0.0.1:9001"])
        #expect(upgrade.refusals("head-timeout") == 0)
        upgrade.client.close(promise: nil)
        upgrade.loop.run()
        _ = try? upgrade.client.finish(acceptAlreadyClosed: true)
    }

    /// Catalog T-01: on a TLS listener a stalled handshake is left to the TLS handshake deadline (no 408 into a connection without TLS, no head-timeout refusal counted); a handshake completed after the head deadline gets the 408 at once (the head deadline still counts from accept).
    @Test func onATLSListenerTheHeadDeadlineWaitsForTheHandshake() throws {
        let upgrade = try Upgrade(clientUsedTLS: true) { $0.timeouts.requestHead = .seconds(10) }
        upgrade.loop.advanceTime(by: .seconds(30))
        #expect(try ClientConnectionHandlerTests.answer(upgrade.client) == nil)
        #expect(upgrade.client.isActive)
        #expect(upgrade.refusals("head-timeout") == 0)
        upgrade.client.pipeline.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(negotiatedProtocol: nil))
        upgrade.loop.run()
        #expect(try ClientConnectionHandlerTests.answer(upgrade.client)?.status == 408)
        #expect(!upgrade.client.isActive)
        #expect(upgrade.refusals("head-timeout") == 1)
        _ = try? upgrade.client.finish(acceptAlreadyClosed: true)

        // Completed in time, the head deadline runs from accept as on a plain listener.
        let onTime = try Upgrade(clientUsedTLS: true) { $0.timeouts.requestHead = .seconds(10) }
        onTime.loop.advanceTime(by: .seconds(1))
        onTime.client.pipeline.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(negotiatedProtocol: "http/1.1"))
        onTime.loop.advanceTime(by: .milliseconds(8_999))
        #expect(try ClientConnectionHandlerTests.answer(onTime.client) == nil)
        onTime.loop.advanceTime(by: .milliseconds(1))
        #expect(try ClientConnectionHandlerTests.answer(onTime.client)?.status == 408)
        _ = try? onTime.client.finish(acceptAlreadyClosed: true)
    }

    /// Catalog H-14: pathological Sec-WebSocket-Extensions and Sec-WebSocket-Protocol values (an unclosed quote with thousands of escapes, a protocol padded with 15,000 spaces, 8 KiB of repeated deflate offers, duplicate or out-of-range parameters) are each answered or passed on within milliseconds: the malformed grammar is 400, invalid deflate offers are declined (the upgrade goes on), never a 500.
    @Test func pathologicalExtensionAndSubprotocolHeadersAreHandledInMilliseconds() throws {
        let deflate = "permessage-deflate; client_max_window_bits, "
        let cases: [(String, String, Int?)] = [
            ("unclosed quote, escapes", "Sec-WebSocket-Extensions: a; b=\"" + String(repeating: "\\c", count: 5_000) + "\r\n", 400),
            ("padded protocol", "Sec-WebSocket-Protocol: b" + String(repeating: " ", count: 15_000) + "x\r\n", 400),
            ("8 KiB of offers", "Sec-WebSocket-Extensions: " + String(repeating: deflate, count: 8 * 1024 / deflate.utf8.count) + "\r\n", nil),
            ("duplicate parameter", "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; server_no_context_takeover\r\n", nil),
            ("window bits 16", "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=16\r\n", nil),
            ("window bits 7", "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=7\r\n", nil),
            ("window bits 08", "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=08\r\n", nil),
            ("window bits abc", "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=abc\r\n", nil),
            ("unknown parameter", "Sec-WebSocket-Extensions: permessage-deflate; x=1\r\n", nil),
        ]
        for (name, extra, status) in cases {
            let bytes = Array(Self.request(extra: extra).utf8)
            // CPU time of this (synchronous, in-memory) run: a quadratic parse shows, a loaded machine does not.
            let start = ProcessResources.threadCPUTime()
            let outcome = try Self.run(bytes, cuts: [])
            let elapsed = ProcessResources.threadCPUTime() - start
            #expect(elapsed < .milliseconds(250), "\(name): \(elapsed) of CPU")
            #expect(outcome.status == status, "\(name)")
            if status == nil {
                #expect(outcome.upstreamAttempts == ["127.0.0.1:9001"], "\(name): the upgrade did not go on")
            } else {
                #expect(outcome.closed && outcome.upstreamAttempts.isEmpty, "\(name)")
            }
        }
    }

    /// Catalog H-17: `..`, encoded dots and slashes, `//`, a fragment, `*` and absolute-form are refused with 400 and never forwarded; `/chat?x` and a request line with two spaces are routed on the parsed target, which is exactly what goes upstream.
    @Test func requestTargetsOutsideTheOneNormalizationAre400() throws {
        for target in ["/chat/../admin", "/%2e%2e/admin", "/chat%2F..%2Fadmin", "//chat", "/chat#frag", "*", "ws://gw.example/chat"] {
            try Self.expectRefused("target \(target)", Self.request(Self.replacing("GET /chat ", "GET \(target) ")), 400)
        }
        // Routed on the parsed target, and the same target re-serialized upstream: llhttp reads repeated
        // spaces in the request line as one (the documented normalization, DESIGN-NOTES).
        for (line, expected) in [("GET /chat?x ", "GET /chat?x HTTP/1.1"), ("GET  /chat ", "GET /chat HTTP/1.1")] {
            let upgrade = try Upgrade()
            upgrade.deliver(Array(Self.request(Self.replacing("GET /chat ", line)).utf8), to: upgrade.client)
            let sent = try #require(ClientConnectionHandlerTests.parseHead(try upgrade.written(on: upgrade.upstream)))
            #expect(sent.start == expected)
            upgrade.client.close(promise: nil)
            upgrade.loop.run()
            _ = try? upgrade.client.finish(acceptAlreadyClosed: true)
        }
    }
}
