/// RFC 4648 §4 base64 with padding, into caller memory: the one encoder behind `Sec-WebSocket-Key` and
/// `Sec-WebSocket-Accept` (``HandshakeKey``) and the frame tap's binary payloads (the gateway's
/// `TapEventEncoder`), so neither builds an intermediate array or string.
public enum Base64 {
    /// The length of the encoding of `count` bytes: 4 per 3 bytes or part of them.
    public static func encodedCount(_ count: Int) -> Int {
        (count + 2) / 3 * 4
    }

    /// Writes `bytes`' encoding at the start of `out` (at least ``encodedCount(_:)`` bytes long).
    public static func encode(_ bytes: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count >= encodedCount(bytes.count))
        let table = ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" as StaticString).utf8Start
        var input = 0
        var output = 0
        while input + 3 <= bytes.count {
            let triple = UInt32(bytes[input]) << 16 | UInt32(bytes[input + 1]) << 8 | UInt32(bytes[input + 2])
            out[output] = table[Int(triple >> 18)]
            out[output + 1] = table[Int(triple >> 12 & 0x3F)]
            out[output + 2] = table[Int(triple >> 6 & 0x3F)]
            out[output + 3] = table[Int(triple & 0x3F)]
            input += 3
            output += 4
        }
        let rest = bytes.count - input
        if rest > 0 {
            let triple = UInt32(bytes[input]) << 16 | (rest == 2 ? UInt32(bytes[input + 1]) << 8 : 0)
            out[output] = table[Int(triple >> 18)]
            out[output + 1] = table[Int(triple >> 12 & 0x3F)]
            out[output + 2] = rest == 2 ? table[Int(triple >> 6 & 0x3F)] : UInt8(ascii: "=")
            out[output + 3] = UInt8(ascii: "=")
        }
    }
}
