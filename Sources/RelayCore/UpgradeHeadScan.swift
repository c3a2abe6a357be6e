import Frames

/// Why an opening-handshake head was refused. The prototype answers every refusal of a client's head with
/// 400 and every refusal of the upstream's with 502; the code is for tests and logs.
public struct UpgradeHeadError: Error, Hashable, Sendable {
    public enum Code: Hashable, Sendable {
        case tooLarge, badLineEnding, badRequestLine, badStatusLine, badHeaderLine, obsoleteLineFolding
        case missingHost, duplicateHost, notAnUpgrade, badVersion, badKey, hasBody, badAccept, unexpectedExtension
    }

    public var code: Code
    public init(_ code: Code) { self.code = code }
}

/// What a scan of the bytes received so far found.
public enum HeadScan<Head: Sendable>: Sendable {
    /// The blank line that ends the head has not arrived yet (and the head is still under the limit).
    case incomplete
    case invalid(UpgradeHeadError)
    /// A complete, valid head; `length` bytes (through the blank line) belong to it, the rest are frames.
    case complete(Head, length: Int)
}

/// The client's upgrade request, as much of it as the relay needs.
public struct ClientUpgradeHead: Hashable, Sendable {
    /// The request target (origin form, e.g. `/chat?x=1`), sent to the upstream unchanged.
    public var target: String
    /// `Sec-WebSocket-Key`, for the client's `Sec-WebSocket-Accept` (RFC 6455 §4.2.2).
    public var key: String
}

/// A minimal, strict scanner of HTTP/1.1 upgrade heads over raw bytes (RFC 9112 §2–§5, RFC 6455 §4.1–§4.2),
/// for the prototype core only: the gateway's real scanner is `Sources/Gateway/Upgrade/` (issue #15).
/// Strict means: CRLF line endings only, no obsolete line folding, no whitespace before a field's colon,
/// no control bytes in values, no body on the upgrade request; everything not needed for the relay
/// (subprotocols, extensions, origin) is ignored on the request and refused on the response.
public enum UpgradeHeadScanner {
    /// The largest head accepted (request or response), in bytes.
    public static let maxHeadBytes = 8192

    /// The offset just past the `CRLF CRLF` ending the head, if it has arrived.
    public static func headLength(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard bytes.count >= 4 else { return nil }
        var index = 3
        while index < bytes.count {
            if bytes[index] == 0x0A && bytes[index - 1] == 0x0D && bytes[index - 2] == 0x0A && bytes[index - 3] == 0x0D {
                return index + 1
            }
            index += 1
        }
        return nil
    }

    /// Scans a client's upgrade request (RFC 6455 §4.2.1).
    public static func scanRequest(_ bytes: UnsafeRawBufferPointer) -> HeadScan<ClientUpgradeHead> {
        guard let length = headLength(bytes) else {
            return bytes.count > maxHeadBytes ? .invalid(.init(.tooLarge)) : .incomplete
        }
        guard length <= maxHeadBytes else { return .invalid(.init(.tooLarge)) }
        var lines = Lines(bytes: UnsafeRawBufferPointer(rebasing: bytes[0..<length - 2]))
        guard let first = lines.next() else { return .invalid(.init(.badRequestLine)) }
        guard case .line(let requestLine) = first else { return .invalid(.init(.badLineEnding)) }
        // "GET" SP origin-form SP "HTTP/1.1"
        let prefix = Array("GET /".utf8)
        let suffix = Array(" HTTP/1.1".utf8)
        guard requestLine.count >= prefix.count + suffix.count, requestLine.starts(with: prefix),
            requestLine.suffix(suffix.count).elementsEqual(suffix)
        else { return .invalid(.init(.badRequestLine)) }
        let targetBytes = requestLine[(requestLine.startIndex + 4)..<(requestLine.endIndex - suffix.count)]
        guard targetBytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return .invalid(.init(.badRequestLine)) }
        var hosts = 0
        var upgrade = false
        var connection = false
        var version = false
        var key: String?
        var keys = 0
        while let item = lines.next() {
            guard case .line(let line) = item else { return .invalid(.init(.badLineEnding)) }
            let field: Field
            switch Field.parse(line) {
            case .success(let parsed): field = parsed
            case .failure(let error): return .invalid(error)
            }
            if field.is("host") {
                hosts += 1
            } else if field.is("upgrade") {
                upgrade = upgrade || field.listsToken("websocket")
            } else if field.is("connection") {
                connection = connection || field.listsToken("upgrade")
            } else if field.is("sec-websocket-version") {
                guard !version, field.value.elementsEqual("13".utf8) else { return .invalid(.init(.badVersion)) }
                version = true
            } else if field.is("sec-websocket-key") {
                keys += 1
                key = String(decoding: field.value, as: UTF8.self)
            } else if field.is("content-length") || field.is("transfer-encoding") {
                return .invalid(.init(.hasBody))
            }
        }
        guard hosts > 0 else { return .invalid(.init(.missingHost)) }
        guard hosts == 1 else { return .invalid(.init(.duplicateHost)) }
        guard upgrade, connection else { return .invalid(.init(.notAnUpgrade)) }
        guard version else { return .invalid(.init(.badVersion)) }
        guard keys == 1, let key, HandshakeKey.isValidKey(key) else { return .invalid(.init(.badKey)) }
        return .complete(ClientUpgradeHead(target: String(decoding: targetBytes, as: UTF8.self), key: key), length: length)
    }

    /// Scans the upstream's answer to an upgrade request whose key gives `expectedAccept` (RFC 6455 §4.1,
    /// the client's checks): status 101, `Upgrade: websocket`, `Connection: upgrade`, the accept value, and
    /// no extension or subprotocol (none was offered).
    public static func scanResponse(_ bytes: UnsafeRawBufferPointer, expectedAccept: String) -> HeadScan<Int> {
        guard let length = headLength(bytes) else {
            return bytes.count > maxHeadBytes ? .invalid(.init(.tooLarge)) : .incomplete
        }
        guard length <= maxHeadBytes else { return .invalid(.init(.tooLarge)) }
        var lines = Lines(bytes: UnsafeRawBufferPointer(rebasing: bytes[0..<length - 2]))
        guard case .line(let statusLine)? = lines.next() else { return .invalid(.init(.badLineEnding)) }
        let prefix = Array("HTTP/1.1 101".utf8)
        guard statusLine.starts(with: prefix), statusLine.count == prefix.count || statusLine[statusLine.startIndex + prefix.count] == 0x20
        else { return .invalid(.init(.badStatusLine)) }
        var upgrade = false
        var connection = false
        var accepts = 0
        var acceptMatches = false
        while let item = lines.next() {
            guard case .line(let line) = item else { return .invalid(.init(.badLineEnding)) }
            let field: Field
            switch Field.parse(line) {
            case .success(let parsed): field = parsed
            case .failure(let error): return .invalid(error)
            }
            if field.is("upgrade") {
                upgrade = upgrade || field.listsToken("websocket")
            } else if field.is("connection") {
                connection = connection || field.listsToken("upgrade")
            } else if field.is("sec-websocket-accept") {
                accepts += 1
                acceptMatches = field.value.elementsEqual(expectedAccept.utf8)
            } else if field.is("sec-websocket-extensions") || field.is("sec-websocket-protocol") {
                return .invalid(.init(.unexpectedExtension))
            }
        }
        guard upgrade, connection else { return .invalid(.init(.notAnUpgrade)) }
        guard accepts == 1, acceptMatches else { return .invalid(.init(.badAccept)) }
        return .complete(length, length: length)
    }
}

/// The CRLF-terminated lines of a head (without the final blank line's CRLF).
private struct Lines {
    enum Item {
        case line(Slice<UnsafeRawBufferPointer>)
        case badEnding
    }
    let bytes: UnsafeRawBufferPointer
    var position = 0

    mutating func next() -> Item? {
        guard self.position < self.bytes.count else { return nil }
        var index = self.position
        while index < self.bytes.count {
            let byte = self.bytes[index]
            if byte == 0x0D {
                guard index + 1 < self.bytes.count, self.bytes[index + 1] == 0x0A else { return .badEnding }
                let line = self.bytes[self.position..<index]
                self.position = index + 2
                return .line(line)
            }
            if byte == 0x0A { return .badEnding }
            index += 1
        }
        return .badEnding
    }
}

/// One header field line: `name ":" OWS value OWS` (RFC 9112 §5.1).
private struct Field {
    var name: Slice<UnsafeRawBufferPointer>
    var value: Slice<UnsafeRawBufferPointer>

    static func parse(_ line: Slice<UnsafeRawBufferPointer>) -> Result<Field, UpgradeHeadError> {
        guard let first = line.first else { return .failure(.init(.badHeaderLine)) }
        if first == 0x20 || first == 0x09 { return .failure(.init(.obsoleteLineFolding)) }
        guard let colon = line.firstIndex(of: 0x3A), colon > line.startIndex else { return .failure(.init(.badHeaderLine)) }
        let name = line[line.startIndex..<colon]
        guard name.allSatisfy(isTokenByte) else { return .failure(.init(.badHeaderLine)) }
        var start = colon + 1
        var end = line.endIndex
        while start < end, line[start] == 0x20 || line[start] == 0x09 { start += 1 }
        while end > start, line[end - 1] == 0x20 || line[end - 1] == 0x09 { end -= 1 }
        let value = line[start..<end]
        guard value.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else { return .failure(.init(.badHeaderLine)) }
        return .success(Field(name: name, value: value))
    }

    /// Case-insensitive name comparison with a lower-case ASCII name.
    func `is`(_ lowercased: StaticString) -> Bool {
        guard self.name.count == lowercased.utf8CodeUnitCount else { return false }
        var index = 0
        for byte in self.name {
            if lowercaseASCII(byte) != lowercased.utf8Start[index] { return false }
            index += 1
        }
        return true
    }

    /// Whether the comma-separated value lists `token` (case-insensitive, RFC 9110 §5.6.1).
    func listsToken(_ token: StaticString) -> Bool {
        for element in self.value.split(separator: 0x2C) {
            var start = element.startIndex
            var end = element.endIndex
            while start < end, element[start] == 0x20 || element[start] == 0x09 { start += 1 }
            while end > start, element[end - 1] == 0x20 || element[end - 1] == 0x09 { end -= 1 }
            guard end - start == token.utf8CodeUnitCount else { continue }
            var equal = true
            for offset in 0..<(end - start) where lowercaseASCII(element[start + offset]) != token.utf8Start[offset] {
                equal = false
                break
            }
            if equal { return true }
        }
        return false
    }
}

private func lowercaseASCII(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte }

/// RFC 9110 §5.6.2 `tchar`.
private func isTokenByte(_ byte: UInt8) -> Bool {
    switch byte {
    case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: true
    case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: true
    default: false
    }
}
