import Frames
import NIOCore
import NIOHTTP1

/// Reads the upstream's answer to the upgrade request straight from the channel's bytes (issue #15):
/// a strict scan of the status line and headers (RFC 9112 §4, §5), then, for a status that has one, the
/// body as its framing says (RFC 9112 §6.3), collected up to ``maxRelayedBody``. No HTTP decoder in the
/// pipeline and no pipeline change after the 101: what follows the 101's head (frames the upstream sent
/// at once) is handed back as `leftover`.
///
/// Stricter than NIO's llhttp decoder, never looser: whatever the scanner accepts, llhttp reads as the
/// same head (`UpstreamResponseScannerTests` checks it against `HTTPResponseDecoder`). Refused: a line
/// not ended by CRLF, obs-fold, whitespace before a colon, control bytes in a value, a version other
/// than HTTP/1.0 or 1.1, a status that is not three digits, a bad or repeated `Content-Length`, both
/// `Content-Length` and `Transfer-Encoding`, a head over ``maxHeadBytes``.
struct UpstreamResponseScanner {
    static let maxHeadBytes = 64 * 1024
    static let maxRelayedBody = 64 * 1024

    struct Malformed: Error, Equatable {
        let detail: String
    }

    enum Outcome: Equatable {
        case needMore
        /// The answer is complete; `leftover` is what followed it in the same read (frames after a 101).
        case complete(UpstreamResponse, leftover: ByteBuffer?)
        case malformed(Malformed)
    }

    /// How the head's end is found: the position in `CR LF CR LF`, carried across reads.
    private enum Terminator {
        case line
        case cr
        case lineStart
        case secondCR
    }

    /// How a non-101 answer's body ends (RFC 9112 §6.3).
    private enum Body {
        case length(Int)
        case chunked(ChunkedBody)
        case untilClose
    }

    private enum State {
        case head(Terminator)
        case body(HTTPResponseHead, Body)
        case done
    }

    private var state: State = .head(.lineStart)
    /// Head bytes of earlier reads (empty while the whole head arrives in one read).
    private var headBytes = ByteBuffer()
    private var body = ByteBuffer()

    /// Feeds one read; `buffer` is consumed.
    mutating func feed(_ buffer: inout ByteBuffer) -> Outcome {
        switch self.state {
        case .head(let terminator):
            return self.scanHead(&buffer, terminator)
        case .body(let head, let framing):
            return self.readBody(&buffer, head: head, framing)
        case .done:
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
            return .needMore
        }
    }

    /// The connection closed: a body delimited by the close is complete; anything else was no answer.
    mutating func closed() -> UpstreamResponse? {
        guard case .body(let head, .untilClose) = self.state else { return nil }
        self.state = .done
        return UpstreamResponse(head: head, body: self.body)
    }

    private mutating func scanHead(_ buffer: inout ByteBuffer, _ start: Terminator) -> Outcome {
        var terminator = start
        var found = false
        let scanned = buffer.withUnsafeReadableBytes { bytes -> Int? in
            for index in bytes.indices {
                let byte = bytes[index]
                switch terminator {
                case .line, .lineStart:
                    if byte == UInt8(ascii: "\r") {
                        terminator = terminator == .lineStart ? .secondCR : .cr
                    } else if byte == UInt8(ascii: "\n") {
                        return nil
                    } else {
                        terminator = .line
                    }
                case .cr:
                    guard byte == UInt8(ascii: "\n") else { return nil }
                    terminator = .lineStart
                case .secondCR:
                    guard byte == UInt8(ascii: "\n") else { return nil }
                    found = true
                    return index + 1
                }
            }
            return bytes.count
        }
        guard let scanned else { return self.fail("a line not ended by CRLF") }
        guard self.headBytes.readableBytes + scanned <= Self.maxHeadBytes else {
            return self.fail("response head over \(Self.maxHeadBytes) bytes")
        }
        guard found else {
            self.state = .head(terminator)
            self.headBytes.writeBuffer(&buffer)
            return .needMore
        }
        let head: HTTPResponseHead
        do {
            if self.headBytes.readableBytes == 0 {
                head = try buffer.readableBytesView.prefix(scanned).withContiguousStorageIfAvailable { try Self.parseHead($0) }!
                buffer.moveReaderIndex(forwardBy: scanned)
            } else {
                var rest = buffer.readSlice(length: scanned)!
                self.headBytes.writeBuffer(&rest)
                head = try self.headBytes.readableBytesView.withContiguousStorageIfAvailable { try Self.parseHead($0) }!
                self.headBytes = ByteBuffer()
            }
        } catch let error as Malformed {
            return self.fail(error.detail)
        } catch {
            return self.fail("\(error)")
        }
        if (100..<200).contains(head.status.code), head.status.code != 101 {
            // An interim answer (100 Continue, 103 Early Hints…): skipped, as NIO's decoder drops it
            // (RFC 9110 §15.2: a client reads past them to the final answer).
            self.state = .head(.lineStart)
            return buffer.readableBytes > 0 ? self.scanHead(&buffer, .lineStart) : .needMore
        }
        let framing: Body?
        do {
            framing = try Self.framing(of: head)
        } catch {
            return self.fail("invalid Content-Length or Transfer-Encoding")
        }
        guard let framing else {
            // A 101 (its frames follow), or a status without a body (RFC 9112 §6.3 rule 1).
            self.state = .done
            let leftover = buffer.readableBytes > 0 ? buffer : nil
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
            return .complete(UpstreamResponse(head: head, body: ByteBuffer()), leftover: leftover)
        }
        self.state = .body(head, framing)
        return self.readBody(&buffer, head: head, framing)
    }

    private mutating func readBody(_ buffer: inout ByteBuffer, head: HTTPResponseHead, _ framing: Body) -> Outcome {
        switch framing {
        case .length(let remaining):
            let taken = min(remaining, buffer.readableBytes)
            var slice = buffer.readSlice(length: taken)!
            self.collect(&slice)
            if remaining == taken { return self.finish(head, &buffer) }
            self.state = .body(head, .length(remaining - taken))
            return .needMore
        case .chunked(var chunked):
            do {
                let complete = try chunked.read(&buffer) { self.collect(&$0) }
                if complete { return self.finish(head, &buffer) }
                self.state = .body(head, .chunked(chunked))
                return .needMore
            } catch {
                return self.fail("chunked body: \(error)")
            }
        case .untilClose:
            self.collect(&buffer)
            return .needMore
        }
    }

    private mutating func collect(_ slice: inout ByteBuffer) {
        let room = Self.maxRelayedBody - self.body.readableBytes
        if room > 0, var kept = slice.readSlice(length: min(room, slice.readableBytes)) {
            self.body.writeBuffer(&kept)
        }
        slice.moveReaderIndex(forwardBy: slice.readableBytes)
    }

    private mutating func finish(_ head: HTTPResponseHead, _ buffer: inout ByteBuffer) -> Outcome {
        self.state = .done
        // A refusal closes both connections: what the upstream sent after it is never read.
        buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
        return .complete(UpstreamResponse(head: head, body: self.body), leftover: nil)
    }

    private mutating func fail(_ detail: String) -> Outcome {
        self.state = .done
        return .malformed(Malformed(detail: detail))
    }

    /// The body's framing (RFC 9112 §6.3), nil for none; throws on a conflicting or invalid framing.
    private static func framing(of head: HTTPResponseHead) throws -> Body? {
        let code = head.status.code
        if (100..<200).contains(code) || code == 204 || code == 304 { return nil }
        let lengths = head.headers["Content-Length"]
        let codings = head.headers["Transfer-Encoding"]
        if !codings.isEmpty {
            guard lengths.isEmpty else { throw Malformed(detail: "Content-Length with Transfer-Encoding") }
            let last = HTTPSyntax.commaList(codings).last?.lowercased()
            return last == "chunked" ? .chunked(ChunkedBody()) : .untilClose
        }
        guard let length = lengths.first else { return .untilClose }
        guard lengths.count == 1, !length.isEmpty, length.utf8.count <= 15, length.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let value = Int(length)
        else { throw Malformed(detail: "Content-Length") }
        return .length(value)
    }
}
