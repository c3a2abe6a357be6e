import TestPeers
import Testing

@testable import Frames

@Suite struct HandshakeKeyTests {
    @Test func acceptValueOfTheRFCExample() {
        // RFC 6455 §1.3: "dGhlIHNhbXBsZSBub25jZQ==" → "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
        #expect(HandshakeKey.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test func sha1OfKnownVectors() {
        func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: $0) }.joined() }
        func String(format byte: UInt8) -> Swift.String { byte < 16 ? "0" + Swift.String(byte, radix: 16) : Swift.String(byte, radix: 16) }
        // RFC 3174 §7.3 test vectors (TEST1, TEST2) and the empty message.
        #expect(hex(HandshakeKey.sha1(Array("abc".utf8))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(
            hex(HandshakeKey.sha1(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
                == "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        )
        #expect(hex(HandshakeKey.sha1([])) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(hex(HandshakeKey.sha1(Array(repeating: UInt8(ascii: "a"), count: 1_000_000))) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    /// The padding boundaries (a message of 55 bytes pads into one block, 56 into two; issue #15 pads in
    /// place): bytes `i % 251`, digests from Python's hashlib.
    @Test(arguments: [
        (55, "8ae2d46729cfe68ff927af5eec9c7d1b66d65ac2"), (56, "636e2ec698dac903498e648bd2f3af641d3c88cb"),
        (57, "7cb1330f35244b57437539253304ea78a6b7c443"), (63, "6d942da0c4392b123528f2905c713a3ce28364bd"),
        (64, "c6138d514ffa2135bfce0ed0b8fac65669917ec7"), (65, "69bd728ad6e13cd76ff19751fde427b00e395746"),
        (119, "41c89d06001bab4ab78736b44efe7ce18ce6ae08"), (120, "d3dbd653bd8597b7475321b60a36891278e6a04a"),
    ])
    func sha1AtThePaddingBoundaries(length: Int, digest: String) {
        let bytes = HandshakeKey.sha1((0..<length).map { UInt8($0 % 251) })
        #expect(bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() == digest)
    }

    @Test(arguments: ["dGhlIHNhbXBsZSBub25jZQ==", "AAAAAAAAAAAAAAAAAAAAAA==", "/////////////////////w=="])
    func validKeys(key: String) {
        #expect(HandshakeKey.isValidKey(key))
    }

    /// Catalog H-04: only the base64 of exactly 16 bytes is a valid Sec-WebSocket-Key.
    @Test(arguments: [
        "", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQ===", "dGhlIHNhbXBsZSBub25jZ===",
        "dGhlIHNhbXBsZSBub25jZQ==AAAA", "dGhlIHNhbXBsZSBub25jZR==", " dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25j",
        "dGhlIHNhbXBsZSBub25jZQ=A", "dGhl*HNhbXBsZSBub25jZQ==", "AAAAAAAAAAAAAAAAAAAAAAAA",
    ])
    func invalidKeys(key: String) {
        #expect(!HandshakeKey.isValidKey(key))
    }

    @Test func base64RoundTripsEveryLength() {
        var random = SplitMix64(seed: 5)
        for length in 0...70 {
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            let encoded = HandshakeKey.base64Encode(bytes)
            #expect(encoded.utf8.count == (length + 2) / 3 * 4)
            #expect(HandshakeKey.base64Decode(encoded) == bytes)
        }
        #expect(HandshakeKey.base64Encode(Array("foobar".utf8)) == "Zm9vYmFy")
        #expect(HandshakeKey.base64Encode(Array("fo".utf8)) == "Zm8=")
    }

    @Test func freshKeysAreValidAndDiffer() {
        let keys = (0..<100).map { _ in HandshakeKey.makeKey() }
        #expect(keys.allSatisfy { HandshakeKey.isValidKey($0) })
        #expect(Set(keys).count == 100)
    }
}
