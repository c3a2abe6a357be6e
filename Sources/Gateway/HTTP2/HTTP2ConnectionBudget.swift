/// The memory an HTTP/2 connection holds for its streams (issue #16, `limits.http2.max_connection_buffer`),
/// as a pure state machine: ``HTTP2ConnectionMemory`` tells it what the streams do and performs what it
/// answers.
///
/// Counted: each open stream's receive window (credit granted to the client: DATA it may place in
/// swift-nio-http2's buffers before the relay reads it, RFC 9113 §5.2) and the DATA each stream queued
/// toward the client that has not left for the socket yet. The configuration keeps the steady state
/// within the budget (windows and outbound watermarks are derived from it); what can still push past it
/// is the relay writing a read's worth past a stream's watermark on many streams of a client that does
/// not read. Then, in order:
/// - over the budget: stop reading every stream (no new flow-control credit, so a client that keeps
///   sending is held by its windows) until the total is back under three quarters of it;
/// - over the budget by a quarter more: the stream with the most queued toward the client is reset
///   (`RST_STREAM ENHANCE_YOUR_CALM`, RFC 9113 §7): the other streams and the connection live on.
struct HTTP2ConnectionBudget {
    enum Action: Equatable {
        case none
        case pauseReading
        case resumeReading
        /// Reset this stream (its queued bytes are no longer counted).
        case reset(Int)
    }

    let limit: Int
    /// The receive window each open stream was granted.
    let streamWindow: Int
    private(set) var openStreams = 0
    private(set) var queued: [Int: Int] = [:]
    private(set) var queuedTotal = 0
    private(set) var paused = false
    /// The most the connection held at once (tests and the design notes' measurements).
    private(set) var peak = 0

    init(limit: Int, streamWindow: Int) {
        self.limit = limit
        self.streamWindow = streamWindow
    }

    /// What the connection holds or has promised to hold.
    var buffered: Int { self.openStreams * self.streamWindow + self.queuedTotal }

    private var resumeBelow: Int { self.limit - self.limit / 4 }
    private var resetAbove: Int { self.limit + self.limit / 4 }

    mutating func streamOpened(_ stream: Int) -> Action {
        self.openStreams += 1
        self.queued[stream] = 0
        return self.evaluate()
    }

    mutating func streamClosed(_ stream: Int) -> Action {
        guard let bytes = self.queued.removeValue(forKey: stream) else { return .none }
        self.openStreams -= 1
        self.queuedTotal -= bytes
        return self.evaluate()
    }

    /// `bytes` of DATA written on `stream`, not yet sent.
    mutating func queued(_ bytes: Int, on stream: Int) -> Action {
        guard let current = self.queued[stream] else { return .none }
        self.queued[stream] = current + bytes
        self.queuedTotal += bytes
        return self.evaluate()
    }

    /// `bytes` queued on `stream` left (written to the socket, or failed with the stream).
    mutating func sent(_ bytes: Int, on stream: Int) -> Action {
        guard let current = self.queued[stream] else { return .none }
        let sent = min(bytes, current)
        self.queued[stream] = current - sent
        self.queuedTotal -= sent
        return self.evaluate()
    }

    /// The next action after one was performed (a reset may be followed by another, or by a resume).
    mutating func check() -> Action { self.evaluate() }

    private mutating func evaluate() -> Action {
        let buffered = self.buffered
        self.peak = max(self.peak, buffered)
        if buffered > self.resetAbove, let (stream, bytes) = self.queued.max(by: { $0.value < $1.value }), bytes > 0 {
            // Forget the stream now: its pending writes fail with it and report nothing more.
            self.queued[stream] = nil
            self.openStreams -= 1
            self.queuedTotal -= bytes
            return .reset(stream)
        }
        if !self.paused, buffered > self.limit {
            self.paused = true
            return .pauseReading
        }
        if self.paused, buffered <= self.resumeBelow {
            self.paused = false
            return .resumeReading
        }
        return .none
    }
}
