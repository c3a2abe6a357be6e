import Testing

@testable import Frames

@Suite struct Base64Tests {
    /// RFC 4648 §10's test vectors, written into a larger buffer: the encoder writes exactly
    /// `encodedCount` bytes and nothing past them.
    @Test(arguments: [
        ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ])
    func rfc4648Vectors(input: String, expected: String) {
        let bytes = Array(input.utf8)
        #expect(Base64.encodedCount(bytes.count) == expected.utf8.count)
        var out = [UInt8](repeating: 0xEE, count: expected.utf8.count + 4)
        bytes.withUnsafeBytes { source in
            out.withUnsafeMutableBytes { Base64.encode(source, into: $0) }
        }
        #expect(Array(out.prefix(expected.utf8.count)) == Array(expected.utf8))
        #expect(out.suffix(4).allSatisfy { $0 == 0xEE })
    }

    /// Every byte value lands on its alphabet letter, the 62nd and 63rd included.
    @Test func highBitsUseTheWholeAlphabet() {
        #expect(HandshakeKey.base64Encode([0xFB, 0xFF, 0xBF]) == "+/+/")
        #expect(HandshakeKey.base64Encode([0x00, 0x10, 0x83]) == "ABCD")
    }
}
