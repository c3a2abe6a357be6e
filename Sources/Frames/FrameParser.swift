import NIOCore

/// A streaming (cut-through) WebSocket frame parser with strict validation, RFC 6455 §5.
///
/// Feed it bytes in chunks of any size, one byte at a time included, and it produces events:
/// ``Event/header(_:)`` for a data frame, then its payload in ``Event/payload(_:)`` chunks as they
/// arrive, then ``Event/frameEnd``; control frames (at most 125 bytes) come whole as
/// ``Event/control(_:)``. A data frame is never held in memory: each payload chunk is a slice of the
/// input, unmasked in place (or remasked, see ``remaskPayload(with:)``).
///
/// Enforced, each failing with a ``FramesError`` whose code names the rule:
/// - masking by role (§5.1); RSV bits only as negotiated extensions allow (§5.2, RFC 7692 §6);
///   reserved opcodes (§5.2);
/// - control frames: FIN set, payload ≤ 125 bytes (§5.5); Close bodies: not 1 byte long, a valid code,
///   a UTF-8 reason (§5.5.1, §7.4); nothing after a Close (§5.5.1);
/// - fragmentation: no continuation without a message, no new message inside one (§5.4);
/// - lengths: a 64-bit length with its top bit set (1002, not "too big"); non-minimal encodings (§5.2,
///   configurable); frame size, message size (1009) and fragment count (1008) limits;
/// - UTF-8 in uncompressed text messages, streaming across frames and reads, failing at the first chunk
///   that can no longer be valid (§8.1).
///
/// Every violation is detected from the bytes that show it, in byte order, so the same input gives the
/// same events and the same error however it is split into reads. After an error every call throws it
/// again.
///
/// Usage: `while let event = try parser.next(&buffer) { … }`. The parser consumes what it has used
/// from `buffer`; when it returns `nil` it needs more bytes (and `buffer` is empty, except after a Close).
public struct FrameParser {
    /// What the parser produces.
    public enum Event: Hashable, Sendable {
        /// The header of a data frame (text, binary or continuation). Its ``FrameHeader/maskingKey`` is
        /// the key as received; the payload events that follow carry unmasked bytes.
        case header(FrameHeader)
        /// The next chunk of the current data frame's payload (unmasked, or remasked with the key given
        /// to ``FrameParser/remaskPayload(with:)``). Never empty.
        case payload(ByteBuffer)
        /// The current data frame is complete. If its header had FIN set, so is the message.
        case frameEnd
        /// A complete, validated control frame.
        case control(ControlFrame)
    }

    /// What ``next(_:copyingPayloadTo:)`` and ``nextInPlace(_:)`` produce: an ``Event`` whose payload
    /// chunk is only a count, because its bytes stay where the call put them. A relay uses these to
    /// forward the bytes of many frames as one buffer instead of one slice per header and chunk.
    public enum RelayEvent: Hashable, Sendable {
        /// As ``Event/header(_:)``.
        case header(FrameHeader)
        /// The next `count` bytes of the current data frame's payload, validated and consumed. Never 0.
        case payload(count: Int)
        /// As ``Event/frameEnd``.
        case frameEnd
        /// As ``Event/control(_:)``.
        case control(ControlFrame)
    }

    /// How a step treats payload bytes.
    enum PayloadMode {
        /// Transformed in place and left readable, for ``next(_:)`` to slice.
        case slice
        /// Transformed in place and consumed.
        case inPlace
        /// Copied, transformed, to the output; the input is never written to.
        case copy
    }

    public let role: Role
    public var configuration: Configuration

    @usableFromInline
    enum State {
        case awaitingHeader
        /// A data frame's payload is streaming.
        case dataPayload(remaining: Int, offset: Int)
        /// A control frame's payload is being collected in `controlScratch` (it arrived split).
        case controlPayload(FrameHeader)
        /// A Close frame was received: any further byte is a violation.
        case closed
        case failed(FramesError)
    }

    /// State of the message that is being received (RFC 6455 §5.4).
    struct MessageState {
        var opcode: Opcode
        var fragments: Int
        var bytes: Int
        var validatesUTF8: Bool
        /// RSV1 on the first frame (RFC 7692 §6): the size limits count inflated bytes.
        var compressed: Bool
    }

    @usableFromInline var state: State = .awaitingHeader
    var message: MessageState?
    var utf8 = UTF8Validator()
    /// The current data frame's incoming key and the key to remask its payload with.
    var incomingKey: MaskingKey?
    var outgoingKey: MaskingKey?
    /// FIN of the current data frame.
    var currentFin = false
    /// Up to 14 header bytes that arrived split across reads.
    var pendingHeader: (UInt64, UInt64) = (0, 0)
    var pendingHeaderCount = 0
    /// Collects a control frame's payload when it arrives split; allocated on first use and reused.
    var controlScratch: ByteBuffer?

    public init(role: Role, configuration: Configuration = Configuration()) {
        self.role = role
        self.configuration = configuration
    }

    /// Whether a Close frame has been received.
    public var isClosed: Bool {
        if case .closed = self.state { return true }
        return false
    }

    /// Whether a fragmented data message is open (its final frame has not been completed).
    public var isInsideMessage: Bool { self.message != nil }

    /// Whether the parser is between messages: no frame (or header) partly received and no fragmented
    /// message open. The relay's frame deadline runs while this is false.
    public var isBetweenMessages: Bool {
        guard case .awaitingHeader = self.state else { return false }
        return self.pendingHeaderCount == 0 && self.message == nil
    }

    /// After a ``Event/header(_:)`` event: the payload chunks of this frame are masked with `key` (as a
    /// client must send them, RFC 6455 §5.3) instead of being delivered plain; `nil` delivers them plain.
    /// Validation still sees plain bytes. For frames that need no UTF-8 check the unmask and the remask
    /// happen in a single pass, with the XOR of both keys.
    public mutating func remaskPayload(with key: MaskingKey?) {
        self.outgoingKey = key
    }

    /// Consumes bytes from `buffer` and returns the next event, or `nil` when more bytes are needed.
    public mutating func next(_ buffer: inout ByteBuffer) throws(FramesError) -> Event? {
        switch try self.relayNext(&buffer, output: nil, mode: .slice) {
        case nil: return nil
        case .header(let header): return .header(header)
        case .payload(let count): return .payload(buffer.readSlice(length: count)!)
        case .frameEnd: return .frameEnd
        case .control(let frame): return .control(frame)
        }
    }

    /// Like ``next(_:)``, but `buffer` is only read, never written to, so its storage is not copied when
    /// something else shares it (NIO's receive buffer pool, slices already handed on). Each payload
    /// chunk is consumed and appended to `output` unmasked, or remasked with the key given to
    /// ``remaskPayload(with:)``, in the same pass that copies it (a text chunk is checked before it is
    /// remasked; an invalid chunk is not appended). Masked control frames are unmasked in a copy.
    public mutating func next(_ buffer: inout ByteBuffer, copyingPayloadTo output: inout ByteBuffer) throws(FramesError) -> RelayEvent? {
        try withUnsafeMutablePointer(to: &output) { output throws(FramesError) in
            try self.relayNext(&buffer, output: output, mode: .copy)
        }
    }

    /// Like ``next(_:)``, but a payload chunk is not sliced off: it is unmasked (or remasked) in place in
    /// `buffer` and consumed, so the caller can forward every byte it consumed as one slice. When there
    /// is nothing to unmask or remask (frames from a server), `buffer` is only read, never written to,
    /// and its storage is not copied however it is shared. Masked control frames are unmasked in a copy.
    public mutating func nextInPlace(_ buffer: inout ByteBuffer) throws(FramesError) -> RelayEvent? {
        try self.relayNext(&buffer, output: nil, mode: .inPlace)
    }

    /// `output` is only used (and then not `nil`) in `.copy` mode. A pointer, not an `inout` buffer, so
    /// that the other modes need no placeholder buffer (a retain and a release per event).
    private mutating func relayNext(
        _ buffer: inout ByteBuffer,
        output: UnsafeMutablePointer<ByteBuffer>?,
        mode: PayloadMode
    ) throws(FramesError) -> RelayEvent? {
        do {
            return try self.step(&buffer, output: output, mode: mode)
        } catch {
            self.state = .failed(error)
            throw error
        }
    }

    private mutating func step(
        _ buffer: inout ByteBuffer,
        output: UnsafeMutablePointer<ByteBuffer>?,
        mode: PayloadMode
    ) throws(FramesError) -> RelayEvent? {
        switch self.state {
        case .awaitingHeader:
            guard let header = try self.readHeader(&buffer) else { return nil }
            return try self.begin(header, &buffer, output: output, mode: mode)
        case .dataPayload(let remaining, let offset):
            if remaining == 0 {
                return try self.endDataFrame()
            }
            let count = min(remaining, buffer.readableBytes)
            guard count > 0 else { return nil }
            switch mode {
            case .slice:
                try self.transformPayload(&buffer, count: count, offset: offset)
            case .inPlace:
                try self.transformPayload(&buffer, count: count, offset: offset)
                buffer.moveReaderIndex(forwardBy: count)
            case .copy:
                try self.copyPayload(&buffer, count: count, offset: offset, to: &output!.pointee)
                buffer.moveReaderIndex(forwardBy: count)
            }
            self.state = .dataPayload(remaining: remaining - count, offset: offset + count)
            return .payload(count: count)
        case .controlPayload(let header):
            var scratch = self.controlScratch!
            self.controlScratch = nil
            let count = min(header.payloadLength - scratch.readableBytes, buffer.readableBytes)
            var chunk = buffer.readSlice(length: count)!
            scratch.writeBuffer(&chunk)
            guard scratch.readableBytes == header.payloadLength else {
                self.controlScratch = scratch
                return nil
            }
            if let key = header.maskingKey {
                key.apply(to: &scratch)
            }
            let frame = try self.finishControlFrame(header, payload: scratch)
            self.controlScratch = scratch
            return frame
        case .closed:
            guard buffer.readableBytes == 0 else {
                throw FramesError(.frameAfterClose, detail: "\(buffer.readableBytes) bytes after Close")
            }
            return nil
        case .failed(let error):
            throw error
        }
    }

    /// Starts a frame whose header was just read.
    private mutating func begin(
        _ header: FrameHeader,
        _ buffer: inout ByteBuffer,
        output: UnsafeMutablePointer<ByteBuffer>?,
        mode: PayloadMode
    ) throws(FramesError) -> RelayEvent? {
        if header.opcode.isControl {
            if buffer.readableBytes >= header.payloadLength && (header.maskingKey == nil || mode == .slice) {
                // Unmask in the input buffer before slicing, so no copy is made.
                if let key = header.maskingKey {
                    buffer.withUnsafeMutableReadableBytes { raw in
                        key.apply(to: UnsafeMutableRawBufferPointer(rebasing: raw[0..<header.payloadLength]))
                    }
                }
                return try self.finishControlFrame(header, payload: buffer.readSlice(length: header.payloadLength)!)
            }
            if self.controlScratch == nil {
                // 125 bytes is the largest control payload (RFC 6455 §5.5).
                self.controlScratch = ByteBufferAllocator().buffer(capacity: 125)
            } else {
                // Cleared here, not when the last control frame was emitted: its payload (a slice of the
                // scratch) has been dropped by now, so the scratch is reused without an allocation.
                self.controlScratch!.clear()
            }
            self.state = .controlPayload(header)
            return try self.step(&buffer, output: output, mode: mode)
        }
        // A data frame: open or continue the message.
        if header.opcode == .continuation {
            self.message!.fragments += 1
            self.message!.bytes += header.payloadLength
        } else {
            let compressed = header.reservedBits.contains(.rsv1)
            let validates = self.configuration.validatesUTF8 && header.opcode == .text && !compressed
            self.message = MessageState(
                opcode: header.opcode,
                fragments: 1,
                bytes: header.payloadLength,
                validatesUTF8: validates,
                compressed: compressed
            )
            self.utf8.reset()
        }
        self.incomingKey = header.maskingKey
        self.outgoingKey = nil
        self.currentFin = header.fin
        self.state = .dataPayload(remaining: header.payloadLength, offset: 0)
        return .header(header)
    }

    private mutating func endDataFrame() throws(FramesError) -> RelayEvent {
        self.state = .awaitingHeader
        if self.currentFin {
            if self.message!.validatesUTF8 && !self.utf8.isComplete {
                throw FramesError(.invalidUTF8, detail: "text message ends inside a scalar")
            }
            self.message = nil
        }
        return .frameEnd
    }

    /// Unmasks (and remasks, and validates) the next `count` payload bytes in place.
    private mutating func transformPayload(
        _ buffer: inout ByteBuffer,
        count: Int,
        offset: Int
    ) throws(FramesError) {
        let incoming = self.incomingKey
        let outgoing = self.outgoingKey
        if self.message!.validatesUTF8 && incoming == nil && outgoing == nil {
            // Nothing to change: validate through the read-only view, which never copies the storage.
            let valid = buffer.withUnsafeReadableBytes { raw in
                self.utf8.feed(UnsafeRawBufferPointer(rebasing: raw[0..<count]))
            }
            guard valid else { throw FramesError(.invalidUTF8, detail: "text message") }
        } else if self.message!.validatesUTF8 {
            let valid = buffer.withUnsafeMutableReadableBytes { raw in
                let chunk = UnsafeMutableRawBufferPointer(rebasing: raw[0..<count])
                incoming?.apply(to: chunk, offset: offset)
                let valid = self.utf8.feed(UnsafeRawBufferPointer(chunk))
                outgoing?.apply(to: chunk, offset: offset)
                return valid
            }
            guard valid else { throw FramesError(.invalidUTF8, detail: "text message") }
        } else {
            let combined = MaskingKey(packed: (incoming?.packed ?? 0) ^ (outgoing?.packed ?? 0))
            guard combined.packed != 0 else { return }
            buffer.withUnsafeMutableReadableBytes { raw in
                combined.apply(to: UnsafeMutableRawBufferPointer(rebasing: raw[0..<count]), offset: offset)
            }
        }
    }

    /// Appends the next `count` payload bytes of `buffer` to `output`, unmasked (and remasked, and
    /// validated), without writing to `buffer`.
    private mutating func copyPayload(
        _ buffer: inout ByteBuffer,
        count: Int,
        offset: Int,
        to output: inout ByteBuffer
    ) throws(FramesError) {
        let incoming = self.incomingKey ?? MaskingKey(packed: 0)
        let outgoing = self.outgoingKey
        let validates = self.message!.validatesUTF8
        var valid = true
        _ = buffer.withUnsafeReadableBytes { source in
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { destination in
                let from = UnsafeRawBufferPointer(rebasing: source[0..<count])
                let to = UnsafeMutableRawBufferPointer(rebasing: destination[0..<count])
                if validates {
                    incoming.apply(from: from, to: to, offset: offset)
                    valid = self.utf8.feed(UnsafeRawBufferPointer(to))
                    guard valid else { return 0 }
                    outgoing?.apply(to: to, offset: offset)
                } else {
                    (incoming ^ (outgoing ?? MaskingKey(packed: 0))).apply(from: from, to: to, offset: offset)
                }
                return count
            }
        }
        guard valid else { throw FramesError(.invalidUTF8, detail: "text message") }
    }

    /// Validates a whole, already unmasked control payload.
    private mutating func finishControlFrame(_ header: FrameHeader, payload: ByteBuffer) throws(FramesError) -> RelayEvent {
        self.state = .awaitingHeader
        if header.opcode == .close {
            let failure = payload.withUnsafeReadableBytes { raw -> FramesError? in
                do throws(FramesError) {
                    try ControlFrame.validateClosePayload(raw)
                    return nil
                } catch {
                    return error
                }
            }
            if let failure { throw failure }
            self.state = .closed
        }
        return .control(ControlFrame(opcode: header.opcode, payload: payload))
    }
}
