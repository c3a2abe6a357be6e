import Frames
import NIOHTTP1

/// What a server checks on a WebSocket opening handshake (RFC 6455 §4.1, §4.2.1), one function per
/// rule, in one place for the gateway's listener (``ClientUpgradeRequest/validate(_:limits:routes:)``)
/// and the demo upstream (``DemoHandshake/evaluate(_:)``). Each caller orders the rules and answers a
/// failed one in its own way (the gateway with 405 for a method, the demo with 400, for example).
enum OpeningHandshake {
    /// Headers that may appear at most once in an opening handshake: RFC 6455 §4.2.1 items 2, 5 and 6
    /// (`Host`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version`), §4.1 item 8 (`Origin`), and those whose
    /// repetition would make the request ambiguous (`Upgrade`; `Content-Length`, RFC 9112 §6.3).
    static let singletonHeaders = ["Host", "Upgrade", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Origin", "Content-Length"]

    /// RFC 6455 §4.1 item 2, §4.2.1 item 1: the method MUST be `GET`.
    static func isGet(_ head: HTTPRequestHead) -> Bool {
        head.method == .GET
    }

    /// RFC 6455 §4.1 item 2, §4.2.1 item 1: an HTTP/1.1 request. (HTTP/2 and HTTP/3 bootstrap WebSockets
    /// with an extended CONNECT instead, RFC 8441 and RFC 9220; an HTTP/1.0 client cannot upgrade.)
    static func isHTTP11(_ head: HTTPRequestHead) -> Bool {
        head.version == .http1_1
    }

    /// The first of ``singletonHeaders`` that appears more than once, if any.
    static func duplicatedSingleton(in headers: HTTPHeaders) -> String? {
        // One pass over the field lines, a bit per singleton (issue #15: no `headers[name]` array per
        // name, and each line's strings are copied out once, not once per name).
        var seen = 0
        var duplicated = 0
        for header in headers {
            guard let index = Self.singletonIndex(header.name) else { continue }
            let bit = 1 << index
            if seen & bit != 0 { duplicated |= bit } else { seen |= bit }
        }
        guard duplicated != 0 else { return nil }
        return Self.singletonHeaders.indices.first { duplicated & (1 << $0) != 0 }.map { Self.singletonHeaders[$0] }
    }

    /// The index of `name` in ``singletonHeaders``, ASCII case-insensitively (as `HTTPHeaders` compares).
    private static func singletonIndex(_ name: String) -> Int? {
        let count = name.utf8.count
        for (index, singleton) in Self.singletonHeaders.enumerated() where singleton.utf8.count == count {
            if name.utf8.elementsEqual(singleton.utf8, by: { Self.lowercasedASCII($0) == Self.lowercasedASCII($1) }) { return index }
        }
        return nil
    }

    private static func lowercasedASCII(_ byte: UInt8) -> UInt8 {
        byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
    }

    /// RFC 6455 §4.2.1 item 2: the `Host` value, when there is exactly one.
    static func host(_ headers: HTTPHeaders) -> String? {
        let hosts = headers["Host"]
        return hosts.count == 1 ? hosts[0] : nil
    }

    /// RFC 6455 §4.2.1 item 3: `Upgrade` lists `websocket`, case-insensitively.
    static func asksForWebSocket(_ headers: HTTPHeaders) -> Bool {
        HTTPSyntax.lists("websocket", in: headers["Upgrade"])
    }

    /// RFC 6455 §4.2.1 item 4: `Connection` lists `upgrade`, case-insensitively.
    static func asksForConnectionUpgrade(_ headers: HTTPHeaders) -> Bool {
        HTTPSyntax.lists("upgrade", in: headers["Connection"])
    }

    /// What a request's `Sec-WebSocket-Version` says.
    enum Version: Equatable {
        /// Exactly one `Sec-WebSocket-Version: 13`.
        case thirteen
        /// A well-formed version the gateway does not speak (`8`, `14`): 426 with
        /// `Sec-WebSocket-Version: 13` (RFC 6455 §4.2.2 item 4, §4.4).
        case unsupported
        /// No `Sec-WebSocket-Version` at all: not a valid opening handshake (§4.2.1 item 6), 400.
        case missing
        /// Repeated, list-valued (`13, 8`), empty or outside the grammar of §11.3.5 (`version = DIGIT |
        /// NZDIGIT DIGIT | "1" DIGIT DIGIT | "2" DIGIT DIGIT`, 0–255 with no leading zero): 400.
        case malformed
    }

    /// RFC 6455 §4.2.1 item 6 and §11.3.5: classifies `Sec-WebSocket-Version`. Only a well-formed
    /// version other than 13 is a *negotiation* (426, §4.4); a missing or malformed one is a bad request
    /// (400), as in NIO's `testRequiresVersionHeader` (RELIABILITY H-06).
    static func version(_ headers: HTTPHeaders) -> Version {
        let versions = headers["Sec-WebSocket-Version"]
        guard let first = versions.first else { return .missing }
        guard versions.count == 1 else { return .malformed }
        let text = HTTPSyntax.trimmingOWS(first)
        let value = text.utf8
        guard (1...3).contains(value.count), value.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
            value.count == 1 || value.first != UInt8(ascii: "0"),
            let number = Int(text), number <= 255
        else { return .malformed }
        return number == 13 ? .thirteen : .unsupported
    }

    /// RFC 6455 §4.2.1 item 6: `Sec-WebSocket-Version: 13`, once.
    static func asksForVersion13(_ headers: HTTPHeaders) -> Bool {
        Self.version(headers) == .thirteen
    }

    /// The longest header field name accepted (bytes). RFC 9110 §5.1 sets no limit; the longest
    /// registered names are under 40 bytes. A longer name is refused with 400 (RELIABILITY H-11: parsers
    /// have overflowed on long names, CVE-2021-40346), well inside the 16 KiB head limit.
    static let maxFieldNameBytes = 256

    /// The first header whose name is longer than ``maxFieldNameBytes``, if any.
    static func overlongFieldName(in headers: HTTPHeaders) -> String? {
        headers.first { $0.name.utf8.count > Self.maxFieldNameBytes }?.name
    }

    /// RFC 6455 §4.2.1 item 5: the `Sec-WebSocket-Key`, once, base64 of 16 bytes; nil otherwise.
    static func key(_ headers: HTTPHeaders) -> String? {
        let keys = headers["Sec-WebSocket-Key"]
        guard keys.count == 1 else { return nil }
        let key = HTTPSyntax.trimmingOWS(keys[0])
        return HandshakeKey.isValidKey(key) ? key : nil
    }

    /// Whether the request announces a body (a `Content-Length` other than 0, or a
    /// `Transfer-Encoding`): an opening handshake has none, and bytes after its head are the client's
    /// first frames at best (DESIGN §1.3).
    static func announcesBody(_ headers: HTTPHeaders) -> Bool {
        headers["Content-Length"].contains { $0 != "0" } || headers.contains(name: "Transfer-Encoding")
    }
}
