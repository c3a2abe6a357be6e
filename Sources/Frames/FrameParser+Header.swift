import NIOCore

extension FrameParser {
    /// Reads a frame header from `buffer`, directly when it is all there, otherwise through the pending
    /// header bytes. Returns `nil` (having consumed everything) when more bytes are needed.
    mutating func readHeader(_ buffer: inout ByteBuffer) throws(FramesError) -> FrameHeader? {
        // The decoder is static and gets only what it reads, so no closure captures (copies) the parser.
        let context = HeaderContext(role: self.role, configuration: self.configuration, message: self.message, isClosed: self.isClosed)
        if self.pendingHeaderCount == 0 {
            let decoded = try buffer.withUnsafeReadableBytes { raw in
                Result { () throws(FramesError) in try Self.decodeHeader(raw, context) }
            }.get()
            if let (header, size) = decoded {
                buffer.moveReaderIndex(forwardBy: size)
                return header
            }
        }
        // Slow path: the header is split across reads. Copy what may belong to it and decode again.
        let previous = self.pendingHeaderCount
        let copied = min(14 - previous, buffer.readableBytes)
        guard copied > 0 else { return nil }
        withUnsafeMutableBytes(of: &self.pendingHeader) { pending in
            buffer.withUnsafeReadableBytes { raw in
                pending.baseAddress!.advanced(by: previous).copyMemory(from: raw.baseAddress!, byteCount: copied)
            }
        }
        let decoded = try withUnsafeBytes(of: self.pendingHeader) { pending in
            Result { () throws(FramesError) in
                try Self.decodeHeader(UnsafeRawBufferPointer(rebasing: pending[0..<(previous + copied)]), context)
            }
        }.get()
        guard let (header, size) = decoded else {
            self.pendingHeaderCount = previous + copied
            buffer.moveReaderIndex(forwardBy: copied)
            return nil
        }
        self.pendingHeaderCount = 0
        buffer.moveReaderIndex(forwardBy: size - previous)
        return header
    }

    /// What header validation needs to know about the parser.
    struct HeaderContext {
        var role: Role
        var configuration: Configuration
        var message: MessageState?
        var isClosed: Bool
    }

    /// Decodes and validates a header at the start of `bytes`. Returns the header and its size, or `nil`
    /// if `bytes` ends before the header does. Throws as soon as the bytes present break a rule,
    /// checking them in wire order, so a violation is reported identically however the input is split.
    static func decodeHeader(_ bytes: UnsafeRawBufferPointer, _ context: HeaderContext) throws(FramesError) -> (FrameHeader, Int)? {
        guard bytes.count >= 1 else { return nil }
        let first = bytes[0]
        let fin = first & 0x80 != 0
        let reserved = ReservedBits(rawValue: (first >> 4) & 0b111)
        let opcode = Opcode(uncheckedRawValue: first & 0x0F)
        // Issue #15: the usual frame (text or binary, no RSV bit, outside a fragmented message, before any
        // Close) breaks none of these rules, so only the others pay for the call.
        let usual = (opcode == .text || opcode == .binary) && reserved.isEmpty && context.message == nil && !context.isClosed
        if !usual {
            try Self.validateFirstByte(fin: fin, reserved: reserved, opcode: opcode, context)
        }

        guard bytes.count >= 2 else { return nil }
        let second = bytes[1]
        let masked = second & 0x80 != 0
        switch context.role {
        case .server where !masked: throw FramesError.unmaskedClientFrame
        case .client where masked: throw FramesError.maskedServerFrame
        case .server, .client: break
        }
        let shortLength = Int(second & 0x7F)
        if opcode.isControl && shortLength > 125 {
            throw FramesError(.controlFramePayloadTooLong, detail: "length code \(shortLength)")
        }

        var size = 2
        let length: Int
        switch shortLength {
        case 126:
            guard bytes.count >= 4 else { return nil }
            length = Int(bytes[2]) << 8 | Int(bytes[3])
            size = 4
            if length < 126 && context.configuration.rejectsNonMinimalLengths {
                throw FramesError(.nonMinimalLengthEncoding, detail: "\(length) in 16 bits")
            }
        case 127:
            guard bytes.count >= 10 else { return nil }
            var value: UInt64 = 0
            for index in 2..<10 { value = value << 8 | UInt64(bytes[index]) }
            size = 10
            // RFC 6455 §5.2: "the most significant bit MUST be 0". Checked before any size limit so a
            // length that cannot be a length is a protocol error (1002), not "too big" (1009).
            guard value & (1 << 63) == 0 else {
                throw FramesError(.payloadLengthMostSignificantBitSet, detail: "length 0x\(String(value, radix: 16))")
            }
            length = Int(value)
            if length <= 0xFFFF && context.configuration.rejectsNonMinimalLengths {
                throw FramesError(.nonMinimalLengthEncoding, detail: "\(length) in 64 bits")
            }
        default:
            length = shortLength
        }
        // Within every limit for such a frame: no call either (the first of a message, uncompressed).
        let configuration = context.configuration
        if !usual || length > configuration.maxFrameSize || length > configuration.maxMessageSize || configuration.maxFragmentsPerMessage < 1 {
            try Self.validateLength(length, opcode: opcode, compressed: reserved.contains(.rsv1), context)
        }

        var key: MaskingKey?
        if masked {
            guard bytes.count >= size + 4 else { return nil }
            key = MaskingKey(bytes[size], bytes[size + 1], bytes[size + 2], bytes[size + 3])
            size += 4
        }
        let header = FrameHeader(fin: fin, reservedBits: reserved, opcode: opcode, maskingKey: key, payloadLength: length)
        return (header, size)
    }

    /// The rules the first header byte shows: opcode, RSV bits, FIN on control frames, fragmentation
    /// state.
    private static func validateFirstByte(fin: Bool, reserved: ReservedBits, opcode: Opcode, _ context: HeaderContext) throws(FramesError) {
        if context.isClosed {
            throw FramesError(.frameAfterClose, detail: "\(opcode) frame")
        }
        if opcode.isReserved {
            throw FramesError(.reservedOpcode, detail: "opcode 0x\(String(opcode.rawValue, radix: 16))")
        }
        if !reserved.isEmpty {
            // RFC 6455 §5.2: only bits a negotiated extension defines. RFC 7692 §6: permessage-deflate
            // defines RSV1 for the first frame of a data message only, never control or continuation.
            let allowed = opcode == .text || opcode == .binary ? context.configuration.allowedReservedBits : []
            if !allowed.isSuperset(of: reserved) {
                throw FramesError(.reservedBitSet, detail: "RSV bits \(reserved.rawValue) on \(opcode) frame")
            }
        }
        if opcode.isControl {
            if !fin { throw FramesError(.fragmentedControlFrame, detail: "\(opcode) without FIN") }
        } else if opcode == .continuation {
            if context.message == nil { throw FramesError.continuationWithoutMessage }
        } else if let message = context.message {
            throw FramesError(.dataFrameInsideFragmentedMessage, detail: "\(opcode) inside a \(message.opcode) message")
        }
    }

    /// Size limits for a data frame, checked as soon as its length is known.
    ///
    /// The limits count what the application gets. For a compressed message (RSV1 on its first frame,
    /// RFC 7692 §6) that is the inflated size, which the inflater enforces; on the wire such a frame and
    /// message may take up to ``PerMessageDeflate/maxCompressedSize(forInflated:)`` of the limits, since
    /// incompressible data grows by a few bytes when deflated (issue #10 item 4).
    private static func validateLength(_ length: Int, opcode: Opcode, compressed: Bool, _ context: HeaderContext) throws(FramesError) {
        guard !opcode.isControl else { return }
        let configuration = context.configuration
        let isCompressed = opcode == .continuation ? context.message!.compressed : compressed
        let maxFrame = isCompressed ? PerMessageDeflate.maxCompressedSize(forInflated: configuration.maxFrameSize) : configuration.maxFrameSize
        let maxMessage = isCompressed ? PerMessageDeflate.maxCompressedSize(forInflated: configuration.maxMessageSize) : configuration.maxMessageSize
        if length > maxFrame {
            throw FramesError(.frameTooLarge, detail: "\(length) > \(maxFrame)")
        }
        let (fragments, bytes) = opcode == .continuation ? (context.message!.fragments, context.message!.bytes) : (0, 0)
        if length > maxMessage - bytes {
            throw FramesError(.messageTooLarge, detail: "\(bytes + length) > \(maxMessage)")
        }
        if fragments + 1 > configuration.maxFragmentsPerMessage {
            throw FramesError(.tooManyFragments, detail: "over \(configuration.maxFragmentsPerMessage)")
        }
    }
}
