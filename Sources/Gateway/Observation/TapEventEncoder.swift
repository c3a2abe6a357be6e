import Frames
import NIOCore

/// The NDJSON of the frame tap (issue #14 §2, shapes in README "Admin listener" and DESIGN-NOTES "Live
/// connections and the tap"), written straight into the admin connection's `ByteBuffer` (issue #15):
/// static strings, integers written as digits, strings escaped byte by byte with a fast path that copies
/// runs of clean bytes, base64 written in place. No `String` is built and nothing is allocated per event
/// beyond the buffer's growth.
///
/// The bytes are those the `String`-interpolating encoder of issue #14 produced (the tests compare
/// both on hostile input): a string's UTF-8 is copied as it is, except `"` and `\` (escaped), `\n`,
/// `\r`, `\t` and the other control characters below U+0020 (`\u00XX`, lowercase hex); U+2028, DEL and
/// the rest are valid JSON as they are.
enum TapEventEncoder {
    /// One JSON object and a newline. `payload` is the subscriber's capture mode and `maxPayload` its
    /// bound (a frame's captured bytes are cut to it).
    static func write(_ event: TapEvent, payload: TapPayloadMode, maxPayload: Int, to buffer: inout ByteBuffer) {
        switch event {
        case .open(let open): Self.write(open, to: &buffer)
        case .frame(let frame): Self.write(frame, payload: payload, maxPayload: maxPayload, to: &buffer)
        case .close(let close): Self.write(close, to: &buffer)
        }
    }

    /// `{"event":"dropped","count":N}`: events this tap lost because it fell behind.
    static func writeDropped(_ count: Int, to buffer: inout ByteBuffer) {
        buffer.writeStaticString("{\"event\":\"dropped\",\"count\":")
        Self.writeInteger(count, to: &buffer)
        buffer.writeStaticString("}\n")
    }

    static func write(_ open: TapOpen, to buffer: inout ByteBuffer) {
        buffer.writeStaticString("{\"event\":\"open\",\"connection\":")
        Self.writeInteger(open.connection, to: &buffer)
        buffer.writeStaticString(",\"time\":")
        Self.writeTime(open.time, to: &buffer)
        buffer.writeStaticString(",\"route\":")
        Self.writeQuoted(open.route, to: &buffer)
        buffer.writeStaticString(",\"scheme\":")
        Self.writeQuoted(open.scheme, to: &buffer)
        buffer.writeStaticString(",\"listener\":")
        Self.writeQuoted(open.listener, to: &buffer)
        buffer.writeStaticString(",\"client\":")
        Self.writeQuoted(open.client, to: &buffer)
        buffer.writeStaticString(",\"request\":{\"method\":")
        Self.writeQuoted(open.method, to: &buffer)
        buffer.writeStaticString(",\"target\":")
        Self.writeQuoted(open.target, to: &buffer)
        buffer.writeStaticString(",\"headers\":[")
        for (index, header) in open.headers.enumerated() {
            buffer.writeStaticString(index == 0 ? "[" : ",[")
            Self.writeQuoted(header.0, to: &buffer)
            buffer.writeInteger(UInt8(ascii: ","))
            Self.writeQuoted(header.1, to: &buffer)
            buffer.writeInteger(UInt8(ascii: "]"))
        }
        buffer.writeStaticString(open.attachedLive ? "]},\"attached_live\":true}\n" : "]}}\n")
    }

    static func write(_ close: TapClose, to buffer: inout ByteBuffer) {
        buffer.writeStaticString("{\"event\":\"close\",\"connection\":")
        Self.writeInteger(close.connection, to: &buffer)
        buffer.writeStaticString(",\"time\":")
        Self.writeTime(close.time, to: &buffer)
        buffer.writeStaticString(",\"code\":")
        if let code = close.code { Self.writeInteger(code, to: &buffer) } else { buffer.writeStaticString("null") }
        buffer.writeStaticString(",\"reason\":")
        Self.writeQuoted(close.reason, to: &buffer)
        buffer.writeStaticString(",\"by\":")
        Self.writeQuoted(close.by, to: &buffer)
        buffer.writeStaticString(close.leg == .client ? ",\"leg\":\"client\"}\n" : ",\"leg\":\"upstream\"}\n")
    }

    static func write(_ frame: TapFrame, payload mode: TapPayloadMode, maxPayload: Int, to buffer: inout ByteBuffer) {
        buffer.writeStaticString("{\"event\":\"frame\",\"connection\":")
        Self.writeInteger(frame.connection, to: &buffer)
        buffer.writeStaticString(",\"time\":")
        Self.writeTime(frame.time, to: &buffer)
        buffer.writeStaticString(
            frame.from == .client ? ",\"direction\":\"client_to_upstream\",\"opcode\":\"" : ",\"direction\":\"upstream_to_client\",\"opcode\":\""
        )
        buffer.writeStaticString(Self.name(frame.opcode))
        buffer.writeStaticString(frame.fin ? "\",\"fin\":true" : "\",\"fin\":false")
        buffer.writeStaticString(frame.rsv1 ? ",\"rsv1\":true,\"length\":" : ",\"rsv1\":false,\"length\":")
        Self.writeInteger(frame.length, to: &buffer)
        // The length of what is shown: the inflated bytes of a compressed frame shown inflated.
        let total = frame.inflatedLength ?? frame.length
        guard mode != .none else {
            buffer.writeStaticString(",\"payload\":null,\"payload_encoding\":null,\"compressed\":")
            buffer.writeStaticString(frame.compressed ? "true" : "false")
            buffer.writeStaticString(total > 0 ? ",\"truncated\":true}\n" : ",\"truncated\":false}\n")
            return
        }
        let raw = frame.compressed && frame.inflatedLength == nil
        let textual = !raw && (frame.messageOpcode == .text || frame.opcode == .text)
        let shownCount = frame.payload.withUnsafeBytes { bytes in
            var shown = min(bytes.count, max(0, mode == .full ? bytes.count : maxPayload))
            var text = false
            if textual {
                // A cut inside a UTF-8 sequence drops the sequence's first bytes (at most 3); as before,
                // up to four bytes are dropped from a payload that stays invalid.
                for _ in 0..<4 {
                    if UTF8Validator.isValid(UnsafeRawBufferPointer(rebasing: bytes[..<shown])) {
                        text = true
                        break
                    }
                    guard shown > 0, shown < total else { break }
                    shown -= 1
                }
            }
            let shownBytes = UnsafeRawBufferPointer(rebasing: bytes[..<shown])
            buffer.writeStaticString(",\"payload\":")
            if text {
                Self.writeQuoted(shownBytes, to: &buffer)
                buffer.writeStaticString(",\"payload_encoding\":\"text\",\"compressed\":")
            } else {
                buffer.writeInteger(UInt8(ascii: "\""))
                Self.writeBase64(shownBytes, to: &buffer)
                buffer.writeStaticString(
                    raw ? "\",\"payload_encoding\":\"deflate-base64\",\"compressed\":" : "\",\"payload_encoding\":\"base64\",\"compressed\":"
                )
            }
            return shown
        }
        buffer.writeStaticString(frame.compressed ? "true" : "false")
        buffer.writeStaticString(shownCount < total ? ",\"truncated\":true}\n" : ",\"truncated\":false}\n")
    }

    static func name(_ opcode: Opcode) -> StaticString {
        switch opcode {
        case .continuation: "continuation"
        case .text: "text"
        case .binary: "binary"
        case .close: "close"
        case .ping: "ping"
        case .pong: "pong"
        default: "reserved"
        }
    }

    // MARK: Values

    /// Decimal digits, no allocation.
    static func writeInteger(_ value: some BinaryInteger, to buffer: inout ByteBuffer) {
        if value < 0 { buffer.writeInteger(UInt8(ascii: "-")) }
        var rest = UInt64(value.magnitude)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 20) { out in
            var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch, filled from the end
            return withUnsafeMutableBytes(of: &digits) { scratch in
                var start = scratch.count
                repeat {
                    start -= 1
                    scratch[start] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10)
                    rest /= 10
                } while rest > 0
                let count = scratch.count - start
                out.baseAddress!.copyMemory(from: scratch.baseAddress! + start, byteCount: count)
                return count
            }
        }
    }

    /// Seconds since 1970 as Swift prints the `Double` (what the first encoder wrote with `"\(time)"`):
    /// for a time in whole milliseconds, as every tap time is (``TapEvent/now``), that is the seconds,
    /// a point and the milliseconds without trailing zeros (`.0` for none): the shortest decimal that
    /// reads back as the same `Double`, since doubles around 10⁹ are far closer together than 1 ms.
    static func writeTime(_ time: Double, to buffer: inout ByteBuffer) {
        let milliseconds = (time * 1000).rounded()
        guard time >= 0, time < 1e12, milliseconds / 1000 == time else {
            buffer.writeString("\(time)")  // not whole milliseconds: as the standard library prints it
            return
        }
        let whole = UInt64(milliseconds)
        Self.writeInteger(whole / 1000, to: &buffer)
        var fraction = whole % 1000
        buffer.writeInteger(UInt8(ascii: "."))
        guard fraction > 0 else {
            buffer.writeInteger(UInt8(ascii: "0"))
            return
        }
        var digits = 3
        while fraction % 10 == 0 {
            fraction /= 10
            digits -= 1
        }
        // Leading zeros up to `digits` places: 5 ms is `.005`, 50 ms `.05`.
        if digits == 3 && fraction < 100 { buffer.writeInteger(UInt8(ascii: "0")) }
        if digits >= 2 && fraction < 10 { buffer.writeInteger(UInt8(ascii: "0")) }
        Self.writeInteger(fraction, to: &buffer)
    }

    /// A JSON string of `text`'s UTF-8.
    static func writeQuoted(_ text: String, to buffer: inout ByteBuffer) {
        var text = text
        text.withUTF8 { Self.writeQuoted(UnsafeRawBufferPointer($0), to: &buffer) }
    }

    /// A JSON string of `bytes`, which are valid UTF-8: runs of bytes that need no escape are copied
    /// whole (8 bytes are checked at a time), the rest escaped one by one.
    static func writeQuoted(_ bytes: UnsafeRawBufferPointer, to buffer: inout ByteBuffer) {
        buffer.reserveCapacity(minimumWritableBytes: bytes.count + 2)
        buffer.writeInteger(UInt8(ascii: "\""))
        guard let base = bytes.baseAddress else {
            buffer.writeInteger(UInt8(ascii: "\""))
            return
        }
        let count = bytes.count
        var runStart = 0
        var index = 0
        while index < count {
            // Fast path: 8 bytes with no control character, quote or backslash.
            if index + 8 <= count, !Self.needsEscape(base.loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
                index += 8
                continue
            }
            let byte = bytes[index]
            guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else {
                index += 1
                continue
            }
            if index > runStart { buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart..<index])) }
            switch byte {
            case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
            case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
            case UInt8(ascii: "\n"): buffer.writeStaticString("\\n")
            case UInt8(ascii: "\r"): buffer.writeStaticString("\\r")
            case UInt8(ascii: "\t"): buffer.writeStaticString("\\t")
            default:
                let hex: StaticString = "0123456789abcdef"
                buffer.writeStaticString("\\u00")
                buffer.writeInteger(hex.utf8Start[Int(byte >> 4)])
                buffer.writeInteger(hex.utf8Start[Int(byte & 0xF)])
            }
            index += 1
            runStart = index
        }
        if count > runStart { buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart..<count])) }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    /// Whether any of the 8 bytes is below 0x20, `"` or `\` (exact: the zero-byte tests of
    /// "Bit Twiddling Hacks", which may misplace a hit but never miss or invent one).
    @inline(__always)
    static func needsEscape(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let below = (word &- ones &* 0x20) & ~word & highs
        let quote = word ^ (ones &* UInt64(UInt8(ascii: "\"")))
        let backslash = word ^ (ones &* UInt64(UInt8(ascii: "\\")))
        let zeroQuote = (quote &- ones) & ~quote & highs
        let zeroBackslash = (backslash &- ones) & ~backslash & highs
        return below | zeroQuote | zeroBackslash != 0
    }

    /// RFC 4648 §4 base64 with padding, written in place (Frames' ``Base64``).
    static func writeBase64(_ bytes: UnsafeRawBufferPointer, to buffer: inout ByteBuffer) {
        let length = Base64.encodedCount(bytes.count)
        guard length > 0 else { return }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { out in
            Base64.encode(bytes, into: out)
            return length
        }
    }
}
