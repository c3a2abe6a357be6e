import NIOCore

extension FrameParser {
    /// What one batch consumed: whole data frames, each a complete message (issue #15).
    public struct Batch: Hashable, Sendable {
        /// Frames (and so messages) consumed.
        public var frames = 0
        /// Their payload bytes.
        public var payloadBytes = 0

        public init() {}
    }

    /// Consumes, in one loop, every frame at the start of `buffer` that is a whole message on its own —
    /// a text or binary frame with FIN set and no RSV bit, all of whose payload is in `buffer` — and
    /// appends each to `output` as ``next(_:copyingPayloadTo:)`` and a relay writing its header would:
    /// the header written anew (with a fresh key from `keys`, drawn after the frame validated, or
    /// unmasked when `keys` is `nil`), the payload unmasked, validated (UTF-8 for text) and remasked
    /// with that key in the same pass that copies it. `buffer` is only read.
    ///
    /// It stops at the first frame that is anything else: a control frame, a fragment, a compressed
    /// frame, a frame cut off by the end of the read, or one that breaks a rule (a bad header, a limit,
    /// invalid UTF-8). That frame is left unconsumed and nothing of it is written or drawn, so the
    /// per-event calls that follow give exactly the events, output, keys and error they would have
    /// given without the batch. Only between messages (``isBetweenMessages``); otherwise it consumes
    /// nothing.
    ///
    /// Issue #15: the per-event calls cost three calls, three enum results and the buffer bookkeeping of
    /// each per frame; a read of small frames is one call here (BENCHMARKS.md "hot15").
    public mutating func nextBatch(
        _ buffer: inout ByteBuffer,
        copyingTo output: inout ByteBuffer,
        maskingWith keys: MaskingKeyGenerator?
    ) -> Batch {
        guard self.isBetweenMessages, buffer.readableBytes >= 2 else { return Batch() }
        let context = HeaderContext(role: self.role, configuration: self.configuration, message: nil, isClosed: false)
        let validatesUTF8 = self.configuration.validatesUTF8
        var batch = Batch()
        var consumed = 0
        // Room for the whole read up front (one capacity and uniqueness check per batch): a masked frame
        // from a client takes as many bytes out as in. A frame that would not fit (an unmasked frame
        // given a key grows by 4) ends the batch.
        let room = buffer.readableBytes
        buffer.withUnsafeReadableBytes { source in
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { destination in
                var written = 0
                while let frame = Self.wholeMessageFrame(in: source, at: consumed, context) {
                    var outgoing = frame.header
                    outgoing.maskingKey = keys == nil ? nil : MaskingKey(packed: 0)
                    let headerSize = outgoing.encodedSize
                    let length = frame.header.payloadLength
                    guard destination.count - written >= headerSize + length else { break }
                    let from = UnsafeRawBufferPointer(rebasing: source[(consumed + frame.headerSize)...].prefix(length))
                    let to = UnsafeMutableRawBufferPointer(rebasing: destination[(written + headerSize)...].prefix(length))
                    let incoming = frame.header.maskingKey ?? MaskingKey(packed: 0)
                    if validatesUTF8 && frame.header.opcode == .text {
                        incoming.apply(from: from, to: to)
                        var utf8 = UTF8Validator()
                        guard utf8.feed(UnsafeRawBufferPointer(to)), utf8.isComplete else { break }
                        outgoing.maskingKey = keys?.nextKey()
                        outgoing.maskingKey?.apply(to: to)
                    } else {
                        outgoing.maskingKey = keys?.nextKey()
                        (incoming ^ (outgoing.maskingKey ?? MaskingKey(packed: 0))).apply(from: from, to: to)
                    }
                    outgoing.write(to: UnsafeMutableRawBufferPointer(rebasing: destination[written...]))
                    written += headerSize + length
                    consumed += frame.headerSize + length
                    batch.frames += 1
                    batch.payloadBytes += length
                }
                return written
            }
        }
        buffer.moveReaderIndex(forwardBy: consumed)
        return batch
    }

    /// Like ``nextBatch(_:copyingTo:maskingWith:)``, for ``nextInPlace(_:)``: the frames stay where they
    /// are in `buffer` (only read, never written to) and are consumed, to be forwarded as they came.
    /// Only unmasked frames with a minimally encoded header are taken (anything else the per-event calls
    /// unmask, or re-encode, in place).
    public mutating func nextBatchInPlace(_ buffer: inout ByteBuffer) -> Batch {
        guard self.isBetweenMessages, buffer.readableBytes >= 2 else { return Batch() }
        let context = HeaderContext(role: self.role, configuration: self.configuration, message: nil, isClosed: false)
        let validatesUTF8 = self.configuration.validatesUTF8
        var batch = Batch()
        let consumed = buffer.withUnsafeReadableBytes { source in
            var consumed = 0
            while let frame = Self.wholeMessageFrame(in: source, at: consumed, context),
                frame.header.maskingKey == nil, frame.headerSize == frame.header.encodedSize
            {
                let length = frame.header.payloadLength
                if validatesUTF8 && frame.header.opcode == .text {
                    var utf8 = UTF8Validator()
                    let payload = UnsafeRawBufferPointer(rebasing: source[(consumed + frame.headerSize)...].prefix(length))
                    guard utf8.feed(payload), utf8.isComplete else { break }
                }
                consumed += frame.headerSize + length
                batch.frames += 1
                batch.payloadBytes += length
            }
            return consumed
        }
        buffer.moveReaderIndex(forwardBy: consumed)
        return batch
    }

    /// The frame at `offset` of `bytes` if it is whole, valid so far (``decodeHeader(_:_:)``, the
    /// per-event path's own checks and limits) and a message by itself: text or binary, FIN, no RSV bit.
    @inline(__always)
    static func wholeMessageFrame(
        in bytes: UnsafeRawBufferPointer,
        at offset: Int,
        _ context: HeaderContext
    ) -> (header: FrameHeader, headerSize: Int)? {
        guard bytes.count - offset >= 2 else { return nil }
        // Cheap checks on the first byte before the full decode: FIN, no RSV bit, text or binary.
        let first = bytes[offset]
        guard first & 0xF0 == 0x80, first & 0x0F == Opcode.text.rawValue || first & 0x0F == Opcode.binary.rawValue else { return nil }
        let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
        // A header that breaks a rule is left to the per-event path, which throws its error.
        guard let (header, size) = try? Self.decodeHeader(rest, context), rest.count - size >= header.payloadLength else { return nil }
        return (header, size)
    }
}
