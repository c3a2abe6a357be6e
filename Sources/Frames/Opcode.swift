/// A WebSocket frame opcode (RFC 6455 §5.2), as a struct over its 4-bit value.
///
/// Every 4-bit value can be represented, including the reserved ones, so that the parser can report
/// *which* reserved opcode a peer sent; ``isReserved`` tells them apart.
public struct Opcode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8

    /// - Precondition: `rawValue` fits in 4 bits (API misuse otherwise; peer input is masked first).
    @inlinable
    public init(rawValue: UInt8) {
        precondition(rawValue <= 0x0F, "opcode is a 4-bit value")
        self.rawValue = rawValue
    }

    @inlinable
    init(uncheckedRawValue: UInt8) { self.rawValue = uncheckedRawValue }

    public static let continuation = Opcode(uncheckedRawValue: 0x0)
    public static let text = Opcode(uncheckedRawValue: 0x1)
    public static let binary = Opcode(uncheckedRawValue: 0x2)
    public static let close = Opcode(uncheckedRawValue: 0x8)
    public static let ping = Opcode(uncheckedRawValue: 0x9)
    public static let pong = Opcode(uncheckedRawValue: 0xA)

    /// Control frames have the most significant opcode bit set (RFC 6455 §5.5).
    @inlinable
    public var isControl: Bool { self.rawValue & 0x08 != 0 }

    /// 0x3–0x7 (reserved data) and 0xB–0xF (reserved control) (RFC 6455 §5.2).
    @inlinable
    public var isReserved: Bool {
        switch self.rawValue {
        case 0x0, 0x1, 0x2, 0x8, 0x9, 0xA: false
        default: true
        }
    }

    public var description: String {
        switch self.rawValue {
        case 0x0: "continuation"
        case 0x1: "text"
        case 0x2: "binary"
        case 0x8: "close"
        case 0x9: "ping"
        case 0xA: "pong"
        default: "reserved(0x\(String(self.rawValue, radix: 16)))"
        }
    }
}
