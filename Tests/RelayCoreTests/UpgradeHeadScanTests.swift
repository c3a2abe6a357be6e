import Frames
import Testing

@testable import RelayCore

/// The prototype's head scanner: what it accepts, what it refuses, and that the verdict does not depend on
/// how the head arrives (every prefix of a valid head is `incomplete`).
@Suite struct UpgradeHeadScanTests {
    static let key = "dGhlIHNhbXBsZSBub25jZQ=="
    static let request =
        "GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
        + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\r\n"

    private func scan(_ text: String) -> HeadScan<ClientUpgradeHead> {
        Array(text.utf8).withUnsafeBytes { UpgradeHeadScanner.scanRequest($0) }
    }

    private func refusal(_ text: String) -> UpgradeHeadError.Code? {
        if case .invalid(let error) = self.scan(text) { return error.code }
        return nil
    }

    @Test func acceptsAValidRequestAndKeepsWhatFollows() {
        guard case .complete(let head, let length) = self.scan(Self.request + "\u{81}") else {
            Issue.record("not complete")
            return
        }
        #expect(head == ClientUpgradeHead(target: "/chat?room=1", key: Self.key))
        #expect(length == Self.request.utf8.count)
    }

    @Test func acceptsTheShortestTarget() {
        let text = Self.request.replacing("GET /chat?room=1 ", with: "GET / ")
        guard case .complete(let head, _) = self.scan(text) else {
            Issue.record("refused")
            return
        }
        #expect(head.target == "/")
    }

    @Test func everyPrefixIsIncomplete() {
        let bytes = Array(Self.request.utf8)
        for end in 0..<bytes.count {
            let scan = bytes[0..<end].withUnsafeBytes { UpgradeHeadScanner.scanRequest($0) }
            guard case .incomplete = scan else {
                Issue.record("prefix of \(end) bytes: \(scan)")
                return
            }
        }
    }

    @Test func headerNamesAndTokensAreCaseInsensitive() {
        let text = Self.request.replacing("Upgrade: websocket", with: "UPGRADE:WebSocket  ")
        guard case .complete = self.scan(text) else {
            Issue.record("refused")
            return
        }
    }

    @Test(arguments: [
        ("GET /chat?room=1 HTTP/1.1\r\n", "POST /chat?room=1 HTTP/1.1\r\n", UpgradeHeadError.Code.badRequestLine),
        ("GET /chat?room=1 HTTP/1.1\r\n", "GET chat HTTP/1.1\r\n", .badRequestLine),
        ("GET /chat?room=1 HTTP/1.1\r\n", "GET /chat?room=1 HTTP/1.0\r\n", .badRequestLine),
        ("Host: example.com\r\n", "", .missingHost),
        ("Host: example.com\r\n", "Host: a\r\nHost: b\r\n", .duplicateHost),
        ("Upgrade: websocket\r\n", "Upgrade: h2c\r\n", .notAnUpgrade),
        ("Connection: keep-alive, Upgrade\r\n", "Connection: keep-alive\r\n", .notAnUpgrade),
        ("Sec-WebSocket-Version: 13\r\n", "Sec-WebSocket-Version: 8\r\n", .badVersion),
        ("Sec-WebSocket-Key: \(key)\r\n", "Sec-WebSocket-Key: short\r\n", .badKey),
        ("Sec-WebSocket-Key: \(key)\r\n", "", .badKey),
        ("Host: example.com\r\n", "Host: example.com\r\nContent-Length: 5\r\n", .hasBody),
        ("Host: example.com\r\n", "Host: example.com\r\n folded\r\n", .obsoleteLineFolding),
        ("Host: example.com\r\n", "Host : example.com\r\n", .badHeaderLine),
        ("Host: example.com\r\n", "Host: exa\u{01}mple.com\r\n", .badHeaderLine),
        ("Host: example.com\r\n", "Host: example.com\n", .badLineEnding),
    ])
    func refuses(_ replacing: String, _ with: String, _ code: UpgradeHeadError.Code) {
        let text = Self.request.replacing(replacing, with: with)
        #expect(text != Self.request)
        #expect(self.refusal(text) == code)
    }

    @Test func refusesAnOversizedHeadBeforeItEnds() {
        let text = "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: UpgradeHeadScanner.maxHeadBytes)
        #expect(self.refusal(text) == .tooLarge)
    }

    // MARK: the upstream's 101

    static let accept = HandshakeKey.acceptValue(forKey: key)
    static let response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(accept)\r\n\r\n"

    private func scanResponse(_ text: String) -> HeadScan<Int> {
        Array(text.utf8).withUnsafeBytes { UpgradeHeadScanner.scanResponse($0, expectedAccept: Self.accept) }
    }

    @Test func acceptsTheUpstreamsSwitch() {
        guard case .complete(let length, _) = self.scanResponse(Self.response + "\u{81}\u{0}") else {
            Issue.record("refused")
            return
        }
        #expect(length == Self.response.utf8.count)
    }

    @Test(arguments: [
        ("HTTP/1.1 101", "HTTP/1.1 200", UpgradeHeadError.Code.badStatusLine),
        ("HTTP/1.1 101", "HTTP/1.1 1010", .badStatusLine),
        ("Sec-WebSocket-Accept: \(accept)", "Sec-WebSocket-Accept: x\(accept.dropFirst())", .badAccept),
        ("Upgrade: websocket\r\n", "", .notAnUpgrade),
        ("Connection: Upgrade\r\n", "Connection: Upgrade\r\nSec-WebSocket-Extensions: permessage-deflate\r\n", .unexpectedExtension),
    ])
    func refusesABadSwitch(_ replacing: String, _ with: String, _ code: UpgradeHeadError.Code) {
        let text = Self.response.replacing(replacing, with: with)
        guard case .invalid(let error) = self.scanResponse(text) else {
            Issue.record("accepted")
            return
        }
        #expect(error.code == code)
    }
}
