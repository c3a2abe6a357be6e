/// A 4-byte WebSocket masking key (RFC 6455 §5.3), stored in wire order.
public struct MaskingKey: Hashable, Sendable, CustomStringConvertible {
    /// The four key bytes in wire order, packed into a `UInt32` in memory order (so that storing it to
    /// memory reproduces the wire bytes on any endianness).
    public var packed: UInt32

    @inlinable
    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8) {
        var value: UInt32 = 0
        withUnsafeMutableBytes(of: &value) {
            $0[0] = b0
            $0[1] = b1
            $0[2] = b2
            $0[3] = b3
        }
        self.packed = value
    }

    @inlinable
    public init(packed: UInt32) { self.packed = packed }

    /// The key byte applied to payload offset `index` (`index % 4`).
    @inlinable
    public subscript(index: Int) -> UInt8 {
        withUnsafeBytes(of: self.packed) { $0[index & 3] }
    }

    /// The key rotated so that its first byte is the one for payload offset `offset`.
    @inlinable
    public func rotated(by offset: Int) -> MaskingKey {
        // A rotation of the packed word (byte 0 is the first in memory), not four byte loads and stores:
        // this runs once per payload chunk.
        let shift = UInt32(truncatingIfNeeded: (offset & 3) * 8)
        guard shift != 0 else { return self }
        #if _endian(little)
        return MaskingKey(packed: (self.packed >> shift) | (self.packed << (32 - shift)))
        #else
        return MaskingKey(packed: (self.packed << shift) | (self.packed >> (32 - shift)))
        #endif
    }

    /// XOR of two keys: masking with `a ^ b` equals unmasking with `a` and masking with `b` (used to
    /// remask a binary payload in one pass).
    @inlinable
    public static func ^ (lhs: MaskingKey, rhs: MaskingKey) -> MaskingKey {
        MaskingKey(packed: lhs.packed ^ rhs.packed)
    }

    public var description: String {
        (0..<4).map { i in
            let hex = String(self[i], radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
    }
}
