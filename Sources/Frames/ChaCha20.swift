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
        a &+= b; d ^= a; d = d.rotatedLeft(16)
        c &+= d; b ^= c; b = b.rotatedLeft(12)
        a &+= b; d ^= a; d = d.rotatedLeft(8)
        c &+= d; b ^= c; b = b.rotatedLeft(7)
    }

    /// One 64-byte block (RFC 8439 §2.3): the state after 20 rounds plus the state before them, each
    /// word stored little-endian into `output[0..<64]`.
    public static func block(key: Key, counter: UInt32, nonce: (UInt32, UInt32, UInt32), into output: UnsafeMutableRawBufferPointer) {
        precondition(output.count >= 64, "a ChaCha20 block is 64 bytes")
        let k = key.words
        // "expand 32-byte k" (RFC 8439 §2.3).
        let s0: UInt32 = 0x6170_7865, s1: UInt32 = 0x3320_646e, s2: UInt32 = 0x7962_2d32, s3: UInt32 = 0x6b20_6574
        let s4 = k.0, s5 = k.1, s6 = k.2, s7 = k.3, s8 = k.4, s9 = k.5, s10 = k.6, s11 = k.7
        let s12 = counter, s13 = nonce.0, s14 = nonce.1, s15 = nonce.2
        var x0 = s0, x1 = s1, x2 = s2, x3 = s3, x4 = s4, x5 = s5, x6 = s6, x7 = s7
        var x8 = s8, x9 = s9, x10 = s10, x11 = s11, x12 = s12, x13 = s13, x14 = s14, x15 = s15
        for _ in 0..<10 {
            quarterRound(&x0, &x4, &x8, &x12)
            quarterRound(&x1, &x5, &x9, &x13)
            quarterRound(&x2, &x6, &x10, &x14)
            quarterRound(&x3, &x7, &x11, &x15)
            quarterRound(&x0, &x5, &x10, &x15)
            quarterRound(&x1, &x6, &x11, &x12)
            quarterRound(&x2, &x7, &x8, &x13)
            quarterRound(&x3, &x4, &x9, &x14)
        }
        @inline(__always) func store(_ word: UInt32, _ i: Int) {
            output.storeBytes(of: word.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
        }
        store(x0 &+ s0, 0); store(x1 &+ s1, 1); store(x2 &+ s2, 2); store(x3 &+ s3, 3)
        store(x4 &+ s4, 4); store(x5 &+ s5, 5); store(x6 &+ s6, 6); store(x7 &+ s7, 7)
        store(x8 &+ s8, 8); store(x9 &+ s9, 9); store(x10 &+ s10, 10); store(x11 &+ s11, 11)
        store(x12 &+ s12, 12); store(x13 &+ s13, 13); store(x14 &+ s14, 14); store(x15 &+ s15, 15)
    }
}

extension UInt32 {
    @inline(__always) @usableFromInline
    func rotatedLeft(_ n: UInt32) -> UInt32 { (self &<< n) | (self &>> (32 &- n)) }
}
