import NIOCore
import Testing

@testable import Gateway

/// Token buckets and the per-direction rate limiter with exact arithmetic (DESIGN §5): the time is
/// passed in, nothing sleeps, and every instant asserted is exact to the nanosecond.
@Suite struct TokenBucketTests {
    private let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    @Test func aFullBucketGivesItsBurstThenRefillsAtItsRate() {
        var bucket = TokenBucket(rate: 10, burst: 3, now: self.t0)
        for _ in 0..<3 {
            #expect(bucket.availableAt(cost: 1, now: self.t0) == nil)
            bucket.take(1)
        }
        // Empty: one token every 100 ms.
        #expect(bucket.availableAt(cost: 1, now: self.t0) == self.t0 + .milliseconds(100))
        #expect(bucket.availableAt(cost: 1, now: self.t0 + .milliseconds(99)) == self.t0 + .milliseconds(100))
        #expect(bucket.availableAt(cost: 1, now: self.t0 + .milliseconds(100)) == nil)
        bucket.take(1)
        #expect(bucket.tokens(at: self.t0 + .milliseconds(100)) == 0)
        // Never more than the burst, however long it waits.
        #expect(bucket.tokens(at: self.t0 + .seconds(3600)) == 3)
    }

    @Test func refillIsExactForRatesThatDoNotDivideASecond() {
        // 3 tokens/s: a token every 333,333,333.33… ns, so the first comes at ⌈10⁹/3⌉ ns.
        var bucket = TokenBucket(rate: 3, burst: 2, now: self.t0)
        bucket.take(2)
        #expect(bucket.availableAt(cost: 1, now: self.t0) == self.t0 + .nanoseconds(333_333_334))
        #expect(bucket.availableAt(cost: 1, now: self.t0 + .nanoseconds(333_333_333)) == self.t0 + .nanoseconds(333_333_334))
        #expect(bucket.availableAt(cost: 1, now: self.t0 + .nanoseconds(333_333_334)) == nil)
        bucket.take(1)
        // The remainder carries: the second token comes at ⌈2 × 10⁹/3⌉ ns, not at 2 × ⌈10⁹/3⌉.
        #expect(bucket.availableAt(cost: 1, now: self.t0 + .nanoseconds(333_333_334)) == self.t0 + .nanoseconds(666_666_667))
        // With a burst of 1 the bucket is full at the first token and the remainder is capped away.
        var capped = TokenBucket(rate: 3, burst: 1, now: self.t0)
        capped.take(1)
        #expect(capped.availableAt(cost: 1, now: self.t0 + .nanoseconds(333_333_334)) == nil)
        capped.take(1)
        #expect(capped.availableAt(cost: 1, now: self.t0 + .nanoseconds(333_333_334)) == self.t0 + .nanoseconds(666_666_668))
    }

    @Test func aCostAboveTheBurstPassesWhenFullAndLeavesDebt() {
        // 1,000 bytes/s, burst 1,000: a 4,000-byte frame passes when the bucket is full…
        var bucket = TokenBucket(rate: 1000, burst: 1000, now: self.t0)
        #expect(bucket.availableAt(cost: 4000, now: self.t0) == nil)
        bucket.take(4000)
        #expect(bucket.tokens(at: self.t0) == -3000)
        // …and the next byte waits until the debt is paid: 3 s plus 1 ms for its own token.
        #expect(bucket.availableAt(cost: 1, now: self.t0) == self.t0 + .milliseconds(3001))
        // A second big frame waits for a full bucket again: 4 s.
        #expect(bucket.availableAt(cost: 4000, now: self.t0) == self.t0 + .seconds(4))
    }

    @Test func timeGoingBackwardsAddsNothing() {
        var bucket = TokenBucket(rate: 10, burst: 1, now: self.t0)
        bucket.take(1)
        let earlier = self.t0 - .seconds(5)
        #expect(bucket.tokens(at: earlier) == 0)
        #expect(bucket.availableAt(cost: 1, now: earlier) == earlier + .milliseconds(100))
        #expect(bucket.availableAt(cost: 1, now: self.t0 + .milliseconds(100)) == nil)
    }

    // MARK: The per-direction limiter

    @Test func throttleReturnsTheExactInstantTheFrameMayGo() {
        var limits = GatewayConfiguration.DirectionRateLimits()
        limits.messages = .init(perSecond: 2, burst: 2)
        limits.bytes = .init(perSecond: 1000, burst: 1000)
        limits.controlFrames = .init(perSecond: 1, burst: 1)
        limits.action = .throttle
        var limiter = RateLimiter(limits, now: self.t0)
        #expect(limiter.dataFrame(startsMessage: true, payloadLength: 100, now: self.t0) == .pass)
        #expect(limiter.dataFrame(startsMessage: true, payloadLength: 100, now: self.t0) == .pass)
        // A continuation takes bytes only.
        #expect(limiter.dataFrame(startsMessage: false, payloadLength: 700, now: self.t0) == .pass)
        // A third message: the message bucket refills in 500 ms; bytes (100 left) would allow it.
        #expect(limiter.dataFrame(startsMessage: true, payloadLength: 100, now: self.t0) == .throttle(until: self.t0 + .milliseconds(500), .messages))
        // A refused frame took nothing: at 500 ms it passes, with 600 byte tokens back.
        #expect(limiter.dataFrame(startsMessage: true, payloadLength: 600, now: self.t0 + .milliseconds(500)) == .pass)
        // Now bytes decide: 100 needed, 0 left → 100 ms.
        #expect(
            limiter.dataFrame(startsMessage: false, payloadLength: 100, now: self.t0 + .milliseconds(500))
                == .throttle(until: self.t0 + .milliseconds(600), .bytes)
        )
        // When both are short, the later instant wins.
        #expect(
            limiter.dataFrame(startsMessage: true, payloadLength: 900, now: self.t0 + .milliseconds(600))
                == .throttle(until: self.t0 + .milliseconds(1400), .bytes)
        )
        #expect(limiter.controlFrame(now: self.t0) == .pass)
        #expect(limiter.controlFrame(now: self.t0) == .throttle(until: self.t0 + .seconds(1), .controlFrames))
    }

    @Test func closeRefusesAtTheFirstFrameOverTheLimit() {
        var limits = GatewayConfiguration.DirectionRateLimits()
        limits.messages = .init(perSecond: 100, burst: 100)
        limits.controlFrames = .init(perSecond: 100, burst: 100)
        limits.action = .close
        var limiter = RateLimiter(limits, now: self.t0)
        for index in 0..<100 {
            #expect(limiter.dataFrame(startsMessage: true, payloadLength: 10, now: self.t0) == .pass, "message \(index)")
        }
        #expect(limiter.dataFrame(startsMessage: true, payloadLength: 10, now: self.t0) == .close(.messages))
        // 10 ms later exactly one more token is back.
        #expect(limiter.dataFrame(startsMessage: true, payloadLength: 10, now: self.t0 + .milliseconds(10)) == .pass)
        #expect(limiter.dataFrame(startsMessage: true, payloadLength: 10, now: self.t0 + .milliseconds(10)) == .close(.messages))
        for _ in 0..<100 { _ = limiter.controlFrame(now: self.t0) }
        #expect(limiter.controlFrame(now: self.t0) == .close(.controlFrames))
    }

    @Test func aDirectionWithoutLimitsIsInactive() {
        var limits = GatewayConfiguration.DirectionRateLimits()
        limits.controlFrames = nil
        #expect(!RateLimiter(limits, now: self.t0).isActive)
        #expect(RateLimiter(GatewayConfiguration.DirectionRateLimits(), now: self.t0).isActive, "control frames are limited by default")
    }
}
