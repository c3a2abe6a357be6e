import NIOCore
import NIOHTTP1

/// The client's request head, scanned in place over the bytes read so far (issue #15: no llhttp
/// callbacks, no decoder in the pipeline). A pure value: ``scan(_:)`` is called with everything received
/// since the connection opened, after every read, and resumes where it stopped, so a head split at any
/// byte gets the same verdict as one read.
///
/// The rules are RFC 9112's, strict where a lenient reading lets two parsers disagree (request smuggling):
/// - Lines end with CRLF; a bare LF or a CR not followed by LF is malformed (§2.2), found as soon as it is
///   read, not when the head would end. Empty lines before the request line are skipped (§2.2).
/// - `method SP request-target SP HTTP-version` (§3): the method a token NIO knows (an unknown one is
///   refused as llhttp refuses it), the target visible ASCII in origin-form or `*` (§3.2; absolute-form,
///   which the gateway refuses anyway, is malformed here), the version `HTTP/` DIGIT `.` DIGIT. Runs of
///   SP between them read as one (llhttp's normalization, documented in DESIGN-NOTES). The version is
///   HTTP/1.0 or HTTP/1.1 (llhttp reads no other).
/// - `field-name ":" OWS field-value OWS` (§5): the name a token, no whitespace before the colon, no
///   obs-fold (§5.2), the value HTAB, SP, VCHAR or obs-text (no NUL, CR or other control byte), without
///   its leading and trailing OWS (RFC 9110 §5.5; llhttp kept the trailing OWS).
/// - `Content-Length` (§6.3): one line of digits only (a list, a sign or a second line is malformed).
///   `Transfer-Encoding` and the upgrade's own fields are the checks' (``ClientUpgradeRequest``).
/// - The head, from the first byte (empty lines included), ends within `limit` bytes; otherwise it is too
///   large, and the request line alone is (414, not 431) when its LF was not among those bytes
///   (RFC 9110 §15.5.15, RELIABILITY H-02).
struct RequestHeadScanner {
    enum Outcome: Equatable {
        /// No verdict yet: read more.
        case needMore
        /// The head, and how many bytes of the buffer it took (empty lines before it, its CRLFCRLF
        /// included); what follows is not the head's.
        case head(HTTPRequestHead, length: Int)
        case failure(Failure)
    }

    enum Failure: Error, Equatable {
        /// `limit` bytes passed without the head's end; `inRequestLine`: nor the request line's.
        case tooLarge(inRequestLine: Bool)
        /// Not an HTTP/1 request head by the rules above (what went wrong, for tests and logs).
        case malformed(String)
    }

    let limit: Int
    /// How many bytes were checked already (resumed from there).
    private var checked = 0
    /// Where the request line starts (after the empty lines), once a byte of it was seen.
    private var lineStart: Int?
    private var requestLineEnded = false
    /// How much of CRLFCRLF the checked bytes end with (0–4).
    private var endMatch = 0

    init(limit: Int) { self.limit = limit }

    /// The verdict for `buffer` (its readable bytes: everything the client sent so far, unconsumed).
    mutating func scan(_ buffer: ByteBuffer) -> Outcome {
        let available = buffer.readableBytes
        let end: Int? = buffer.withUnsafeReadableBytes { bytes in
            self.findEnd(bytes, upTo: min(available, self.limit))
        }
        if case .some(let headEnd) = end {
            if headEnd < 0 { return .failure(.malformed(self.lastError)) }
            return buffer.withUnsafeReadableBytes { bytes in
                switch Self.parse(UnsafeRawBufferPointer(rebasing: bytes[self.lineStart!..<(headEnd - 2)])) {
                case .success(let head): .head(head, length: headEnd)
                case .failure(let failure): .failure(failure)
                }
            }
        }
        if available > self.limit { return .failure(.tooLarge(inRequestLine: !self.requestLineEnded)) }
        return .needMore
    }

    private var lastError = ""

    /// Checks line endings from `checked` to `count`; the index just past CRLFCRLF when the head ends, -1
    /// when a line ending is malformed, nil when more is needed.
    private mutating func findEnd(_ bytes: UnsafeRawBufferPointer, upTo count: Int) -> Int? {
        var index = self.checked
        defer { self.checked = index }
        while index < count {
            let byte = bytes[index]
            index += 1
            guard self.lineStart != nil else {
                // Empty lines before the request line: CRLF pairs only.
                switch (self.endMatch, byte) {
                case (0, UInt8(ascii: "\r")): self.endMatch = 1
                case (1, UInt8(ascii: "\n")): self.endMatch = 0
                case (0, UInt8(ascii: "\n")), (1, _):
                    self.lastError = "bare CR or LF before the request line"
                    return -1
                case (_, _): self.lineStart = index - 1
                }
                continue
            }
            switch (self.endMatch, byte) {
            case (0, UInt8(ascii: "\r")), (2, UInt8(ascii: "\r")):
                self.endMatch += 1
            case (1, UInt8(ascii: "\n")), (3, UInt8(ascii: "\n")):
                self.endMatch += 1
                self.requestLineEnded = true
                if self.endMatch == 4 { return index }
            case (1, _), (3, _):
                self.lastError = "CR not followed by LF"
                return -1
            case (_, UInt8(ascii: "\n")):
                self.lastError = "bare LF"
                return -1
            case (_, _):
                self.endMatch = 0
            }
        }
        return nil
    }

    // MARK: Parsing a complete head

    /// Parses the request line and fields of `head` (without its final CRLFCRLF; every line ending in it
    /// is a CRLF, checked while scanning).
    static func parse(_ head: UnsafeRawBufferPointer) -> Result<HTTPRequestHead, Failure> {
        var lines = LineReader(bytes: head)
        guard let line = lines.next() else { return .failure(.malformed("no request line")) }
        guard case .success(let (method, target, version)) = Self.requestLine(line) else {
            return .failure(.malformed("request line"))
        }
        var fields: [(String, String)] = []
        var contentLength = false
        while let line = lines.next() {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex else {
                return .failure(.malformed("field line without a name"))
            }
            let name = line[line.startIndex..<colon]
            guard name.allSatisfy(Self.isTokenByte) else {
                // Whitespace before the colon, obs-fold (a line starting with SP or HTAB), a non-token byte.
                return .failure(.malformed("field name"))
            }
            var valueStart = colon + 1
            var valueEnd = line.endIndex
            while valueStart < valueEnd, Self.isOWS(line[valueStart]) { valueStart += 1 }
            while valueEnd > valueStart, Self.isOWS(line[valueEnd - 1]) { valueEnd -= 1 }
            let value = line[valueStart..<valueEnd]
            guard value.allSatisfy(Self.isFieldValueByte) else { return .failure(.malformed("field value")) }
            if Self.equalsIgnoringCase(name, "content-length") {
                // RFC 9112 §6.3: one length, digits only (a list or a second line is a smuggling shape).
                guard !contentLength, !value.isEmpty, value.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                    return .failure(.malformed("Content-Length"))
                }
                contentLength = true
            }
            fields.append((Self.string(name), Self.string(value)))
        }
        return .success(HTTPRequestHead(version: version, method: method, uri: target, headers: HTTPHeaders(fields)))
    }

    private static func requestLine(_ line: Slice<UnsafeRawBufferPointer>) -> Result<(HTTPMethod, String, HTTPVersion), Failure> {
        let parts = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: true)
        guard line.first != UInt8(ascii: " "), line.last != UInt8(ascii: " "), parts.count == 3 else { return .failure(.malformed("request line")) }
        let (methodBytes, target, version) = (parts[0], parts[1], parts[2])
        // origin-form or `*` (RFC 9112 §3.2); the gateway refuses every other form (absolute-form: 400)
        // and llhttp refuses most of their misspellings, so they are refused here.
        let isOriginForm = target.first == UInt8(ascii: "/") || (target.count == 1 && target.first == UInt8(ascii: "*"))
        guard methodBytes.allSatisfy(Self.isTokenByte), isOriginForm, target.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return .failure(.malformed("method or target"))
        }
        let method = HTTPMethod(rawValue: Self.string(methodBytes))
        if case .RAW = method { return .failure(.malformed("unknown method")) }
        // HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3), and only HTTP/1.0 or HTTP/1.1, the
        // versions an HTTP/1 request line can carry and the only ones llhttp reads (the fuzzing smoke run
        // found `HTTP/0.1` read here and refused by llhttp; every version is refused by the checks but
        // 1.1, so the status is 400 either way).
        let v = Array(version)
        guard v.count == 8, Array(v[0..<5]) == Array("HTTP/".utf8), v[6] == UInt8(ascii: "."),
            let major = Self.digit(v[5]), let minor = Self.digit(v[7]), major == 1, minor <= 1
        else { return .failure(.malformed("version")) }
        return .success((method, Self.string(target), HTTPVersion(major: major, minor: minor)))
    }

    private static func digit(_ byte: UInt8) -> Int? {
        byte >= 0x30 && byte <= 0x39 ? Int(byte - 0x30) : nil
    }

    private static func string(_ bytes: Slice<UnsafeRawBufferPointer>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes), as: UTF8.self)
    }

    private static func isOWS(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }

    /// field-vchar / SP / HTAB (RFC 9110 §5.5; obs-text allowed, as every HTTP/1 parser does).
    private static func isFieldValueByte(_ byte: UInt8) -> Bool { byte >= 0x20 ? byte != 0x7F : byte == 0x09 }

    /// tchar (RFC 9110 §5.6.2).
    static func isTokenByte(_ byte: UInt8) -> Bool { tokenBytes[Int(byte)] }

    private static let tokenBytes: [Bool] = (0..<256).map { byte in
        switch UInt8(byte) {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        case _: "!#$%&'*+-.^_`|~".utf8.contains(UInt8(byte))
        }
    }

    private static func equalsIgnoringCase(_ bytes: Slice<UnsafeRawBufferPointer>, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        return zip(bytes, expected).allSatisfy { $0 | 0x20 == $1 }
    }

    /// The CRLF-separated lines of a head whose line endings were checked.
    private struct LineReader {
        let bytes: UnsafeRawBufferPointer
        var position = 0

        mutating func next() -> Slice<UnsafeRawBufferPointer>? {
            guard self.position < self.bytes.count else { return nil }
            let start = self.position
            var index = start
            while index < self.bytes.count, self.bytes[index] != UInt8(ascii: "\r") { index += 1 }
            self.position = index + 2
            return self.bytes[start..<index]
        }
    }
}
