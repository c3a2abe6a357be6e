import Frames
import NIOCore

/// What the relay does with the messages of one direction when compression is involved.
///
/// Per message, decided by its first frame:
/// - **forward**: cut-through as without compression — an uncompressed message toward a leg the gateway
///   does not compress for, or a compressed message forwarded verbatim (both legs agree); a verbatim
///   compressed message is still inflated, into a reused scratch buffer, to check its size after
///   inflation (1009) and its UTF-8 (1007).
/// - **transcode**: the message is inflated (if compressed) and/or deflated (toward a leg the gateway
///   compresses for) and written as new frames (32 KiB from the codec; a plain message that goes out
///   uncompressed after all keeps the chunks it arrived in): fragmentation is not preserved. Frames are
///   written whole, so a Close can always go between them.
///
/// Issue #10: the limits count inflated bytes (a frame's too, ``maxFrameSize``); inflation can stop
/// between transcoded frames and resume (``payload(_:gate:emit:)`` returns ``Step/suspended``); and a
/// message whose compressed form is not smaller than its plain form is sent uncompressed
/// (``uncompressedMessages``, RFC 7692 §6).
final class MessageTranscoder {
    /// The plain bytes of a message the gateway compresses that are held, with their compressed form,
    /// until compressing is known to pay: the whole message when it is at most this long (an exact
    /// decision at its end), otherwise its first 64 KiB (compressed only if they shrank by at least 1/8,
    /// which covers deflate's per-block worst case for the rest of a message within the limit: about
    /// 5 bytes per 16 KiB block at the default memLevel, 320 bytes for 1 MiB). Bounds what one
    /// direction holds to about 64 KiB plain plus its compressed form.
    static let decisionSize = 64 * 1024

    /// Whether a call completed or stopped between transcoded frames (``resume(gate:emit:)`` continues).
    enum Step: Equatable {
        case done
        case suspended
    }

    private var reader: PerMessageDeflateReader?
    private var writer: PerMessageDeflateWriter?
    /// Frames written toward the upstream are masked (the gateway is its client).
    private let masksOutput: Bool
    /// The frame limit, counted in inflated bytes for compressed messages (issue #10 item 4).
    private let maxFrameSize: Int
    /// Messages the gateway would have compressed that went out uncompressed because their compressed
    /// form was not smaller (RFC 7692 §6). The session adds it to the metrics when it ends.
    private(set) var uncompressedMessages = 0

    private enum Message {
        case none
        case forward(inspecting: Bool)
        case transcode(Transcoding)
    }

    /// Whether a transcoded message goes out compressed; `undecided` while its bytes are held.
    private enum Output {
        case undecided
        case compressed
        case plain
    }

    private struct Transcoding {
        var opcode: Opcode
        var inflates: Bool
        var framesWritten = 0
        var output: Output
    }

    private var message: Message = .none
    /// Inflated bytes of the message when the current frame started (frame limit of compressed frames).
    private var frameStart = 0
    /// Compressed input of the current frame not inflated yet, while suspended.
    private var pendingInput: ByteBuffer?
    /// Held while a message's output is undecided (see ``decisionSize``).
    private var heldPlain = ByteBuffer()
    private var heldCompressed: [ByteBuffer] = []

    init(reader: PerMessageDeflateReader?, writer: PerMessageDeflateWriter?, masksOutput: Bool, maxFrameSize: Int = .max) {
        self.reader = reader
        self.writer = writer
        self.masksOutput = masksOutput
        self.maxFrameSize = maxFrameSize
    }

    /// Whether the payload of the current frame goes through ``payload(_:gate:emit:)``: a transcoded
    /// message, or a verbatim compressed one that must be inspected.
    var handlesPayload: Bool {
        switch self.message {
        case .transcode, .forward(inspecting: true): true
        case .none, .forward(inspecting: false): false
        }
    }

    /// Whether the current message is forwarded unchanged while being inflated to validate it.
    var isInspecting: Bool {
        if case .forward(inspecting: true) = self.message { return true }
        return false
    }

    /// Shown every inflated run of the compressed messages this direction inflates, transcoded or
    /// verbatim (issue #14 §2: the tap shows them inflated). Set only while a tap watches.
    var inflationObserver: ((ByteBuffer) -> Void)? {
        get { self.reader?.observer }
        set { self.reader?.observer = newValue }
    }

    /// Bytes the current compressed message inflated to so far.
    var inflatedBytes: Int { self.reader?.inflater.inflatedBytes ?? 0 }

    /// Whether the payload of the frame that `header` starts is counted by the `bytes` rate limit after
    /// inflation rather than by its wire length (issue #10 item 6): a compressed message the gateway
    /// inflates. Asked before ``header(_:)``.
    func chargesInflatedBytes(_ header: FrameHeader) -> Bool {
        guard self.reader != nil else { return false }
        guard header.opcode == .continuation else { return header.reservedBits.contains(.rsv1) }
        switch self.message {
        case .transcode(let transcoding): return transcoding.inflates
        case .forward(let inspecting): return inspecting
        case .none: return false
        }
    }

    /// Whether inflation stopped between transcoded frames and waits for ``resume(gate:emit:)``.
    var isSuspended: Bool { self.pendingInput != nil }

    /// A data frame's header. Returns true when the frame is transcoded (its header is not forwarded).
    func header(_ header: FrameHeader) throws(FramesError) -> Bool {
        self.frameStart = self.reader?.inflater.inflatedBytes ?? 0
        if header.opcode == .continuation {
            if case .transcode = self.message { return true }
            return false
        }
        let compressed = header.reservedBits.contains(.rsv1)
        let text = header.opcode == .text
        if compressed, var reader = self.reader {
            try reader.begin(validatingUTF8: text)
            let verbatim = reader.discarding
            self.reader = reader
            self.frameStart = 0
            if verbatim {
                self.message = .forward(inspecting: true)
                return false
            }
            self.message = .transcode(Transcoding(opcode: header.opcode, inflates: true, output: self.initialOutput))
            return true
        }
        if self.writer != nil {
            self.message = .transcode(Transcoding(opcode: header.opcode, inflates: false, output: .undecided))
            return true
        }
        self.message = .forward(inspecting: false)
        return false
    }

    /// A message the gateway does not compress goes out plain from the start; one it compresses is held
    /// until compressing is known to pay.
    private var initialOutput: Output { self.writer == nil ? .plain : .undecided }

    /// A plain (unmasked) payload chunk of a transcoded or inspected message. Complete transcoded frames
    /// go to `emit`, whole (header included). Before each inflated chunk is taken, `gate` is asked with
    /// its size: false stops the inflation there (``Step/suspended``; the rest is kept for
    /// ``resume(gate:emit:)``).
    func payload(_ payload: ByteBuffer, gate: (Int) -> Bool = { _ in true }, emit: (ByteBuffer) -> Void) throws(FramesError) -> Step {
        precondition(self.pendingInput == nil, "payload(_:gate:emit:) while suspended")
        var input = payload
        return try self.inflate(&input, gate: gate, emit: emit)
    }

    /// Continues the inflation that ``payload(_:gate:emit:)`` suspended.
    func resume(gate: (Int) -> Bool = { _ in true }, emit: (ByteBuffer) -> Void) throws(FramesError) -> Step {
        guard var input = self.pendingInput else { return .done }
        self.pendingInput = nil
        return try self.inflate(&input, gate: gate, emit: emit)
    }

    private func inflate(_ input: inout ByteBuffer, gate: (Int) -> Bool, emit: (ByteBuffer) -> Void) throws(FramesError) -> Step {
        switch self.message {
        case .forward(inspecting: true):
            try self.reader!.append(input) { _ in }
            try self.checkFrameSize()
            return .done
        case .transcode(var transcoding):
            self.message = .none
            defer { self.message = .transcode(transcoding) }
            guard transcoding.inflates else {
                try self.forwardPlain(input, &transcoding, emit: emit)
                return .done
            }
            var failure: FramesError?
            // Not `self.reader` inside the closure: the reader is being modified (exclusivity).
            let inflater = self.reader!.inflater
            let complete = try self.reader!.append(&input) { chunk in
                guard failure == nil else { return true }
                if inflater.inflatedBytes - self.frameStart > self.maxFrameSize {
                    failure = FramesError(.frameTooLarge, detail: "inflates to more than \(self.maxFrameSize) bytes")
                    return true
                }
                guard gate(chunk.readableBytes) else { return false }
                do throws(FramesError) { try self.forwardPlain(chunk, &transcoding, emit: emit) } catch { failure = error }
                return true
            }
            if let failure { throw failure }
            try self.checkFrameSize()
            if complete { return .done }
            // Kept in a buffer of its own: the input is a slice of the relay's pooled output buffer.
            var rest = ByteBufferAllocator().buffer(capacity: input.readableBytes)
            rest.writeBuffer(&input)
            self.pendingInput = rest
            return .suspended
        case .none, .forward(inspecting: false):
            preconditionFailure("payload(_:gate:emit:) for a message that is not transcoded or inspected")
        }
    }

    /// RFC 6455 §5.2 frame limit, counted after inflation for compressed messages (issue #10 item 4).
    private func checkFrameSize() throws(FramesError) {
        guard let inflated = self.reader?.inflater.inflatedBytes, inflated - self.frameStart > self.maxFrameSize else { return }
        throw FramesError(.frameTooLarge, detail: "inflates to more than \(self.maxFrameSize) bytes")
    }

    /// The end of a data frame; with `fin`, of its message. Never suspends: what is left is at most one
    /// inflated chunk and the compressor's flush. Inflated chunks forwarded here are reported to
    /// `charge` (they are not asked to ``payload(_:gate:emit:)``'s gate).
    func frameEnd(fin: Bool, charge: (Int) -> Void = { _ in }, emit: (ByteBuffer) -> Void) throws(FramesError) {
        guard fin else { return }
        let message = self.message
        self.message = .none
        switch message {
        case .none, .forward(inspecting: false):
            return
        case .forward(inspecting: true):
            _ = try self.reader!.finish { _ in }
            try self.checkFrameSize()
        case .transcode(var transcoding):
            if transcoding.inflates {
                var failure: FramesError?
                let final = try self.reader!.finish { chunk in
                    guard failure == nil else { return }
                    charge(chunk.readableBytes)
                    do throws(FramesError) { try self.forwardPlain(chunk, &transcoding, emit: emit) } catch { failure = error }
                }
                if let failure { throw failure }
                try self.checkFrameSize()
                if let final {
                    charge(final.readableBytes)
                    if case .plain = transcoding.output { return emit(self.frame(final, fin: true, &transcoding)) }
                    try self.forwardPlain(final, &transcoding, emit: emit)
                }
            }
            try self.finishMessage(&transcoding, emit: emit)
        }
    }

    /// Ends a transcoded message: the last frame (possibly empty) has FIN. An undecided message is
    /// decided exactly here: compressed only if that is smaller than its plain bytes.
    private func finishMessage(_ transcoding: inout Transcoding, emit: (ByteBuffer) -> Void) throws(FramesError) {
        switch transcoding.output {
        case .plain:
            emit(self.frame(ByteBuffer(), fin: true, &transcoding))
        case .compressed:
            let last = try self.writer!.finish { emit(self.frame($0, fin: false, &transcoding)) }
            emit(self.frame(last, fin: true, &transcoding))
        case .undecided:
            let last = try self.writer!.finish { self.heldCompressed.append($0) }
            let compressedSize = self.heldCompressed.reduce(last.readableBytes) { $0 + $1.readableBytes }
            if compressedSize < self.heldPlain.readableBytes {
                transcoding.output = .compressed
                for payload in self.heldCompressed { emit(self.frame(payload, fin: false, &transcoding)) }
                emit(self.frame(last, fin: true, &transcoding))
            } else {
                // Its bytes are in the compressor's window but will not be in the peer's.
                if self.heldPlain.readableBytes > 0 { try self.writer!.deflater.reset() }
                transcoding.output = .plain
                self.uncompressedMessages += 1
                self.emitHeldPlain(&transcoding, fin: true, emit: emit)
            }
            self.heldCompressed.removeAll(keepingCapacity: true)
            self.heldPlain.clear()
        }
    }

    /// Plain message bytes toward the destination: compressed when the gateway compresses toward it,
    /// held while that is undecided, else written as they are (inflated chunks come with room for a
    /// header).
    private func forwardPlain(_ chunk: ByteBuffer, _ transcoding: inout Transcoding, emit: (ByteBuffer) -> Void) throws(FramesError) {
        switch transcoding.output {
        case .plain:
            emit(self.frame(chunk, fin: false, &transcoding))
        case .compressed:
            try self.writer!.append(chunk) { emit(self.frame($0, fin: false, &transcoding)) }
        case .undecided:
            var copy = chunk
            self.heldPlain.writeBuffer(&copy)
            try self.writer!.append(chunk) { self.heldCompressed.append($0) }
            guard self.heldPlain.readableBytes >= Self.decisionSize else { return }
            // A long message is decided on its first bytes (see `decisionSize`), all of them: zlib holds
            // input back until it has a block's worth.
            try self.writer!.flush { self.heldCompressed.append($0) }
            if self.writer!.producedBytes * 8 <= self.heldPlain.readableBytes * 7 {
                transcoding.output = .compressed
                for payload in self.heldCompressed { emit(self.frame(payload, fin: false, &transcoding)) }
            } else {
                try self.writer!.abandonMessage()
                transcoding.output = .plain
                self.uncompressedMessages += 1
                self.emitHeldPlain(&transcoding, fin: false, emit: emit)
            }
            self.heldCompressed.removeAll(keepingCapacity: true)
            self.heldPlain = ByteBuffer()
        }
    }

    /// The held plain bytes as frames of at most 32 KiB, RSV1 clear; with `fin`, the last one ends the
    /// message (an empty message is one empty frame).
    private func emitHeldPlain(_ transcoding: inout Transcoding, fin: Bool, emit: (ByteBuffer) -> Void) {
        let frameSize = 32 * 1024
        repeat {
            let count = min(frameSize, self.heldPlain.readableBytes)
            let payload = self.heldPlain.readSlice(length: count)!
            emit(self.frame(payload, fin: fin && self.heldPlain.readableBytes == 0, &transcoding))
        } while self.heldPlain.readableBytes > 0
    }

    /// A whole frame around `payload`: the header goes into the payload's headroom when there is room
    /// (buffers from the codec have 14 bytes), masked toward the upstream with a fresh key. RSV1 on the
    /// first frame of a message that goes out compressed.
    private func frame(_ payload: consuming ByteBuffer, fin: Bool, _ transcoding: inout Transcoding) -> ByteBuffer {
        let first = transcoding.framesWritten == 0
        transcoding.framesWritten += 1
        let header = FrameHeader(
            fin: fin,
            reservedBits: first && transcoding.output == .compressed ? .rsv1 : [],
            opcode: first ? transcoding.opcode : .continuation,
            maskingKey: self.masksOutput ? RelayResources.current.maskingKeys.nextKey() : nil,
            payloadLength: payload.readableBytes
        )
        var frame: ByteBuffer
        let size = header.encodedSize
        if payload.readerIndex >= size {
            let payloadEnd = payload.writerIndex
            frame = payload
            let headerStart = frame.readerIndex - size
            frame.moveReaderIndex(to: headerStart)
            frame.moveWriterIndex(to: headerStart)
            header.write(to: &frame)
            frame.moveWriterIndex(to: payloadEnd)
        } else {
            frame = ByteBufferAllocator().buffer(capacity: size + payload.readableBytes)
            header.write(to: &frame)
            var payload = payload
            frame.writeBuffer(&payload)
        }
        if let key = header.maskingKey {
            frame.withUnsafeMutableReadableBytes { raw in
                key.apply(to: UnsafeMutableRawBufferPointer(rebasing: raw[size...]))
            }
        }
        return frame
    }
}
