import NIOCore

/// The header of one WebSocket frame (RFC 6455 §5.2).
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-------+-+-------------+-------------------------------+
/// |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
/// |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
/// |N|V|V|V|       |S|             |   (if payload len==126/127)   |
/// | |1|2|3|       |K|             |                               |
/// +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
/// |     Extended payload length continued, if payload len == 127  |
/// + - - - - - - - - - - - - - - - +-------------------------------+
/// |                               |Masking-key, if MASK set to 1  |
/// +-------------------------------+-------------------------------+
/// ```
public struct FrameHeader: Hashable, Sendable, CustomStringConvertible {
    /// FIN: this is the final fragment of a message.
    public var fin: Bool
    /// RSV1–RSV3 as the low three bits of a value: RSV1 = 0b100, RSV2 = 0b010, RSV3 = 0b001.
    public var reservedBits: ReservedBits
    public var opcode: Opcode
    /// The masking key, present exactly when the MASK bit is set.
    public var maskingKey: MaskingKey?
    /// The payload length. The parser only produces lengths up to 2^63 − 1 (RFC 6455 §5.2).
    public var payloadLength: Int

    @inlinable
    public init(
        fin: Bool = true,
        reservedBits: ReservedBits = [],
        opcode: Opcode,
        maskingKey: MaskingKey? = nil,
        payloadLength: Int
    ) {
        precondition(payloadLength >= 0, "payload length is never negative")
        self.fin = fin
        self.reservedBits = reservedBits
        self.opcode = opcode
        self.maskingKey = maskingKey
        self.payloadLength = payloadLength
    }

    /// The number of bytes this header takes on the wire: 2, plus 2 or 8 for an extended length,
    /// plus 4 for a masking key. The length is always encoded minimally.
    @inlinable
    public var encodedSize: Int {
        let lengthBytes = self.payloadLength <= 125 ? 0 : (self.payloadLength <= 0xFFFF ? 2 : 8)
        return 2 + lengthBytes + (self.maskingKey == nil ? 0 : 4)
    }

    /// Writes the header with the minimal length encoding (RFC 6455 §5.2) and returns the bytes written.
    @inlinable
    @discardableResult
    public func write(to buffer: inout ByteBuffer) -> Int {
        // One write of raw stores, not one `writeInteger` per field: each of those checks capacity and
        // uniqueness and (in NIO's build) takes a dynamic exclusivity access, which was about a sixth of
        // the relay's time per small frame toward the upstream (issue #15, BENCHMARKS.md).
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: self.encodedSize) { self.write(to: $0) }
    }

    /// Writes the header at the start of `raw` (which must hold ``encodedSize`` bytes) with the minimal
    /// length encoding, and returns the bytes written: for a caller that writes many frames into one
    /// buffer in one access (``FrameParser``'s batches).
    @inlinable
    @discardableResult
    public func write(to raw: UnsafeMutableRawBufferPointer) -> Int {
        precondition(raw.count >= self.encodedSize, "no room for the header")
        var first = self.opcode.rawValue | (self.reservedBits.rawValue << 4)
        if self.fin { first |= 0x80 }
        let maskBit: UInt8 = self.maskingKey == nil ? 0 : 0x80
        let length = self.payloadLength
        raw[0] = first
        var end: Int
        if length <= 125 {
            raw[1] = maskBit | UInt8(length)
            end = 2
        } else if length <= 0xFFFF {
            raw[1] = maskBit | 126
            raw.storeBytes(of: UInt16(length).bigEndian, toByteOffset: 2, as: UInt16.self)
            end = 4
        } else {
            raw[1] = maskBit | 127
            raw.storeBytes(of: UInt64(length).bigEndian, toByteOffset: 2, as: UInt64.self)
            end = 10
        }
        if let key = self.maskingKey {
            raw.storeBytes(of: key.packed, toByteOffset: end, as: UInt32.self)  // `packed` keeps wire order in memory
            end += 4
        }
        return end
    }

    public var description: String {
        var parts = ["\(self.opcode)", self.fin ? "fin" : "more", "len=\(self.payloadLength)"]
        if !self.reservedBits.isEmpty { parts.append("rsv=\(self.reservedBits.rawValue)") }
        if let key = self.maskingKey { parts.append("mask=\(key)") }
        return "FrameHeader(" + parts.joined(separator: " ") + ")"
    }
}

/// The RSV1–RSV3 bits of a frame header (RFC 6455 §5.2), as an option set over their 3-bit value.
public struct ReservedBits: OptionSet, Hashable, Sendable {
    public var rawValue: UInt8

    @inlinable
    public init(rawValue: UInt8) { self.rawValue = rawValue & 0b111 }

    /// RSV1: "per-message compressed" under permessage-deflate (RFC 7692 §6).
    public static let rsv1 = ReservedBits(rawValue: 0b100)
    public static let rsv2 = ReservedBits(rawValue: 0b010)
    public static let rsv3 = ReservedBits(rawValue: 0b001)
}
