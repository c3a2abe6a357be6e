extension FrameParser {
    /// Which end of the connection the parser is: it decides the masking rule (RFC 6455 §5.1).
    public enum Role: Hashable, Sendable {
        /// Parses frames sent by a client: every frame MUST be masked.
        case server
        /// Parses frames sent by a server: no frame may be masked.
        case client
    }

    /// Limits and negotiated options of one direction of a connection.
    public struct Configuration: Hashable, Sendable {
        /// The largest payload one frame may declare, in bytes. Checked as soon as the length field is
        /// read, before any payload arrives. Exceeding it fails with 1009. Default: 1,048,576 (1 MiB).
        /// A frame of a compressed message may declare up to
        /// ``PerMessageDeflate/maxCompressedSize(forInflated:)`` of it; its inflated size is the codec's.
        public var maxFrameSize: Int = 1 << 20
        /// The largest message (the sum of its frames' payloads as sent on the wire), in bytes. Checked
        /// when each frame's header is read. Exceeding it fails with 1009. Default: 1,048,576 (1 MiB).
        /// For compressed messages the wire allowance is ``PerMessageDeflate/maxCompressedSize(forInflated:)``
        /// of it, and the limit after inflation is enforced by the deflate codec.
        public var maxMessageSize: Int = 1 << 20
        /// The most frames one message may have. Exceeding it fails with 1008. Default: 1,024.
        public var maxFragmentsPerMessage: Int = 1024
        /// The reserved bits a negotiated extension allows: `[.rsv1]` when permessage-deflate was
        /// negotiated (RFC 7692 §6), otherwise none. RSV1 is then still only allowed on the first frame
        /// of a data message. Default: none.
        public var allowedReservedBits: ReservedBits = []
        /// Whether uncompressed text messages are checked for UTF-8 as they stream (RFC 6455 §8.1).
        /// Default: true.
        public var validatesUTF8: Bool = true
        /// Whether a payload length encoded in more bytes than needed (for example 5 as a 16-bit
        /// extended length) is rejected with 1002. RFC 6455 §5.2 says "the minimal number of bytes MUST
        /// be used to encode the length"; every mainstream implementation complies, and a gateway that
        /// enforces compliance rejects the rest. Default: true.
        public var rejectsNonMinimalLengths: Bool = true

        public init() {}

        public init(_ configure: (inout Configuration) -> Void) {
            self.init()
            configure(&self)
        }
    }
}
