/// A WebSocket close status code (RFC 6455 §7.4), as a struct over its 16-bit value.
public struct CloseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16

    @inlinable
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    @inlinable
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    public static let normalClosure = CloseCode(1000)
    public static let goingAway = CloseCode(1001)
    public static let protocolError = CloseCode(1002)
    public static let unsupportedData = CloseCode(1003)
    /// 1005: "no status received". Reserved; MUST NOT be sent in a Close frame.
    public static let noStatusReceived = CloseCode(1005)
    /// 1006: "abnormal closure". Reserved; MUST NOT be sent in a Close frame.
    public static let abnormalClosure = CloseCode(1006)
    public static let invalidPayloadData = CloseCode(1007)
    public static let policyViolation = CloseCode(1008)
    public static let messageTooBig = CloseCode(1009)
    public static let mandatoryExtension = CloseCode(1010)
    public static let internalError = CloseCode(1011)
    public static let serviceRestart = CloseCode(1012)
    public static let tryAgainLater = CloseCode(1013)
    public static let badGateway = CloseCode(1014)
    /// 1015: "TLS handshake failure". Reserved; MUST NOT be sent in a Close frame (RFC 6455 §7.4.1).
    /// The gateway records it for connections lost to a failed TLS handshake.
    public static let tlsHandshakeFailure = CloseCode(1015)

    /// Whether the code may appear in a Close frame on the wire (RFC 6455 §7.4.1–§7.4.2 and the IANA
    /// "WebSocket Close Code Number Registry"): 1000–1003 and 1007–1014 are assigned for use,
    /// 3000–3999 are registered for libraries and frameworks, 4000–4999 are private use. 0–999 are
    /// unused, 1004 is reserved, 1005, 1006 and 1015 are never sent, 1016–2999 are unassigned and
    /// 5000 and above are undefined.
    @inlinable
    public var isValidOnWire: Bool {
        switch self.rawValue {
        case 1000...1003, 1007...1014, 3000...4999: true
        default: false
        }
    }

    public var description: String { String(self.rawValue) }
}
