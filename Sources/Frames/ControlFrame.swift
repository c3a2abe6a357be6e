import NIOCore

/// A complete, validated control frame: Close, Ping or Pong (RFC 6455 §5.5). Control payloads are at
/// most 125 bytes, so the parser assembles them whole.
public struct ControlFrame: Hashable, Sendable {
    public var opcode: Opcode
    /// The unmasked payload.
    public var payload: ByteBuffer

    public init(opcode: Opcode, payload: ByteBuffer) {
        self.opcode = opcode
        self.payload = payload
    }

    /// For a Close frame with a body: its status code. `nil` for an empty Close and for other opcodes.
    public var closeCode: CloseCode? {
        guard self.opcode == .close, let raw = self.payload.getInteger(at: self.payload.readerIndex, as: UInt16.self)
        else { return nil }
        return CloseCode(raw)
    }

    /// For a Close frame: its reason (valid UTF-8 once the parser has accepted the frame), else "".
    public var closeReason: String {
        guard self.opcode == .close, self.payload.readableBytes > 2 else { return "" }
        return self.payload.getString(at: self.payload.readerIndex + 2, length: self.payload.readableBytes - 2) ?? ""
    }

    /// RFC 6455 §5.5.1 and §7.4: a Close body is empty, or a valid status code followed by at most
    /// 123 bytes of UTF-8.
    static func validateClosePayload(_ payload: UnsafeRawBufferPointer) throws(FramesError) {
        guard payload.count > 0 else { return }
        guard payload.count >= 2 else { throw FramesError.closePayloadTooShort }
        let code = CloseCode(UInt16(payload[0]) << 8 | UInt16(payload[1]))
        guard code.isValidOnWire else {
            throw FramesError(.invalidCloseCode, detail: "code \(code.rawValue)")
        }
        guard UTF8Validator.isValid(UnsafeRawBufferPointer(rebasing: payload[2...])) else {
            throw FramesError(.invalidUTF8, detail: "close reason")
        }
    }
}
