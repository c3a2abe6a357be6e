import NIOCore

/// One HTTP/2 connection's ``HTTP2ConnectionBudget``, shared by its streams' codecs (all on the
/// connection's event loop): the codecs report what they queue and what left, and this performs the
/// budget's answers on them (hold or resume reading, reset the stream that holds the most).
final class HTTP2ConnectionMemory {
    private var budget: HTTP2ConnectionBudget
    private var streams: [Int: HTTP2WebSocketStreamCodec] = [:]
    private var nextStream = 0

    init(limits: GatewayConfiguration.HTTP2Limits) {
        self.budget = HTTP2ConnectionBudget(limit: limits.maxConnectionBuffer, streamWindow: limits.streamWindow)
    }

    /// Whether the streams hold their reads (no new flow-control credit for the client).
    var paused: Bool { self.budget.paused }
    var buffered: Int { self.budget.buffered }
    var peak: Int { self.budget.peak }
    /// DATA queued toward the client, not yet written to the socket.
    var queued: Int { self.budget.queuedTotal }

    /// A stream's codec joins (its window counts from now on); the answer is its key.
    func register(_ codec: HTTP2WebSocketStreamCodec) -> Int {
        self.nextStream += 1
        let stream = self.nextStream
        self.streams[stream] = codec
        self.perform(self.budget.streamOpened(stream))
        return stream
    }

    func unregister(_ stream: Int) {
        guard self.streams.removeValue(forKey: stream) != nil else { return }
        self.perform(self.budget.streamClosed(stream))
    }

    func queued(_ bytes: Int, on stream: Int) {
        self.perform(self.budget.queued(bytes, on: stream))
    }

    func sent(_ bytes: Int, on stream: Int) {
        self.perform(self.budget.sent(bytes, on: stream))
    }

    private func perform(_ action: HTTP2ConnectionBudget.Action) {
        switch action {
        case .none, .pauseReading:
            // Holding reads is each codec's own check of `paused` when its relay asks to read.
            break
        case .resumeReading:
            for codec in self.streams.values { codec.resumeReading() }
        case .reset(let stream):
            self.streams.removeValue(forKey: stream)?.resetOverBudget()
            self.perform(self.budget.check())
        }
    }
}

@available(*, unavailable)
extension HTTP2ConnectionMemory: Sendable {}
