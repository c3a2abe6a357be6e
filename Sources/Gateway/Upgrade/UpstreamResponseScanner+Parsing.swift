import NIOCore
import NIOHTTP1

extension UpstreamResponseScanner {
    /// Parses a complete head (status line, header lines, the empty line; every line already known to
    /// end in CRLF): `HTTP/1.x SP 3DIGIT [SP reason] CRLF`, then `token ":" OWS value OWS CRLF` lines
    /// (RFC 9112 §4, §5). Values keep HTAB, SP, VCHAR and obs-text; names are tokens (RFC 9110 §5.6.2).
    /// The result is what NIO's llhttp decoder makes of the same bytes (trailing whitespace of a value
    /// kept, the reason phrase dropped).
    static func parseHead(_ bytes: UnsafeBufferPointer<UInt8>) throws -> HTTPResponseHead {
        var index = 0
        let prefix: [UInt8] = Array("HTTP/1.".utf8)
        guard bytes.count >= 15, prefix.indices.allSatisfy({ bytes[$0] == prefix[$0] }) else {
            throw Malformed(detail: "status line: not HTTP/1.x")
        }
        let minor = bytes[7]
        guard minor == UInt8(ascii: "0") || minor == UInt8(ascii: "1"), bytes[8] == UInt8(ascii: " ") else {
            throw Malformed(detail: "status line: version")
        }
        var code = 0
        for offset in 9..<12 {
            let digit = bytes[offset]
            guard digit >= 0x30, digit <= 0x39 else { throw Malformed(detail: "status line: code") }
            code = code * 10 + Int(digit - 0x30)
        }
        index = 12
        if bytes[12] == UInt8(ascii: " ") {
            index = 13
            while bytes[index] != UInt8(ascii: "\r") {
                guard Self.isFieldByte(bytes[index]) else { throw Malformed(detail: "status line: reason") }
                index += 1
            }
        } else {
            guard bytes[12] == UInt8(ascii: "\r") else { throw Malformed(detail: "status line: code") }
        }
        // The reason phrase is checked but not kept: NIO's decoder keeps only the code (and the standard
        // phrase of a known one), and the gateway relays nothing else.
        index += 2
        var headers = HTTPHeaders()
        while bytes[index] != UInt8(ascii: "\r") {
            let nameStart = index
            while bytes[index] != UInt8(ascii: ":") {
                guard Self.isTokenByte(bytes[index]) else { throw Malformed(detail: "header name") }
                index += 1
            }
            guard index > nameStart else { throw Malformed(detail: "empty header name") }
            let nameEnd = index
            index += 1
            while bytes[index] == UInt8(ascii: " ") || bytes[index] == UInt8(ascii: "\t") { index += 1 }
            let valueStart = index
            while bytes[index] != UInt8(ascii: "\r") {
                guard Self.isFieldByte(bytes[index]) else { throw Malformed(detail: "header value") }
                index += 1
            }
            // Trailing whitespace stays, as llhttp leaves it (the checks trim OWS themselves).
            let valueEnd = index
            index += 2
            headers.add(
                name: String(decoding: UnsafeBufferPointer(rebasing: bytes[nameStart..<nameEnd]), as: UTF8.self),
                value: String(decoding: UnsafeBufferPointer(rebasing: bytes[valueStart..<valueEnd]), as: UTF8.self)
            )
        }
        return HTTPResponseHead(
            version: .init(major: 1, minor: Int(minor - 0x30)),
            status: HTTPResponseStatus(statusCode: code),
            headers: headers
        )
    }

    /// HTAB, SP, VCHAR, obs-text (RFC 9110 §5.5): no other control byte, no DEL.
    static func isFieldByte(_ byte: UInt8) -> Bool {
        byte == 0x09 || (byte >= 0x20 && byte != 0x7F)
    }

    /// tchar (RFC 9110 §5.6.2).
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
            UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
}

/// A chunked body (RFC 9112 §7.1) read across reads: `size [; ext] CRLF data CRLF` … `0 CRLF CRLF`.
/// Only the data is handed on; extensions (`;token[=token]`, no whitespace) are skipped. Trailer fields
/// are refused (the gateway relays at most a refusal's body, never its trailers).
struct ChunkedBody {
    struct Malformed: Error {}

    private enum Step {
        case size(digits: Int, value: Int)
        /// Inside `;name[=value]`; `atStart` right after `;` or `=` (a token byte must follow).
        case extensions(value: Int, atStart: Bool)
        case sizeLF(value: Int)
        case data(remaining: Int)
        case dataCR
        case dataLF
        /// After the last chunk: its final CR, then LF.
        case lastCR
        case lastLF
    }

    private var step = Step.size(digits: 0, value: 0)

    /// Reads what `buffer` holds, handing data to `data`; true once the last chunk ended
    /// (what follows stays in `buffer`).
    mutating func read(_ buffer: inout ByteBuffer, data: (inout ByteBuffer) -> Void) throws -> Bool {
        while buffer.readableBytes > 0 {
            if case .data(let remaining) = self.step {
                let taken = min(remaining, buffer.readableBytes)
                var slice = buffer.readSlice(length: taken)!
                data(&slice)
                self.step = remaining == taken ? .dataCR : .data(remaining: remaining - taken)
                continue
            }
            let byte = buffer.readInteger(as: UInt8.self)!
            switch self.step {
            case .size(let digits, let value):
                if let digit = Self.hexValue(byte) {
                    guard digits < 12 else { throw Malformed() }
                    self.step = .size(digits: digits + 1, value: value * 16 + digit)
                } else if digits > 0, byte == UInt8(ascii: ";") {
                    self.step = .extensions(value: value, atStart: true)
                } else if digits > 0, byte == UInt8(ascii: "\r") {
                    self.step = .sizeLF(value: value)
                } else {
                    throw Malformed()
                }
            case .extensions(let value, let atStart):
                if UpstreamResponseScanner.isTokenByte(byte) {
                    self.step = .extensions(value: value, atStart: false)
                } else if atStart {
                    throw Malformed()
                } else if byte == UInt8(ascii: ";") || byte == UInt8(ascii: "=") {
                    self.step = .extensions(value: value, atStart: true)
                } else if byte == UInt8(ascii: "\r") {
                    self.step = .sizeLF(value: value)
                } else {
                    throw Malformed()
                }
            case .sizeLF(let value):
                guard byte == UInt8(ascii: "\n") else { throw Malformed() }
                self.step = value == 0 ? .lastCR : .data(remaining: value)
            case .data:
                preconditionFailure("handled above")
            case .dataCR:
                guard byte == UInt8(ascii: "\r") else { throw Malformed() }
                self.step = .dataLF
            case .dataLF:
                guard byte == UInt8(ascii: "\n") else { throw Malformed() }
                self.step = .size(digits: 0, value: 0)
            case .lastCR:
                guard byte == UInt8(ascii: "\r") else { throw Malformed() }
                self.step = .lastLF
            case .lastLF:
                guard byte == UInt8(ascii: "\n") else { throw Malformed() }
                return true
            }
        }
        return false
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(byte - UInt8(ascii: "A") + 10)
        default: nil
        }
    }
}
