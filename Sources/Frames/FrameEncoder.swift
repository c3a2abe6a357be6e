import NIOCore

/// Writes frames for either role (RFC 6455 §5.2–§5.3) with the minimal length encoding.
///
/// In the client role every frame gets a fresh masking key from a ``MaskingKeyGenerator`` (RFC 6455
/// §5.3, §10.3) and its payload is masked; in the server role frames are never masked.
public struct FrameEncoder {
    public enum Role: Hashable, Sendable {
        /// Writes frames a server sends: unmasked.
        case server
        /// Writes frames a client sends: masked with a fresh key each.
        case client
    }

    public let role: Role
    @usableFromInline let keys: MaskingKeyGenerator?

    /// An encoder for `role`. A client-role encoder draws keys from `keys` (a new generator over the
    /// system CSPRNG when nil); a server-role encoder needs none and makes none.
    public init(role: Role, keys: MaskingKeyGenerator? = nil) {
        self.role = role
        self.keys = role == .client ? (keys ?? MaskingKeyGenerator()) : nil
    }

    /// The header for a frame with this payload length, with a fresh key in the client role. Write it with
    /// ``FrameHeader/write(to:)`` and mask the payload with its ``FrameHeader/maskingKey``.
    @inlinable
    public mutating func makeHeader(
        opcode: Opcode,
        fin: Bool = true,
        reservedBits: ReservedBits = [],
        payloadLength: Int
    ) -> FrameHeader {
        let key = self.keys?.nextKey()
        return FrameHeader(fin: fin, reservedBits: reservedBits, opcode: opcode, maskingKey: key, payloadLength: payloadLength)
    }

    /// Appends a whole frame (header and payload, masked in the client role) to `buffer`.
    public mutating func writeFrame(
        opcode: Opcode,
        fin: Bool = true,
        reservedBits: ReservedBits = [],
        payload: ByteBuffer,
        to buffer: inout ByteBuffer
    ) {
        let header = self.makeHeader(opcode: opcode, fin: fin, reservedBits: reservedBits, payloadLength: payload.readableBytes)
        header.write(to: &buffer)
        let start = buffer.writerIndex
        var payload = payload
        buffer.writeBuffer(&payload)
        if let key = header.maskingKey {
            let offset = start - buffer.readerIndex
            buffer.withUnsafeMutableReadableBytes { raw in
                key.apply(to: UnsafeMutableRawBufferPointer(rebasing: raw[offset...]))
            }
        }
    }

    /// Appends a Close frame (RFC 6455 §5.5.1). `code` must be valid on the wire (never 1005, 1006 or
    /// 1015, RFC 6455 §7.4.1); `reason` is cut to the 123 bytes a control frame leaves for it, at a
    /// scalar boundary, so the frame is always valid.
    public mutating func writeClose(code: CloseCode?, reason: String = "", to buffer: inout ByteBuffer) {
        var payload = ByteBuffer()
        if let code {
            precondition(code.isValidOnWire, "close code \(code) may not be sent (RFC 6455 §7.4.1)")
            payload.reserveCapacity(2 + min(reason.utf8.count, 123))
            payload.writeInteger(code.rawValue)
            payload.writeSubstring(Self.truncate(reason, toUTF8Bytes: 123))
        }
        self.writeFrame(opcode: .close, payload: payload, to: &buffer)
    }

    /// The longest prefix of `text` whose UTF-8 fits in `limit` bytes.
    static func truncate(_ text: String, toUTF8Bytes limit: Int) -> Substring {
        var end = text.startIndex
        var used = 0
        for index in text.unicodeScalars.indices {
            let length = text.unicodeScalars[index].utf8.count
            if used + length > limit { break }
            used += length
            end = text.unicodeScalars.index(after: index)
        }
        return text[..<end]
    }
}
