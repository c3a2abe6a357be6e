import NIOCore

/// A token bucket with exact integer arithmetic (DESIGN §5): `rate` tokens are added per second, up to
/// `burst`; a cost is taken at once.
///
/// Credit is kept in token-nanoseconds (tokens × 10⁹) in an `Int128`, so refilling for `n` nanoseconds
/// adds exactly `rate × n` and the instant a cost becomes affordable is computed exactly (rounded up to
/// the next nanosecond). No floating point, so tests can assert exact times.
///
/// A cost larger than `burst` could never be afforded under a strict rule; instead a cost may be taken
/// when the bucket holds `min(cost, burst)` tokens, and the bucket then goes into debt (negative credit)
/// that later costs wait out. The long-run rate is therefore exact whatever the sizes: a 4 MiB frame
/// through a 1 MiB/s bucket with a 1 MiB burst passes when the bucket is full and the next one waits
/// about 3 s more.
struct TokenBucket: Hashable, Sendable {
    /// Tokens added per second. At least 1.
    let rate: Int
    /// The most tokens the bucket holds. At least 1.
    let burst: Int
    /// Tokens × 10⁹; at most `burst × 10⁹`; negative while in debt.
    private(set) var credit: Int128
    /// When `credit` was last brought up to date.
    private(set) var updated: NIODeadline

    private static let nanosecondsPerSecond: Int128 = 1_000_000_000

    /// A full bucket at `now`.
    init(rate: Int, burst: Int, now: NIODeadline) {
        precondition(rate > 0 && burst > 0, "a token bucket needs a positive rate and burst")
        self.rate = rate
        self.burst = burst
        self.credit = Int128(burst) * Self.nanosecondsPerSecond
        self.updated = now
    }

    /// Whole tokens available now (rounded down; negative while in debt), for tests and logs.
    func tokens(at now: NIODeadline) -> Int128 {
        var copy = self
        copy.refill(now: now)
        return copy.credit >= 0
            ? copy.credit / Self.nanosecondsPerSecond
            : -((-copy.credit + Self.nanosecondsPerSecond - 1) / Self.nanosecondsPerSecond)
    }

    /// Adds what accrued since the last update, up to `burst`. Time never runs backwards here: an
    /// earlier `now` adds nothing.
    mutating func refill(now: NIODeadline) {
        guard now > self.updated else { return }
        let elapsed = Int128((now - self.updated).nanoseconds)
        let capacity = Int128(self.burst) * Self.nanosecondsPerSecond
        self.credit = min(capacity, self.credit + Int128(self.rate) * elapsed)
        self.updated = now
    }

    /// `nil` when `cost` can be taken at `now`; otherwise the first instant it can (exact, rounded up
    /// to a nanosecond). Takes nothing.
    mutating func availableAt(cost: Int, now: NIODeadline) -> NIODeadline? {
        self.refill(now: now)
        let needed = Int128(min(cost, self.burst)) * Self.nanosecondsPerSecond
        guard self.credit < needed else { return nil }
        let rate = Int128(self.rate)
        let wait = (needed - self.credit + rate - 1) / rate
        return now + .nanoseconds(Int64(clamping: wait))
    }

    /// Takes `cost` tokens (call it after ``availableAt(cost:now:)`` said yes); may leave debt.
    mutating func take(_ cost: Int) {
        self.credit -= Int128(cost) * Self.nanosecondsPerSecond
    }
}
