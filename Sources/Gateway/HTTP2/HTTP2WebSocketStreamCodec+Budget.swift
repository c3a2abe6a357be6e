import NIOCore
import NIOHTTP2

/// How a stream's DATA toward the client is counted in its connection's budget (``HTTP2ConnectionMemory``)
/// without a promise and a callback per DATA frame (an allocation each on the h2 path).
///
/// A write counts as queued at once. It counts out once swift-nio-http2 is done with it: written past the
/// client's windows toward the socket, or failed with the stream. A stream's writes are done in the order
/// they were written (swift-nio-http2 sends a stream's DATA in order and fails what is left when the stream
/// ends; the socket completes its writes in order), so the promise of a batch's last write tells when the
/// whole batch is done. The codec holds the last write since the flush until the flush (the stream channel sends
/// nothing before its flush anyway), then writes it with the batch's promise: one promise per flush, the
/// relay's own when it gave one. The batches in flight are counted out in order as their promises complete.
extension HTTP2WebSocketStreamCodec {
    /// Counts `buffer` as queued and holds it as the batch's last write; the one held so far goes on
    /// with its own promise (if any).
    func writeCounted(_ buffer: ByteBuffer, promise: EventLoopPromise<Void>?, context: ChannelHandlerContext) {
        if let held = self.heldWrite {
            context.write(Self.wrapOutboundOut(.data(.init(data: .byteBuffer(held.buffer)))), promise: held.promise)
        }
        self.heldWrite = (buffer, promise)
        self.batchBytes += buffer.readableBytes
        // Last: over the budget this may reset this stream (which drops the held write).
        if let key = self.memoryKey { self.memory?.queued(buffer.readableBytes, on: key) }
    }

    /// Writes the held write with the promise whose completion counts the batch out.
    func writeHeldWrite(context: ChannelHandlerContext) {
        guard let held = self.heldWrite else { return }
        self.heldWrite = nil
        let done = held.promise ?? context.eventLoop.makePromise()
        self.batchesInFlight.append(self.batchBytes)
        self.batchBytes = 0
        done.futureResult.assumeIsolated().whenComplete { [self] _ in self.batchDone() }
        context.write(Self.wrapOutboundOut(.data(.init(data: .byteBuffer(held.buffer)))), promise: done)
    }

    /// The oldest batch in flight left swift-nio-http2 (or failed with the stream).
    private func batchDone() {
        guard let bytes = self.batchesInFlight.popFirst(), let key = self.memoryKey else { return }
        self.memory?.sent(bytes, on: key)
    }

    /// The stream ends or was reset with a write still held: it fails (its bytes leave the budget with
    /// the stream).
    func dropHeldWrite() {
        guard let held = self.heldWrite else { return }
        self.heldWrite = nil
        self.batchBytes = 0
        held.promise?.fail(ChannelError.ioOnClosedChannel)
    }
}
