/// The ChaCha20 block function of RFC 8439 §2.3, for the gateway's masking keys (``MaskingKeyStream``).
///
/// Not an encryption API: there is no stream cipher state here, only the function that turns a 256-bit
/// key, a 32-bit block counter and a 96-bit nonce into 64 bytes of keystream. Checked against the test
/// vectors of RFC 8439 §2.3.2 and §2.4.2 (`ChaCha20Tests`).
///
/// Scalar, one block at a time: a four-blocks-per-vector version over `SIMD4<UInt32>` measured twice as
/// slow here, because the standard library's SIMD shifts (the rotations) are not lowered to vector
/// instructions on x86-64's baseline and become four scalar rotations with moves between registers.
public enum ChaCha20 {
    /// A 256-bit key as the eight little-endian words of RFC 8439 §2.3 (words 4–11 of the state).
    public struct Key: Sendable, Hashable {
        public var words: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32)

        public init(words: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32)) { self.words = words }

        /// The key from its 32 bytes in order (each word little-endian, as RFC 8439 §2.3 reads them).
        public init(bytes: UnsafeRawBufferPointer) {
            precondition(bytes.count >= 32, "a ChaCha20 key is 32 bytes")
            func word(_ i: Int) -> UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) }
            self.words = (word(0), word(1), word(2), word(3), word(4), word(5), word(6), word(7))
        }

        public static func == (lhs: Key, rhs: Key) -> Bool {
            withUnsafeBytes(of: lhs.words) { l in withUnsafeBytes(of: rhs.words) { r in l.elementsEqual(r) } }
        }

        public func hash(into hasher: inout Hasher) {
            withUnsafeBytes(of: self.words) { hasher.combine(bytes: $0) }
        }
    }

    @inline(__always)
    static func quarterRound(_ a: inout UInt32, _ b: inout UInt32, _ c: inout UInt32, _ d: inout UInt32) {
        a &+= b
        d = (d ^ a).rotatedLeft(16)
        c &+= d
        b = (b ^ c).rotatedLeft(12)
        a &+= b
        d = (d ^ a).rotatedLeft(8)
        c &+= d
        b = (b ^ c).rotatedLeft(7)
    }

    /// One 64-byte block (RFC 8439 §2.3): the state after 20 rounds plus the state before them, each
    /// word stored little-endian into `output[0..<64]`.
    public static func block(key: Key, counter: UInt32, nonce: (UInt32, UInt32, UInt32), into output: UnsafeMutableRawBufferPointer) {
        precondition(output.count >= 64, "a ChaCha20 block is 64 bytes")
        let k = key.words
        // "expand 32-byte k", the key, the counter, the nonce (RFC 8439 §2.3). One tuple of locals, not
        // an array: the words stay in registers.
        let initial = (
            UInt32(0x6170_7865), UInt32(0x3320_646e), UInt32(0x7962_2d32), UInt32(0x6b20_6574),
            k.0, k.1, k.2, k.3, k.4, k.5, k.6, k.7,
            counter, nonce.0, nonce.1, nonce.2
        )
        var x = initial
        for _ in 0..<10 {
            quarterRound(&x.0, &x.4, &x.8, &x.12)
            quarterRound(&x.1, &x.5, &x.9, &x.13)
            quarterRound(&x.2, &x.6, &x.10, &x.14)
            quarterRound(&x.3, &x.7, &x.11, &x.15)
            quarterRound(&x.0, &x.5, &x.10, &x.15)
            quarterRound(&x.1, &x.6, &x.11, &x.12)
            quarterRound(&x.2, &x.7, &x.8, &x.13)
            quarterRound(&x.3, &x.4, &x.9, &x.14)
        }
        withUnsafeBytes(of: initial) { initial in
            withUnsafeBytes(of: x) { mixed in
                for offset in stride(from: 0, to: 64, by: 4) {
                    let word = mixed.load(fromByteOffset: offset, as: UInt32.self) &+ initial.load(fromByteOffset: offset, as: UInt32.self)
                    output.storeBytes(of: word.littleEndian, toByteOffset: offset, as: UInt32.self)
                }
            }
        }
    }
}

extension UInt32 {
    @inline(__always) @usableFromInline
    func rotatedLeft(_ n: UInt32) -> UInt32 { (self &<< n) | (self &>> (32 &- n)) }
}
