import Frames
import NIOCore

/// The permessage-deflate agreements of one relayed connection (DESIGN §4) and what follows from them
/// for each direction.
struct RelayCompression {
    /// What the gateway (as the server) agreed with the client; nil: no compression on the client leg.
    var client: PerMessageDeflateParameters?
    /// What the gateway (as a client) agreed with the upstream; nil: none on the upstream leg.
    var upstream: PerMessageDeflateParameters?
    var policy: GatewayConfiguration.PerMessageDeflatePolicy = .init()

    static let none = RelayCompression()

    /// Whether compressed messages from `source` go to the other leg unchanged: both legs negotiated
    /// and the receiver's agreement can inflate what the sender's allows it to send
    /// (``PerMessageDeflateParameters/canForwardVerbatim(from:to:)``; identical parameters qualify).
    func isVerbatim(from source: Side) -> Bool {
        guard let client = self.client, let upstream = self.upstream else { return false }
        switch source {
        case .client: return client.canForwardVerbatim(from: .client, to: upstream)
        case .upstream: return upstream.canForwardVerbatim(from: .server, to: client)
        }
    }

    /// The transcoder for messages from `source`, or nil when neither leg compresses that direction.
    func transcoder(from source: Side, maxMessageSize: Int, allocator: ByteBufferAllocator) -> MessageTranscoder? {
        let sourceAgreement = source == .client ? self.client : self.upstream
        let destinationAgreement = source == .client ? self.upstream : self.client
        guard sourceAgreement != nil || destinationAgreement != nil else { return nil }
        let verbatim = self.isVerbatim(from: source)
        // The source leg's sender is the client on the client leg, the server on the upstream leg.
        let inflater = sourceAgreement.map { agreement in
            source == .client
                ? PerMessageInflater(windowBits: agreement.clientMaxWindowBits, noContextTakeover: agreement.clientNoContextTakeover, maxMessageSize: maxMessageSize)
                : PerMessageInflater(windowBits: agreement.serverMaxWindowBits, noContextTakeover: agreement.serverNoContextTakeover, maxMessageSize: maxMessageSize)
        }
        // The gateway compresses toward the destination with its own window there (server role toward the
        // client, client role toward the upstream) — unless it forwards verbatim, or that window is 8, which
        // zlib cannot deflate raw: then it sends uncompressed (RFC 7692 §6 allows it).
        var deflater: PerMessageDeflater?
        if let agreement = destinationAgreement, !verbatim {
            let (bits, noTakeover) =
                source == .client
                ? (agreement.clientMaxWindowBits, agreement.clientNoContextTakeover)
                : (agreement.serverMaxWindowBits, agreement.serverNoContextTakeover)
            if bits >= 9 {
                deflater = PerMessageDeflater(
                    windowBits: min(bits, self.policy.maxWindowBits),
                    noContextTakeover: noTakeover || self.policy.noContextTakeover,
                    level: self.policy.compressionLevel,
                    memoryLevel: self.policy.memoryLevel
                )
            }
        }
        guard inflater != nil || deflater != nil else { return nil }
        return MessageTranscoder(
            reader: inflater.map { PerMessageDeflateReader(inflater: $0, discarding: verbatim, allocator: allocator) },
            writer: deflater.map { PerMessageDeflateWriter(deflater: $0, allocator: allocator) },
            masksOutput: source == .client
        )
    }
}

/// What the relay does with the messages of one direction when compression is involved.
///
/// Per message, decided by its first frame:
/// - **forward**: cut-through as without compression — an uncompressed message toward a leg the gateway
///   does not compress for, or a compressed message forwarded verbatim (both legs agree); a verbatim
///   compressed message is still inflated, into a reused scratch buffer, to check its size after
///   inflation (1009) and its UTF-8 (1007).
/// - **transcode**: the message is inflated (if compressed) and/or deflated (toward a leg the gateway
///   compresses for) and written as new frames of at most 32 KiB each: fragmentation is not preserved.
///   Frames are written whole, so a Close can always go between them.
final class MessageTranscoder {
    private var reader: PerMessageDeflateReader?
    private var writer: PerMessageDeflateWriter?
    /// Frames written toward the upstream are masked (the gateway is its client).
    private let masksOutput: Bool
    /// Whether transcoded messages are compressed (RSV1 on their first frame). A constant, because
    /// ``frame(_:fin:_:)`` runs inside the writer's callbacks, while `writer` is being modified.
    private let compressesOutput: Bool

    private enum Message {
        case none
        case forward(inspecting: Bool)
        case transcode(Transcoding)
    }

    private struct Transcoding {
        var opcode: Opcode
        var inflates: Bool
        var framesWritten = 0
    }

    private var message: Message = .none

    init(reader: PerMessageDeflateReader?, writer: PerMessageDeflateWriter?, masksOutput: Bool) {
        self.reader = reader
        self.writer = writer
        self.masksOutput = masksOutput
        self.compressesOutput = writer != nil
    }

    /// Whether the payload of the current frame goes through ``payload(_:emit:)``: a transcoded message,
    /// or a verbatim compressed one that must be inspected.
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

    /// A data frame's header. Returns true when the frame is transcoded (its header is not forwarded).
    func header(_ header: FrameHeader) throws(FramesError) -> Bool {
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
            if verbatim {
                self.message = .forward(inspecting: true)
                return false
            }
            self.message = .transcode(Transcoding(opcode: header.opcode, inflates: true))
            return true
        }
        if self.writer != nil {
            self.message = .transcode(Transcoding(opcode: header.opcode, inflates: false))
            return true
        }
        self.message = .forward(inspecting: false)
        return false
    }

    /// A plain (unmasked) payload chunk of a transcoded or inspected message. Transcoded frames that are
    /// complete go to `emit`, whole (header included).
    func payload(_ payload: ByteBuffer, emit: (ByteBuffer) -> Void) throws(FramesError) {
        switch self.message {
        case .forward(inspecting: true):
            try self.reader!.append(payload) { _ in }
        case .transcode(var transcoding):
            self.message = .none
            defer { self.message = .transcode(transcoding) }
            if transcoding.inflates {
                var failure: FramesError?
                try self.reader!.append(payload) { chunk in
                    guard failure == nil else { return }
                    do throws(FramesError) { try self.forwardPlain(chunk, &transcoding, emit: emit) } catch { failure = error }
                }
                if let failure { throw failure }
            } else {
                try self.forwardPlain(payload, &transcoding, emit: emit)
            }
        case .none, .forward(inspecting: false):
            preconditionFailure("payload(_:emit:) for a message that is not transcoded or inspected")
        }
    }

    /// The end of a data frame; with `fin`, of its message.
    func frameEnd(fin: Bool, emit: (ByteBuffer) -> Void) throws(FramesError) {
        guard fin else { return }
        let message = self.message
        self.message = .none
        switch message {
        case .none, .forward(inspecting: false):
            return
        case .forward(inspecting: true):
            _ = try self.reader!.finish { _ in }
        case .transcode(var transcoding):
            var last: ByteBuffer?
            if transcoding.inflates {
                var failure: FramesError?
                let final = try self.reader!.finish { chunk in
                    guard failure == nil else { return }
                    do throws(FramesError) { try self.forwardPlain(chunk, &transcoding, emit: emit) } catch { failure = error }
                }
                if let failure { throw failure }
                if let final {
                    if self.writer != nil {
                        try self.writer!.append(final) { emit(self.frame($0, fin: false, &transcoding)) }
                    } else {
                        last = final
                    }
                }
            }
            if self.writer != nil {
                last = try self.writer!.finish { emit(self.frame($0, fin: false, &transcoding)) }
            }
            emit(self.frame(last ?? ByteBuffer(), fin: true, &transcoding))
        }
    }

    /// Plain message bytes toward the destination: compressed when the gateway compresses toward it,
    /// else written as they are (inflated chunks come with room for a header).
    private func forwardPlain(_ chunk: ByteBuffer, _ transcoding: inout Transcoding, emit: (ByteBuffer) -> Void) throws(FramesError) {
        if self.writer != nil {
            try self.writer!.append(chunk) { emit(self.frame($0, fin: false, &transcoding)) }
        } else {
            emit(self.frame(chunk, fin: false, &transcoding))
        }
    }

    /// A whole frame around `payload`: the header goes into the payload's headroom when there is room
    /// (buffers from the codec have 14 bytes), masked toward the upstream with a fresh key.
    private func frame(_ payload: consuming ByteBuffer, fin: Bool, _ transcoding: inout Transcoding) -> ByteBuffer {
        let first = transcoding.framesWritten == 0
        transcoding.framesWritten += 1
        let header = FrameHeader(
            fin: fin,
            reservedBits: first && self.compressesOutput ? .rsv1 : [],
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
