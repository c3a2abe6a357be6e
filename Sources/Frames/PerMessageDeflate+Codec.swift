// zlib itself, through compress-nio's C module (its `CCompressZlib` target links the system zlib and
// wraps the `deflateInit2`/`inflateInit2` macros). CompressNIO's Swift classes take the input as an
// `inout ByteBuffer` and write through `withUnsafeMutableReadableBytes`, which copies a payload slice that
// shares storage with the read buffer (copy-on-write): the relay inflates slices of its read buffer, so
// the codec drives the z_stream directly and reads its input without mutating it.
import CCompressZlib
import NIOCore

/// The bytes RFC 7692 §7.2.1 strips from the end of every compressed message and §7.2.2 appends before
/// inflating: the empty stored block that a sync flush ends with.
let deflateTail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]

/// Inflates the compressed messages of one direction of one connection (RFC 7692 §7.2.2), streaming.
///
/// - One z_stream per direction, created on the first compressed message and kept for the connection:
///   with context takeover the window carries over; without it the stream is reset (`inflateReset`, no
///   allocation) before the next message.
/// - **Bounded:** a message may inflate to at most ``maxMessageSize`` bytes. zlib is never given room for
///   more than one byte past the limit, so a 1 KiB input that would inflate to 1 GiB stops with
///   ``FramesError/messageTooLarge`` (1009) after at most `maxMessageSize + 1` bytes of output, and the
///   output goes to buffers the caller sizes.
/// - Inflated text is UTF-8 validated as it is produced (``UTF8Validator``), failing at the first chunk
///   that can no longer be valid (1007).
/// - Invalid DEFLATE data is ``FramesError/invalidCompressedData`` (1007).
/// - The window is at least 9 bits (see ``PerMessageDeflate``: peers whose zlib silently uses 9 for 8).
///
/// A class because a z_stream points into itself and must not move; it is used from one event loop.
public final class PerMessageInflater {
    /// The window the stream inflates with: the agreed one, at least 9.
    public let windowBits: Int
    public let noContextTakeover: Bool
    /// The most bytes one message may inflate to. Exceeding it fails with 1009.
    public var maxMessageSize: Int

    private let stream: UnsafeMutablePointer<z_stream>
    private var initialized = false
    private var needsReset = false
    /// The current message: bytes produced, UTF-8 state, how much of the tail was fed, final block seen.
    private var produced = 0
    private var validatesUTF8 = false
    private var utf8 = UTF8Validator()
    private var tailFed = 0
    private var streamEnded = false

    public init(windowBits: Int, noContextTakeover: Bool, maxMessageSize: Int) {
        precondition(PerMessageDeflate.windowBitsRange.contains(windowBits), "window bits \(windowBits) outside 8...15")
        self.windowBits = max(windowBits, 9)
        self.noContextTakeover = noContextTakeover
        self.maxMessageSize = maxMessageSize
        self.stream = .allocate(capacity: 1)
        self.stream.initialize(to: z_stream())
    }

    deinit {
        if self.initialized { inflateEnd(self.stream) }
        self.stream.deinitialize(count: 1)
        self.stream.deallocate()
    }

    /// Bytes inflated so far in the current message.
    public var inflatedBytes: Int { self.produced }

    /// Starts a compressed message; `validatingUTF8` for text messages.
    public func beginMessage(validatingUTF8: Bool) throws(FramesError) {
        if !self.initialized {
            let result = CCompressZlib_inflateInit2(self.stream, -Int32(self.windowBits))
            guard result == Z_OK else { throw FramesError(.compressorFailure, detail: "inflateInit2: \(result)") }
            self.initialized = true
        } else if self.needsReset {
            guard inflateReset(self.stream) == Z_OK else { throw FramesError(.compressorFailure, detail: "inflateReset") }
        }
        // Reset before the next message unless the context is taken over; a failed message leaves the
        // stream in an unknown state, but a failed message also fails the connection.
        self.needsReset = self.noContextTakeover
        self.produced = 0
        self.validatesUTF8 = validatingUTF8
        self.utf8.reset()
        self.tailFed = 0
        self.streamEnded = false
    }

    /// Inflates as much of `input` (compressed payload, read without being modified) as fits into
    /// `output`'s writable bytes. Returns true when `output` filled up: call again with more room (even
    /// if `input` is empty, zlib may hold more output). Consumed input is removed from `input`.
    public func inflate(_ input: inout ByteBuffer, into output: inout ByteBuffer, maxBytes: Int = .max) throws(FramesError) -> Bool {
        if self.streamEnded {
            // RFC 7692 §7.2.3.4: a sender may end a message with a block that has BFINAL set (its example
            // has a padding byte after it). What follows the final block is ignored, and the stream is
            // reset before the next message.
            input.moveReaderIndex(to: input.writerIndex)
            return false
        }
        let (consumed, full) = try input.withUnsafeReadableBytes { raw in
            Result { () throws(FramesError) in try self.run(raw, into: &output, maxBytes: maxBytes) }
        }.get()
        input.moveReaderIndex(forwardBy: consumed)
        return full
    }

    /// After the message's last payload byte: inflates the stripped tail (RFC 7692 §7.2.2). Returns true
    /// when `output` filled up: call again with more room. When it returns false the message is complete
    /// and checked (UTF-8 ends on a scalar boundary).
    public func finishMessage(into output: inout ByteBuffer, maxBytes: Int = .max) throws(FramesError) -> Bool {
        var full = false
        if self.tailFed < deflateTail.count && !self.streamEnded {
            let (consumed, filled) = try deflateTail.withUnsafeBytes { raw in
                Result { () throws(FramesError) in
                    try self.run(UnsafeRawBufferPointer(rebasing: raw[self.tailFed...]), into: &output, maxBytes: maxBytes)
                }
            }.get()
            self.tailFed += consumed
            full = filled
        } else {
            // Drain what zlib may still hold.
            full = try self.run(UnsafeRawBufferPointer(start: nil, count: 0), into: &output, maxBytes: maxBytes).full
        }
        if full { return true }
        if self.validatesUTF8 && !self.utf8.isComplete {
            throw FramesError(.invalidUTF8, detail: "compressed text message ends inside a scalar")
        }
        if self.streamEnded { self.needsReset = true }
        return false
    }

    /// One zlib call: input → output's writable bytes, at most one byte past the message limit.
    private func run(_ input: UnsafeRawBufferPointer, into output: inout ByteBuffer, maxBytes: Int) throws(FramesError) -> (consumed: Int, full: Bool)
    {
        precondition(self.initialized, "beginMessage(validatingUTF8:) first")
        let room = min(output.writableBytes, maxBytes, self.maxMessageSize - self.produced + 1)
        guard room > 0 else { return (0, true) }
        if input.isEmpty && self.streamEnded { return (0, false) }
        let stream = self.stream
        var result: Int32 = Z_OK
        var written = 0
        var consumed = 0
        var valid = true
        output.withUnsafeMutableWritableBytes { out in
            stream.pointee.next_in = input.isEmpty ? nil : UnsafeMutablePointer(mutating: input.baseAddress!.assumingMemoryBound(to: Bytef.self))
            stream.pointee.avail_in = UInt32(input.count)
            stream.pointee.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_out = UInt32(room)
            result = CCompressZlib.inflate(stream, Z_SYNC_FLUSH)
            consumed = input.count - Int(stream.pointee.avail_in)
            written = room - Int(stream.pointee.avail_out)
            if self.validatesUTF8 && written > 0 {
                valid = self.utf8.feed(UnsafeRawBufferPointer(rebasing: out[0..<written]))
            }
            stream.pointee.next_in = nil
            stream.pointee.avail_in = 0
        }
        output.moveWriterIndex(forwardBy: written)
        self.produced += written
        switch result {
        case Z_OK, Z_BUF_ERROR:
            break
        case Z_STREAM_END:
            self.streamEnded = true
        case Z_DATA_ERROR, Z_NEED_DICT:
            let message = stream.pointee.msg.map { String(cString: $0) } ?? "code \(result)"
            throw FramesError(.invalidCompressedData, detail: message)
        default:
            throw FramesError(.compressorFailure, detail: "inflate: \(result)")
        }
        if self.produced > self.maxMessageSize {
            throw FramesError(.messageTooLarge, detail: "inflates to more than \(self.maxMessageSize) bytes")
        }
        guard valid else { throw FramesError(.invalidUTF8, detail: "compressed text message") }
        return (consumed, written == room && !self.streamEnded)
    }
}

/// Compresses the messages of one direction of one connection (RFC 7692 §7.2.1), streaming.
///
/// One z_stream, created on the first message and kept: with context takeover the window carries over;
/// without it the stream is reset after each message (`deflateReset`, no allocation). The window is
/// 9–15 bits: zlib refuses raw deflate with 8 (see ``PerMessageDeflate``), so an agreed window of 8
/// means "send uncompressed" and no deflater is made.
///
/// Messages end with a sync flush, whose output ends in `00 00 ff ff`; ``PerMessageDeflateWriter``
/// strips it and cuts the output into frames.
public final class PerMessageDeflater {
    public let windowBits: Int
    public let noContextTakeover: Bool
    /// zlib compression level 0–9. Default 1: on a 64 KiB JSON-like message it gives 9.6 % of the size
    /// at 409 MB/s, against 8.6 % at 103 MB/s for level 6 (../shared/TOOLCHAIN.md §3).
    public let level: Int
    /// zlib memLevel 1–9: the compressor's hash memory is 2^(memLevel+9) bytes. Default 8 (128 KiB).
    public let memoryLevel: Int

    private let stream: UnsafeMutablePointer<z_stream>
    private var initialized = false

    public init(windowBits: Int, noContextTakeover: Bool, level: Int = 1, memoryLevel: Int = 8) {
        precondition((9...15).contains(windowBits), "zlib cannot deflate raw with window bits \(windowBits)")
        precondition((0...9).contains(level) && (1...9).contains(memoryLevel), "invalid zlib level or memLevel")
        self.windowBits = windowBits
        self.noContextTakeover = noContextTakeover
        self.level = level
        self.memoryLevel = memoryLevel
        self.stream = .allocate(capacity: 1)
        self.stream.initialize(to: z_stream())
    }

    deinit {
        if self.initialized { deflateEnd(self.stream) }
        self.stream.deinitialize(count: 1)
        self.stream.deallocate()
    }

    private func initializeIfNeeded() throws(FramesError) {
        guard !self.initialized else { return }
        let result = CCompressZlib_deflateInit2(
            self.stream,
            Int32(self.level),
            Z_DEFLATED,
            -Int32(self.windowBits),
            Int32(self.memoryLevel),
            Z_DEFAULT_STRATEGY
        )
        guard result == Z_OK else { throw FramesError(.compressorFailure, detail: "deflateInit2: \(result)") }
        self.initialized = true
    }

    /// Compresses as much of `input` as zlib takes while `output` has room. Returns true when `output`
    /// filled up before all input was consumed: call again with more room.
    public func compress(_ input: inout ByteBuffer, into output: inout ByteBuffer, maxBytes: Int = .max) throws(FramesError) -> Bool {
        try self.initializeIfNeeded()
        let (consumed, full) = try input.withUnsafeReadableBytes { raw in
            Result { () throws(FramesError) in try self.run(raw, into: &output, maxBytes: maxBytes, flush: Z_NO_FLUSH) }
        }.get()
        input.moveReaderIndex(forwardBy: consumed)
        return full && input.readableBytes > 0
    }

    /// Ends the current message with a sync flush. Returns true when `output` filled up: call again with
    /// more room. When it returns false everything is out and the output ends with `00 00 ff ff`.
    public func flush(into output: inout ByteBuffer, maxBytes: Int = .max) throws(FramesError) -> Bool {
        try self.initializeIfNeeded()
        return try self.run(UnsafeRawBufferPointer(start: nil, count: 0), into: &output, maxBytes: maxBytes, flush: Z_SYNC_FLUSH).full
    }

    /// Forgets the context (`deflateReset`, no allocation): the next message refers to nothing sent
    /// before. Used when a message the stream compressed is sent uncompressed after all, since the peer's
    /// window then never held it (RFC 7692 §7.2.3 context takeover needs both windows in step).
    public func reset() throws(FramesError) {
        guard self.initialized else { return }
        guard deflateReset(self.stream) == Z_OK else { throw FramesError(.compressorFailure, detail: "deflateReset") }
    }

    /// After ``flush(into:)`` returned false: resets the stream when there is no context takeover.
    public func endMessage() throws(FramesError) {
        if self.noContextTakeover && self.initialized {
            guard deflateReset(self.stream) == Z_OK else { throw FramesError(.compressorFailure, detail: "deflateReset") }
        }
    }

    private func run(
        _ input: UnsafeRawBufferPointer,
        into output: inout ByteBuffer,
        maxBytes: Int,
        flush: Int32
    ) throws(FramesError) -> (consumed: Int, full: Bool) {
        let room = min(output.writableBytes, maxBytes)
        guard room > 0 else { return (0, true) }
        let stream = self.stream
        var result: Int32 = Z_OK
        var written = 0
        var consumed = 0
        output.withUnsafeMutableWritableBytes { out in
            stream.pointee.next_in = input.isEmpty ? nil : UnsafeMutablePointer(mutating: input.baseAddress!.assumingMemoryBound(to: Bytef.self))
            stream.pointee.avail_in = UInt32(input.count)
            stream.pointee.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_out = UInt32(room)
            result = CCompressZlib.deflate(stream, flush)
            consumed = input.count - Int(stream.pointee.avail_in)
            written = room - Int(stream.pointee.avail_out)
            stream.pointee.next_in = nil
            stream.pointee.avail_in = 0
        }
        output.moveWriterIndex(forwardBy: written)
        switch result {
        case Z_OK, Z_BUF_ERROR: break
        default: throw FramesError(.compressorFailure, detail: "deflate: \(result)")
        }
        return (consumed, written == room)
    }
}
