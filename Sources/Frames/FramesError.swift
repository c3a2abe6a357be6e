/// The one error type of the `Frames` module.
///
/// Every ``Code`` names the rule of RFC 6455 or RFC 7692 that the peer broke (or the configured limit it
/// exceeded), and ``closeCode`` maps it to the status code the connection must be failed with. Equality
/// compares the code only, so tests can write `#expect(throws: FramesError.reservedOpcode)`.
public struct FramesError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Which rule was broken. A struct over a private enum so that codes can be added later without
    /// breaking `switch` statements in other modules.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Base: Hashable, Sendable {
            case unmaskedClientFrame
            case maskedServerFrame
            case reservedBitSet
            case reservedOpcode
            case fragmentedControlFrame
            case controlFramePayloadTooLong
            case continuationWithoutMessage
            case dataFrameInsideFragmentedMessage
            case payloadLengthMostSignificantBitSet
            case nonMinimalLengthEncoding
            case frameAfterClose
            case closePayloadTooShort
            case invalidCloseCode
            case invalidUTF8
            case frameTooLarge
            case messageTooLarge
            case tooManyFragments
            case malformedExtensionHeader
            case invalidExtensionResponse
            case invalidCompressedData
            case compressorFailure
        }

        fileprivate let base: Base
        fileprivate init(_ base: Base) { self.base = base }

        /// RFC 6455 §5.1: a client MUST mask every frame it sends to the server.
        public static let unmaskedClientFrame = Code(.unmaskedClientFrame)
        /// RFC 6455 §5.1: a server MUST NOT mask any frame it sends to the client.
        public static let maskedServerFrame = Code(.maskedServerFrame)
        /// RFC 6455 §5.2: RSV1–3 MUST be 0 unless a negotiated extension defines them. With
        /// permessage-deflate RSV1 is allowed on the first frame of a data message only (RFC 7692 §6).
        public static let reservedBitSet = Code(.reservedBitSet)
        /// RFC 6455 §5.2: opcodes 0x3–0x7 and 0xB–0xF are reserved; receiving one MUST fail the connection.
        public static let reservedOpcode = Code(.reservedOpcode)
        /// RFC 6455 §5.5: control frames MUST NOT be fragmented.
        public static let fragmentedControlFrame = Code(.fragmentedControlFrame)
        /// RFC 6455 §5.5: control frames MUST have a payload length of 125 bytes or less.
        public static let controlFramePayloadTooLong = Code(.controlFramePayloadTooLong)
        /// RFC 6455 §5.4: a continuation frame with no fragmented message to continue.
        public static let continuationWithoutMessage = Code(.continuationWithoutMessage)
        /// RFC 6455 §5.4: a text or binary frame while a fragmented message is still open.
        public static let dataFrameInsideFragmentedMessage = Code(.dataFrameInsideFragmentedMessage)
        /// RFC 6455 §5.2: the most significant bit of a 64-bit payload length MUST be 0.
        public static let payloadLengthMostSignificantBitSet = Code(.payloadLengthMostSignificantBitSet)
        /// RFC 6455 §5.2: "the minimal number of bytes MUST be used to encode the length".
        public static let nonMinimalLengthEncoding = Code(.nonMinimalLengthEncoding)
        /// RFC 6455 §5.5.1: after sending a Close frame an endpoint MUST NOT send any more data.
        public static let frameAfterClose = Code(.frameAfterClose)
        /// RFC 6455 §5.5.1: a Close body, if present, starts with a 2-byte status code (length 1 is invalid).
        public static let closePayloadTooShort = Code(.closePayloadTooShort)
        /// RFC 6455 §7.4: a status code that may not appear on the wire (1004–1006, 1015, unassigned).
        /// (The "Code" suffix names the close code, not this type: the rule's name as STYLE P6 spells it.)
        // swift-format-ignore: DontRepeatTypeInStaticProperties
        public static let invalidCloseCode = Code(.invalidCloseCode)
        /// RFC 6455 §8.1: text messages and close reasons MUST be valid UTF-8.
        public static let invalidUTF8 = Code(.invalidUTF8)
        /// The frame's declared payload length is over the configured maximum frame size.
        public static let frameTooLarge = Code(.frameTooLarge)
        /// The message (all its fragments) is over the configured maximum message size.
        public static let messageTooLarge = Code(.messageTooLarge)
        /// The message has more fragments than the configured maximum.
        public static let tooManyFragments = Code(.tooManyFragments)
        /// RFC 6455 §9.1: a `Sec-WebSocket-Extensions` value that does not follow the grammar.
        public static let malformedExtensionHeader = Code(.malformedExtensionHeader)
        /// RFC 6455 §4.1, RFC 7692 §7: a server's extension answer the client must fail the connection for
        /// (an extension or parameter not offered, an invalid or duplicate parameter). A handshake error:
        /// it never appears in a Close frame.
        public static let invalidExtensionResponse = Code(.invalidExtensionResponse)
        /// RFC 7692 §7.2.2: the payload of a compressed message is not valid DEFLATE data.
        public static let invalidCompressedData = Code(.invalidCompressedData)
        /// zlib could not allocate or run a stream (out of memory): not the peer's fault.
        public static let compressorFailure = Code(.compressorFailure)

        public var description: String {
            switch self.base {
            case .unmaskedClientFrame: "unmasked client frame (RFC 6455 §5.1)"
            case .maskedServerFrame: "masked server frame (RFC 6455 §5.1)"
            case .reservedBitSet: "reserved bit set (RFC 6455 §5.2)"
            case .reservedOpcode: "reserved opcode (RFC 6455 §5.2)"
            case .fragmentedControlFrame: "fragmented control frame (RFC 6455 §5.5)"
            case .controlFramePayloadTooLong: "control frame payload over 125 bytes (RFC 6455 §5.5)"
            case .continuationWithoutMessage: "continuation frame without a message to continue (RFC 6455 §5.4)"
            case .dataFrameInsideFragmentedMessage: "data frame inside a fragmented message (RFC 6455 §5.4)"
            case .payloadLengthMostSignificantBitSet: "64-bit payload length with its top bit set (RFC 6455 §5.2)"
            case .nonMinimalLengthEncoding: "payload length not minimally encoded (RFC 6455 §5.2)"
            case .frameAfterClose: "frame after a Close frame (RFC 6455 §5.5.1)"
            case .closePayloadTooShort: "Close payload of 1 byte (RFC 6455 §5.5.1)"
            case .invalidCloseCode: "invalid close status code (RFC 6455 §7.4)"
            case .invalidUTF8: "invalid UTF-8 (RFC 6455 §8.1)"
            case .frameTooLarge: "frame over the size limit"
            case .messageTooLarge: "message over the size limit"
            case .tooManyFragments: "message over the fragment limit"
            case .malformedExtensionHeader: "malformed Sec-WebSocket-Extensions (RFC 6455 §9.1)"
            case .invalidExtensionResponse: "invalid Sec-WebSocket-Extensions answer (RFC 7692 §7)"
            case .invalidCompressedData: "invalid DEFLATE data (RFC 7692 §7.2.2)"
            case .compressorFailure: "zlib failure"
            }
        }
    }

    /// The rule that was broken.
    public var code: Code
    /// What the offending input was, for logs (never sent to a peer verbatim).
    public var detail: String

    public init(_ code: Code, detail: String = "") {
        self.code = code
        self.detail = detail
    }

    /// The close status code to fail the connection with (RFC 6455 §7.4.1):
    /// 1002 for protocol violations, 1007 for invalid UTF-8, 1008 for policy limits,
    /// 1009 for size limits.
    public var closeCode: CloseCode {
        switch self.code.base {
        case .unmaskedClientFrame, .maskedServerFrame, .reservedBitSet, .reservedOpcode, .fragmentedControlFrame,
            .controlFramePayloadTooLong, .continuationWithoutMessage, .dataFrameInsideFragmentedMessage,
            .payloadLengthMostSignificantBitSet, .nonMinimalLengthEncoding, .frameAfterClose, .closePayloadTooShort,
            .invalidCloseCode, .malformedExtensionHeader, .invalidExtensionResponse:
            .protocolError
        case .invalidUTF8, .invalidCompressedData:
            .invalidPayloadData
        case .tooManyFragments:
            .policyViolation
        case .frameTooLarge, .messageTooLarge:
            .messageTooBig
        case .compressorFailure:
            .internalError
        }
    }

    public var description: String {
        self.detail.isEmpty ? self.code.description : "\(self.code.description): \(self.detail)"
    }

    public static func == (lhs: FramesError, rhs: FramesError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(self.code) }
}

extension FramesError {
    // Shorthands so call sites and tests read `throw .reservedOpcode` / `#expect(throws: FramesError.reservedOpcode)`.
    public static let unmaskedClientFrame = FramesError(.unmaskedClientFrame)
    public static let maskedServerFrame = FramesError(.maskedServerFrame)
    public static let reservedBitSet = FramesError(.reservedBitSet)
    public static let reservedOpcode = FramesError(.reservedOpcode)
    public static let fragmentedControlFrame = FramesError(.fragmentedControlFrame)
    public static let controlFramePayloadTooLong = FramesError(.controlFramePayloadTooLong)
    public static let continuationWithoutMessage = FramesError(.continuationWithoutMessage)
    public static let dataFrameInsideFragmentedMessage = FramesError(.dataFrameInsideFragmentedMessage)
    public static let payloadLengthMostSignificantBitSet = FramesError(.payloadLengthMostSignificantBitSet)
    public static let nonMinimalLengthEncoding = FramesError(.nonMinimalLengthEncoding)
    public static let frameAfterClose = FramesError(.frameAfterClose)
    public static let closePayloadTooShort = FramesError(.closePayloadTooShort)
    public static let invalidCloseCode = FramesError(.invalidCloseCode)
    public static let invalidUTF8 = FramesError(.invalidUTF8)
    public static let frameTooLarge = FramesError(.frameTooLarge)
    public static let messageTooLarge = FramesError(.messageTooLarge)
    public static let tooManyFragments = FramesError(.tooManyFragments)
    public static let malformedExtensionHeader = FramesError(.malformedExtensionHeader)
    public static let invalidExtensionResponse = FramesError(.invalidExtensionResponse)
    public static let invalidCompressedData = FramesError(.invalidCompressedData)
    public static let compressorFailure = FramesError(.compressorFailure)
}
