import NIOCore

/// Counts the bytes a client sends before its connection is switched to frames, and fails once they pass
/// the request-head limit (DESIGN §1.3: 16 KiB → 431). Removed when the connection starts relaying.
///
/// It also watches for the end of the request line: when the limit is passed before the request line
/// ended, the request line alone is over it and the answer is 414 URI Too Long instead (RFC 9112 §3,
/// RFC 9110 §15.5.15; RELIABILITY H-02 (c)). Leading empty lines (RFC 9112 §2.2) do not end it.
///
/// The count is of bytes, not reads: however the head is split, the limit is met by the read carrying
/// byte `limit + 1`, with the same verdict. It is reported once; what follows is dropped (the
/// connection is being refused), so a client trickling bytes past the limit is not reported per read.
/// When the head ended within the limit and that same read carries more (a client sending frames before
/// the 101), the head is passed on first and then the limit reported, exactly as when the frames come in
/// a later read: the answer is the early-data refusal (400), never 431 for a head that fits.
final class RequestBytesLimiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    struct LimitExceeded: Error {
        /// Whether the request line had not ended when the limit was passed (414 rather than 431).
        var inRequestLine = false
    }

    private let limit: Int
    private var seen = 0
    /// Whether a byte of the request line (not CR or LF) has been seen, and whether its LF has.
    private var requestLineStarted = false
    private var requestLineEnded = false
    /// How much of the head's final CRLF CRLF has been seen (0–4; 4: the head ended).
    private var headEnd = 0

    init(limit: Int) { self.limit = limit }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Over the limit already: reported once, the rest dropped.
        guard self.seen <= self.limit else { return }
        let buffer = Self.unwrapInboundIn(data)
        // Only the bytes within the limit count: a request line whose LF comes after it is too long.
        var headBytes: Int?
        if self.headEnd < 4, self.seen < self.limit {
            headBytes = self.scan(buffer.readableBytesView.prefix(self.limit - self.seen))
        }
        self.seen += buffer.readableBytes
        if self.seen > self.limit {
            if let headBytes, let head = buffer.getSlice(at: buffer.readerIndex, length: headBytes) {
                context.fireChannelRead(Self.wrapInboundOut(head))
            }
            context.fireErrorCaught(LimitExceeded(inRequestLine: !self.requestLineEnded))
            return
        }
        context.fireChannelRead(data)
    }

    /// Follows the request line's end and the head's (a few dozen bytes, then the headers once); returns
    /// how many of `bytes` belong to the head when it ends among them.
    private func scan(_ bytes: ByteBufferView.SubSequence) -> Int? {
        var count = 0
        for byte in bytes {
            count += 1
            let isLineEnd = byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r")
            guard self.requestLineStarted else {
                self.requestLineStarted = !isLineEnd
                continue
            }
            if byte == UInt8(ascii: "\n") { self.requestLineEnded = true }
            switch (self.headEnd, byte) {
            case (0, UInt8(ascii: "\r")), (2, UInt8(ascii: "\r")), (1, UInt8(ascii: "\n")), (3, UInt8(ascii: "\n")):
                self.headEnd += 1
            case (_, UInt8(ascii: "\r")):
                self.headEnd = 1
            case (_, _):
                self.headEnd = 0
            }
            if self.headEnd == 4 { return count }
        }
        return nil
    }
}

/// Catches what an HTTP decoder forwards when it is removed: bytes that came after the request or
/// response head.
final class LeftoverBytesCollector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private(set) var bytes: ByteBuffer?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = Self.unwrapInboundIn(data)
        if self.bytes == nil {
            self.bytes = buffer
        } else {
            self.bytes!.writeBuffer(&buffer)
        }
    }
}

@available(*, unavailable)
extension RequestBytesLimiter: Sendable {}

@available(*, unavailable)
extension LeftoverBytesCollector: Sendable {}
