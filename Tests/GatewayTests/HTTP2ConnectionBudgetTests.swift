import Testing

@testable import Gateway

/// `limits.http2.max_connection_buffer` as a pure state machine (issue #16): each open stream's window
/// plus the DATA queued toward the client; over the budget reads are held, a quarter past it the stream
/// holding the most is reset.
@Suite struct HTTP2ConnectionBudgetTests {
    /// A 64 KiB budget whose streams got 16 KiB windows (two streams: 32 KiB of windows).
    static func budget() -> HTTP2ConnectionBudget {
        var budget = HTTP2ConnectionBudget(limit: 64 * 1024, streamWindow: 16 * 1024)
        #expect(budget.streamOpened(1) == .none && budget.streamOpened(2) == .none)
        return budget
    }

    @Test func windowsAndQueuedDataAreCountedUntilTheyLeave() {
        var budget = Self.budget()
        #expect(budget.buffered == 32 * 1024)
        #expect(budget.queued(10_000, on: 1) == .none)
        #expect(budget.buffered == 32 * 1024 + 10_000)
        #expect(budget.sent(4_000, on: 1) == .none)
        #expect(budget.buffered == 32 * 1024 + 6_000)
        // A stream that closes takes its window and what it still had queued with it.
        #expect(budget.streamClosed(1) == .none)
        #expect(budget.buffered == 16 * 1024)
        // Late completions of its writes count for nothing.
        #expect(budget.sent(6_000, on: 1) == .none && budget.queued(1, on: 1) == .none)
        #expect(budget.buffered == 16 * 1024)
        #expect(budget.peak == 32 * 1024 + 10_000)
    }

    @Test func overTheBudgetReadsAreHeldUntilThreeQuartersOfIt() {
        var budget = Self.budget()
        #expect(budget.queued(32 * 1024, on: 1) == .none, "exactly the budget is within it")
        #expect(budget.queued(1, on: 2) == .pauseReading)
        #expect(budget.paused)
        #expect(budget.queued(1_000, on: 2) == .none, "paused once")
        // Still above three quarters (48 KiB): held.
        #expect(budget.sent(10 * 1024, on: 1) == .none && budget.paused)
        #expect(budget.sent(10 * 1024, on: 1) == .resumeReading)
        #expect(!budget.paused)
    }

    @Test func aQuarterPastTheBudgetTheStreamHoldingTheMostIsReset() {
        var budget = Self.budget()
        #expect(budget.queued(20 * 1024, on: 1) == .none)
        #expect(budget.queued(20 * 1024, on: 2) == .pauseReading)
        // 32 + 20 + 28 = 80 KiB: the limit and a quarter; one byte more resets stream 2 (28 KiB queued).
        #expect(budget.queued(8 * 1024, on: 2) == .none)
        #expect(budget.queued(1, on: 2) == .reset(2))
        #expect(budget.buffered == 16 * 1024 + 20 * 1024)
        // Then the connection is back under three quarters: reads resume.
        #expect(budget.check() == .resumeReading)
        // The reset stream's own close and late completions change nothing.
        #expect(budget.streamClosed(2) == .none && budget.sent(28 * 1024, on: 2) == .none)
        #expect(budget.buffered == 16 * 1024 + 20 * 1024)
    }
}
