import NIOCore

/// Inflates one compressed message at a time into chunks of bounded size, for a relay that forwards
/// the inflated message (``chunk(_:)``) or only validates it (``discarding``).
///
/// Chunks are `ByteBuffer`s of at most `chunkSize` payload bytes with `headroom` free bytes in front of
/// the reader index, so the caller can prepend a frame header in place (no copy). A full chunk is handed
/// out only when more output follows, so the last chunk of a message (possibly empty) comes from
/// ``finish(_:)``, and the caller knows which frame gets FIN.
public struct PerMessageDeflateReader {
    public let inflater: PerMessageInflater
    public let chunkSize: Int
    public let headroom: Int
    /// Validate only: output goes to one reused scratch buffer and is never handed out.
    public let discarding: Bool
    private let allocator: ByteBufferAllocator
    private var current: ByteBuffer?
    /// Shown each run of inflated bytes as it is produced, discarding or not (a frame tap's view of
    /// the message; issue #14 §2). `nil` nearly always: one check per inflate call.
    public var observer: ((ByteBuffer) -> Void)?

    public init(
        inflater: PerMessageInflater,
        chunkSize: Int = 32 * 1024,
        headroom: Int = 14,
        discarding: Bool = false,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) {
        precondition(chunkSize > 0)
        self.inflater = inflater
        self.chunkSize = chunkSize
        self.headroom = headroom
        self.discarding = discarding
        self.allocator = allocator
    }

    /// Starts a compressed message.
    public mutating func begin(validatingUTF8: Bool) throws(FramesError) {
        try self.inflater.beginMessage(validatingUTF8: validatingUTF8)
        // A discarding reader keeps its one scratch buffer from message to message (no allocation).
        if !self.discarding { self.current = nil }
    }

    /// Inflates a payload chunk of the message (plain, unmasked bytes). Full chunks go to `emit`.
    public mutating func append(_ payload: ByteBuffer, _ emit: (ByteBuffer) -> Void) throws(FramesError) {
        var input = payload
        _ = try self.append(&input) { chunk in
            emit(chunk)
            return true
        }
    }

    /// Inflates `input` (plain, unmasked compressed bytes) chunk by chunk, offering each full chunk to
    /// `offer`, which takes it (true) or refuses it for now (false). On a refusal the reader stops before
    /// inflating anything more: it keeps the refused chunk, `input` keeps what was not consumed, and the
    /// call returns false; call again later with the same `input` (even if empty: zlib may hold more
    /// output) and the refused chunk is offered first. Returns true when `input` is consumed and zlib
    /// holds no more output for it.
    ///
    /// This is what lets a relay stop between transcoded frames when the destination is above its high
    /// watermark (issue #10 item 6): at most one chunk is inflated ahead of what the destination took.
    public mutating func append(_ input: inout ByteBuffer, offering offer: (ByteBuffer) -> Bool) throws(FramesError) -> Bool {
        while true {
            if var full = self.current, full.readableBytes >= self.chunkSize {
                if self.discarding {
                    full.clear()
                    self.current = full
                } else {
                    guard offer(full) else { return false }
                    self.current = nil
                }
            }
            var output = self.current ?? self.makeBuffer()
            self.current = nil
            let before = output.writerIndex
            let full = try self.inflater.inflate(&input, into: &output, maxBytes: self.chunkSize - output.readableBytes)
            self.current = output
            if let observer = self.observer { Self.show(output, from: before, to: observer) }
            if !full && input.readableBytes == 0 { return true }
        }
    }

    /// Ends the message: inflates the tail and hands out the last chunk (possibly empty; nil when
    /// discarding).
    public mutating func finish(_ emit: (ByteBuffer) -> Void) throws(FramesError) -> ByteBuffer? {
        while true {
            var output = self.takeBuffer(emit)
            let before = output.writerIndex
            let full = try self.inflater.finishMessage(into: &output, maxBytes: self.chunkSize - output.readableBytes)
            self.current = output
            if let observer = self.observer { Self.show(output, from: before, to: observer) }
            if !full { break }
        }
        if self.discarding {
            self.current?.clear()
            return nil
        }
        defer { self.current = nil }
        return self.current
    }

    /// The buffer to inflate into: the current one while it has room; otherwise the full one goes out
    /// (or is cleared, when discarding) and a new one is made.
    private mutating func takeBuffer(_ emit: (ByteBuffer) -> Void) -> ByteBuffer {
        if var buffer = self.current {
            self.current = nil
            if buffer.readableBytes < self.chunkSize { return buffer }
            if self.discarding {
                buffer.clear()
                return buffer
            }
            emit(buffer)
        }
        return self.makeBuffer()
    }

    /// The bytes `output` gained past `start`, to the observer (when there are any).
    private static func show(_ output: ByteBuffer, from start: Int, to observer: (ByteBuffer) -> Void) {
        guard output.writerIndex > start else { return }
        observer(output.getSlice(at: start, length: output.writerIndex - start)!)
    }

    private func makeBuffer() -> ByteBuffer {
        var buffer = self.allocator.buffer(capacity: self.headroom + self.chunkSize)
        buffer.moveWriterIndex(forwardBy: self.headroom)
        buffer.moveReaderIndex(forwardBy: self.headroom)
        return buffer
    }
}

/// Compresses one message at a time into frame payloads of bounded size, with the `00 00 ff ff` that
/// ends each message's sync flush stripped (RFC 7692 §7.2.1).
///
/// Payloads have `headroom` free bytes in front (for the frame header, prepended in place). The last 4
/// bytes produced are always held back until more output follows or the message ends, so the tail is
/// never split across frames, and the last payload (from ``finish(_:)``) is the one with FIN.
public struct PerMessageDeflateWriter {
    public let deflater: PerMessageDeflater
    public let chunkSize: Int
    public let headroom: Int
    private let allocator: ByteBufferAllocator
    private var current: ByteBuffer?
    /// Whether the current message had any payload: zlib outputs nothing for a sync flush right after
    /// another one, so an empty message is written as its known compressed form instead.
    private var hasInput = false
    /// Compressed bytes already handed to `emit` in the current message.
    private var emittedBytes = 0

    /// Compressed bytes produced so far in the current message (handed out or held), before the tail is
    /// stripped: what a caller compares with the plain size to decide whether compressing pays.
    public var producedBytes: Int { self.emittedBytes + (self.current?.readableBytes ?? 0) }

    /// Drops the current message: what was produced is discarded and the compressor is reset, so no later
    /// message refers to bytes the peer never inflated (the message goes out uncompressed instead, RFC
    /// 7692 §6). A message that had no input leaves the compressor's context as it was.
    public mutating func abandonMessage() throws(FramesError) {
        let touched = self.hasInput
        self.current = nil
        self.hasInput = false
        self.emittedBytes = 0
        if touched { try self.deflater.reset() }
    }

    public init(
        deflater: PerMessageDeflater,
        chunkSize: Int = 32 * 1024,
        headroom: Int = 14,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) {
        precondition(chunkSize > 4)
        self.deflater = deflater
        self.chunkSize = chunkSize
        self.headroom = headroom
        self.allocator = allocator
    }

    /// Compresses a chunk of the message's plain payload; complete frame payloads go to `emit`.
    public mutating func append(_ payload: ByteBuffer, _ emit: (ByteBuffer) -> Void) throws(FramesError) {
        var input = payload
        self.hasInput = self.hasInput || input.readableBytes > 0
        while input.readableBytes > 0 {
            var output = self.takeBuffer(emit)
            _ = try self.deflater.compress(&input, into: &output, maxBytes: self.chunkSize + 4 - output.readableBytes)
            self.current = output
        }
    }

    /// Flushes what the compressor holds back so far (a sync flush inside the message: valid DEFLATE
    /// that costs about 5 bytes), so that ``producedBytes`` counts all input given so far. For a caller
    /// that decides mid-message whether compressing pays.
    public mutating func flush(_ emit: (ByteBuffer) -> Void) throws(FramesError) {
        guard self.hasInput else { return }
        while true {
            var output = self.takeBuffer(emit)
            let full = try self.deflater.flush(into: &output, maxBytes: self.chunkSize + 4 - output.readableBytes)
            self.current = output
            if !full { break }
        }
    }

    /// Ends the message: flushes, strips the tail and returns the last payload (never empty: an empty
    /// message compresses to `00`, RFC 7692 §7.2.3.6).
    public mutating func finish(_ emit: (ByteBuffer) -> Void) throws(FramesError) -> ByteBuffer {
        guard self.hasInput else {
            // RFC 7692 §7.2.3.6: an empty message is the byte 0x00 (an empty stored block, tail stripped);
            // it adds nothing to the window, so the peer's context stays in step.
            self.emittedBytes = 0
            var empty = self.makeBuffer()
            empty.writeInteger(UInt8(0))
            return empty
        }
        self.hasInput = false
        while true {
            var output = self.takeBuffer(emit)
            let full = try self.deflater.flush(into: &output, maxBytes: self.chunkSize + 4 - output.readableBytes)
            self.current = output
            if !full { break }
        }
        var last = self.current!
        self.current = nil
        self.emittedBytes = 0
        // Read as one integer: no array is made per message.
        let tail = last.getInteger(at: last.writerIndex - 4, as: UInt32.self)
        precondition(tail == 0x0000_FFFF, "a sync flush ends with 00 00 ff ff")
        last.moveWriterIndex(to: last.writerIndex - 4)
        try self.deflater.endMessage()
        return last
    }

    /// The buffer to compress into. When the current one is full, all but its last 4 bytes go out and
    /// those 4 bytes start the next buffer.
    private mutating func takeBuffer(_ emit: (ByteBuffer) -> Void) -> ByteBuffer {
        guard var buffer = self.current else { return self.makeBuffer() }
        self.current = nil
        if buffer.readableBytes < self.chunkSize + 4 { return buffer }
        var held = buffer.getSlice(at: buffer.writerIndex - 4, length: 4)!
        buffer.moveWriterIndex(to: buffer.writerIndex - 4)
        self.emittedBytes += buffer.readableBytes
        emit(buffer)
        var next = self.makeBuffer()
        next.writeBuffer(&held)
        return next
    }

    private func makeBuffer() -> ByteBuffer {
        var buffer = self.allocator.buffer(capacity: self.headroom + self.chunkSize + 4)
        buffer.moveWriterIndex(forwardBy: self.headroom)
        buffer.moveReaderIndex(forwardBy: self.headroom)
        return buffer
    }
}

extension FrameParser {
    /// The key the current data frame's payload is being remasked with (``remaskPayload(with:)``), so a
    /// caller that must see the payload plain (to inflate it) can take the masking over.
    public var remaskingKey: MaskingKey? { self.outgoingKey }
}
