import NIOCore
import Testing

@testable import Frames

/// The ChaCha20 block function behind the relay's masking keys (`MaskingKeyStream`), against RFC 8439.
@Suite struct ChaCha20Tests {
    /// The bytes of an RFC's hex listing (TestSupport's `ByteBuffer(hex:)`, which skips spaces and newlines).
    static func bytes(_ hex: String) -> [UInt8] {
        Array(ByteBuffer(hex: hex).readableBytesView)
    }

    static func key(_ bytes: [UInt8]) -> ChaCha20.Key {
        bytes.withUnsafeBytes { ChaCha20.Key(bytes: $0) }
    }

    /// The 96-bit nonce from its 12 bytes, as three little-endian words (RFC 8439 §2.3).
    static func nonce(_ bytes: [UInt8]) -> (UInt32, UInt32, UInt32) {
        bytes.withUnsafeBytes {
            (
                UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 0, as: UInt32.self)),
                UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 4, as: UInt32.self)),
                UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
            )
        }
    }

    static func block(_ key: ChaCha20.Key, counter: UInt32, nonce: (UInt32, UInt32, UInt32) = (0, 0, 0)) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 64)
        output.withUnsafeMutableBytes { ChaCha20.block(key: key, counter: counter, nonce: nonce, into: $0) }
        return output
    }

    /// RFC 8439 §2.3.2: the serialized block for key 00…1f, nonce 00:00:00:09:00:00:00:4a:00:00:00:00,
    /// block counter 1.
    @Test func blockFunctionTestVector() {
        let output = Self.block(
            Self.key((0..<32).map { UInt8($0) }),
            counter: 1,
            nonce: Self.nonce(Self.bytes("000000090000004a00000000"))
        )
        let expected = Self.bytes(
            "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
                + "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e"
        )
        #expect(output == expected)
    }

    /// RFC 8439 §2.4.2: the sunscreen plaintext (114 bytes) XORed with the keystream from counter 1
    /// (key 00…1f, nonce 00:00:00:00:00:00:00:4a:00:00:00:00) gives the RFC's ciphertext.
    @Test func encryptionTestVector() {
        let key = Self.key((0..<32).map { UInt8($0) })
        let nonce = Self.nonce(Self.bytes("000000000000004a00000000"))
        let plaintext = Array(
            "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it."
                .utf8
        )
        var keystream: [UInt8] = []
        for counter in UInt32(1)...2 { keystream += Self.block(key, counter: counter, nonce: nonce) }
        let ciphertext = zip(plaintext, keystream).map { $0 ^ $1 }
        let expected = Self.bytes(
            "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b"
                + "f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8"
                + "07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736"
                + "5af90bbf74a35be6b40b8eedf2785e42874d"
        )
        #expect(plaintext.count == 114)
        #expect(ciphertext == expected)
    }

    /// RFC 8439 A.1, test vector #1: the all-zero key, nonce and counter (the first block a stream
    /// seeded with zeros derives its next key from).
    @Test func allZeroTestVector() {
        let expected = Self.bytes(
            "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
                + "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"
        )
        #expect(Self.block(Self.key([UInt8](repeating: 0, count: 32)), counter: 0) == expected)
    }

    /// The key reads its bytes little-endian per word and compares by value.
    @Test func keyFromBytesIsLittleEndianWords() {
        let key = Self.key((0..<32).map { UInt8($0) })
        #expect(key.words.0 == 0x0302_0100)
        #expect(key.words.7 == 0x1f1e_1d1c)
        #expect(key == Self.key((0..<32).map { UInt8($0) }))
        #expect(key != Self.key([UInt8](repeating: 0, count: 32)))
    }
}
