import NIOCore

/// The token buckets of one direction of one connection (DESIGN §5) and the decision at each frame
/// boundary. A pure value: the relay passes the time in and performs the verdict.
///
/// Costs: a data frame that starts a message takes one message token; every data frame takes its
/// declared payload length in byte tokens (known from its header, so a frame is admitted or not before
/// any of it is forwarded); every ping and pong takes one control token (the relay never limits Close). The buckets a frame needs are
/// checked together and charged together, so a refused frame takes nothing.
struct RateLimiter: Sendable {
    /// Which limit decided.
    enum Limit: String, Sendable, Hashable {
        case messages
        case bytes
        case controlFrames = "control_frames"
    }

    enum Verdict: Equatable, Sendable {
        case pass
        /// Stop reading the sender until `until`, then ask again.
        case throttle(until: NIODeadline, Limit)
        /// Close the sender with 1008.
        case close(Limit)
    }

    private var messages: TokenBucket?
    private var bytes: TokenBucket?
    private var controlFrames: TokenBucket?
    let action: GatewayConfiguration.RateLimitAction

    init(_ limits: GatewayConfiguration.DirectionRateLimits, now: NIODeadline) {
        self.messages = limits.messages.map { TokenBucket(rate: $0.perSecond, burst: $0.burst, now: now) }
        self.bytes = limits.bytes.map { TokenBucket(rate: $0.perSecond, burst: $0.burst, now: now) }
        self.controlFrames = limits.controlFrames.map { TokenBucket(rate: $0.perSecond, burst: $0.burst, now: now) }
        self.action = limits.action
    }

    /// Whether any limit is configured (a connection without any skips the checks).
    var isActive: Bool { self.messages != nil || self.bytes != nil || self.controlFrames != nil }

    /// Whether data frames are limited at all: with only `control_frames` (the default), the relay skips
    /// the check (and its clock read) for every data frame.
    var limitsDataFrames: Bool { self.messages != nil || self.bytes != nil }

    /// A data frame's header was read.
    mutating func dataFrame(startsMessage: Bool, payloadLength: Int, now: NIODeadline) -> Verdict {
        var latest: (NIODeadline, Limit)?
        if startsMessage, let at = self.messages?.availableAt(cost: 1, now: now) {
            latest = (at, .messages)
        }
        if let at = self.bytes?.availableAt(cost: payloadLength, now: now), at > (latest?.0 ?? .distantPast) {
            latest = (at, .bytes)
        }
        if let (at, limit) = latest { return self.refuse(until: at, limit) }
        if startsMessage { self.messages?.take(1) }
        self.bytes?.take(payloadLength)
        return .pass
    }

    /// Inflated payload bytes of a compressed message that the gateway transcodes, before they are
    /// forwarded (issue #10 item 6: the `bytes` limit counts what the receiver must handle, not wire
    /// bytes; the frame's header charged none). Checked and charged like a frame.
    mutating func inflatedBytes(_ count: Int, now: NIODeadline) -> Verdict {
        guard self.bytes != nil else { return .pass }
        if let at = self.bytes!.availableAt(cost: count, now: now) { return self.refuse(until: at, .bytes) }
        self.bytes!.take(count)
        return .pass
    }

    /// Inflated bytes of a compressed message forwarded verbatim: known only after they went out, so
    /// they are charged as a debt that the next frame waits out (the long-run rate holds).
    mutating func chargeInflatedBytes(_ count: Int, now: NIODeadline) {
        self.bytes?.refill(now: now)
        self.bytes?.take(count)
    }

    /// A ping or pong was read.
    mutating func controlFrame(now: NIODeadline) -> Verdict {
        if let at = self.controlFrames?.availableAt(cost: 1, now: now) { return self.refuse(until: at, .controlFrames) }
        self.controlFrames?.take(1)
        return .pass
    }

    private func refuse(until: NIODeadline, _ limit: Limit) -> Verdict {
        switch self.action {
        case .throttle: .throttle(until: until, limit)
        case .close: .close(limit)
        }
    }
}
