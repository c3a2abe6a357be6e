/// The `Sec-WebSocket-Key` / `Sec-WebSocket-Accept` computation of the opening handshake
/// (RFC 6455 §4.1, §4.2.2), with the SHA-1 (RFC 3174) and base64 (RFC 4648 §4) it needs, so that
/// `Frames` stays free of crypto and Foundation dependencies. SHA-1 here is not used for security: the
/// accept value only proves the server understood the WebSocket handshake.
public enum HandshakeKey {
    /// The GUID appended to the key (RFC 6455 §1.3).
    static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`: base64(SHA-1(key + GUID)). Computed in
    /// one stack buffer (issue #15: no intermediate arrays or strings; one allocation, the result's).
    public static func acceptValue(forKey key: String) -> String {
        let keyLength = key.utf8.count
        let length = keyLength + guid.utf8.count
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: paddedLength(length)) { buffer in
            var index = 0
            for byte in key.utf8 {
                buffer[index] = byte
                index += 1
            }
            for byte in guid.utf8 {
                buffer[index] = byte
                index += 1
            }
            let digest = sha1Padding(buffer, messageLength: length)
            return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { bytes in
                digestBytes(digest, into: bytes)
                return base64Encode(UnsafeBufferPointer(bytes))
            }
        }
    }

    /// Whether `value` is a valid `Sec-WebSocket-Key`: the base64 encoding of exactly 16 bytes
    /// (RFC 6455 §4.1 item 7, §4.2.1 item 5), that is 22 base64 characters and "==".
    public static func isValidKey<S: StringProtocol>(_ value: S) -> Bool {
        guard let decoded = base64Decode(value) else { return false }
        return decoded.count == 16
    }

    /// A fresh `Sec-WebSocket-Key` from 16 random bytes (RFC 6455 §4.1: "randomly selected").
    public static func makeKey<G: RandomNumberGenerator>(using generator: inout G) -> String {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16) { bytes in
            for word in 0..<2 {
                let value = generator.next()
                for byte in 0..<8 { bytes[word * 8 + byte] = UInt8(truncatingIfNeeded: value >> UInt64(byte * 8)) }
            }
            return base64Encode(UnsafeBufferPointer(bytes))
        }
    }

    /// A fresh `Sec-WebSocket-Key` from the system CSPRNG.
    public static func makeKey() -> String {
        var generator = SystemRandomNumberGenerator()
        return makeKey(using: &generator)
    }

    // MARK: base64 (RFC 4648 §4, with padding)

    static func base64Encode(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBufferPointer { base64Encode($0) }
    }

    /// Writes the encoding straight into the string's storage (``Base64``).
    static func base64Encode(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        let count = Base64.encodedCount(bytes.count)
        return String(unsafeUninitializedCapacity: count) { out in
            Base64.encode(UnsafeRawBufferPointer(bytes), into: UnsafeMutableRawBufferPointer(out))
            return count
        }
    }

    /// Strict decoding: canonical padding, no whitespace, zero unused bits; nil if invalid.
    static func base64Decode<S: StringProtocol>(_ text: S) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 4 * 3)
        var index = 0
        while index < chars.count {
            var value: UInt32 = 0
            var padding = 0
            for offset in 0..<4 {
                let char = chars[index + offset]
                let sextet: UInt32
                switch char {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): sextet = UInt32(char - UInt8(ascii: "A"))
                case UInt8(ascii: "a")...UInt8(ascii: "z"): sextet = UInt32(char - UInt8(ascii: "a") + 26)
                case UInt8(ascii: "0")...UInt8(ascii: "9"): sextet = UInt32(char - UInt8(ascii: "0") + 52)
                case UInt8(ascii: "+"): sextet = 62
                case UInt8(ascii: "/"): sextet = 63
                case UInt8(ascii: "=") where index + 4 == chars.count && offset >= 2:
                    padding += 1
                    sextet = 0
                default: return nil
                }
                // Padding may only be followed by padding.
                if padding > 0 && char != UInt8(ascii: "=") { return nil }
                value = value << 6 | sextet
            }
            let decoded = [UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
            // Non-zero bits under the padding are not canonical.
            if padding == 2 && decoded[1] != 0 || padding >= 1 && decoded[2] != 0 { return nil }
            out += decoded.prefix(3 - padding)
            index += 4
        }
        return out
    }

    // MARK: SHA-1 (RFC 3174)

    static func sha1(_ message: [UInt8]) -> [UInt8] {
        let digest = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: paddedLength(message.count)) { buffer in
            _ = UnsafeMutableBufferPointer(rebasing: buffer[..<message.count]).initialize(from: message)
            return sha1Padding(buffer, messageLength: message.count)
        }
        return [UInt8](unsafeUninitializedCapacity: 20) { bytes, count in
            digestBytes(digest, into: bytes)
            count = 20
        }
    }

    /// The length of a message of `length` bytes with SHA-1's padding: a 0x80, zeros, and the 64-bit
    /// bit length, to a multiple of 64 bytes.
    static func paddedLength(_ length: Int) -> Int {
        (length + 8) / 64 * 64 + 64
    }

    /// SHA-1 of the first `messageLength` bytes of `buffer` (``paddedLength(_:)`` bytes long), which is
    /// padded in place.
    static func sha1Padding(
        _ buffer: UnsafeMutableBufferPointer<UInt8>,
        messageLength: Int
    ) -> (UInt32, UInt32, UInt32, UInt32, UInt32) {
        var h: (UInt32, UInt32, UInt32, UInt32, UInt32) = (0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0)
        let total = paddedLength(messageLength)
        let bitLength = UInt64(messageLength) * 8
        buffer[messageLength] = 0x80
        for index in (messageLength + 1)..<(total - 8) { buffer[index] = 0 }
        for byte in 0..<8 { buffer[total - 8 + byte] = UInt8(truncatingIfNeeded: bitLength >> UInt64(56 - byte * 8)) }
        return withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 80) { w in
            for chunk in stride(from: 0, to: total, by: 64) {
                for i in 0..<16 {
                    let b = chunk + i * 4
                    w[i] = UInt32(buffer[b]) << 24 | UInt32(buffer[b + 1]) << 16 | UInt32(buffer[b + 2]) << 8 | UInt32(buffer[b + 3])
                }
                for i in 16..<80 {
                    let x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]
                    w[i] = x << 1 | x >> 31
                }
                var (a, b, c, d, e) = h
                for i in 0..<80 {
                    let (f, k): (UInt32, UInt32)
                    switch i {
                    case 0..<20: (f, k) = ((b & c) | (~b & d), 0x5A82_7999)
                    case 20..<40: (f, k) = (b ^ c ^ d, 0x6ED9_EBA1)
                    case 40..<60: (f, k) = ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC)
                    default: (f, k) = (b ^ c ^ d, 0xCA62_C1D6)
                    }
                    let temp = (a << 5 | a >> 27) &+ f &+ e &+ k &+ w[i]
                    e = d
                    d = c
                    c = b << 30 | b >> 2
                    b = a
                    a = temp
                }
                h = (h.0 &+ a, h.1 &+ b, h.2 &+ c, h.3 &+ d, h.4 &+ e)
            }
            return h
        }
    }

    /// The digest's 20 bytes, big-endian words.
    static func digestBytes(_ h: (UInt32, UInt32, UInt32, UInt32, UInt32), into bytes: UnsafeMutableBufferPointer<UInt8>) {
        func write(_ word: UInt32, at index: Int) {
            for byte in 0..<4 { bytes[index * 4 + byte] = UInt8(truncatingIfNeeded: word >> UInt32(24 - byte * 8)) }
        }
        write(h.0, at: 0)
        write(h.1, at: 1)
        write(h.2, at: 2)
        write(h.3, at: 3)
        write(h.4, at: 4)
    }
}
