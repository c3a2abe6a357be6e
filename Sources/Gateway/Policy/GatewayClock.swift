import NIOCore

/// Where policies get the time (STYLE P11): token buckets, per-IP handshake rates and keep-alive
/// deadlines read `now` from an injected clock, so their tests set the time exactly and never sleep.
protocol GatewayClock: Sendable {
    var now: NIODeadline { get }
}

/// The monotonic system clock (`NIODeadline.now()`, `CLOCK_MONOTONIC`).
struct SystemGatewayClock: GatewayClock {
    var now: NIODeadline { .now() }
}
