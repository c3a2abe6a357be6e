#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The pure rules of a loop's drain (issue #15 part 2, "Operations"; the gateway's drain in
/// docs/DESIGN-NOTES.md "Drain"), apart from the sockets so tests can drive them over bytes and ticks.
///
/// Each leg of a relayed connection gets a Close 1001 (Going Away, RFC 6455 §7.4.1) **on its own**, as soon
/// as the direction toward it is at a message boundary: never inside a frame (§5.4: a Close may only go
/// between frames) and, stricter than the RFC requires and than the gateway's frame boundary, never
/// inside a fragmented message either, so a message in flight when the drain starts reaches its
/// destination whole before the Close. A direction that never reaches a boundary is left to the drain
/// deadline.
enum RelayDrain {
    /// Whether the drain still owes `side` its Close: the leg is open and nothing (the other peer's
    /// Close, the gateway's own) has closed the direction toward it.
    static func closeOwed(toward side: Side, _ connection: RelayConnection) -> Bool {
        connection[leg: side].fd >= 0 && !connection[from: side.other].closePassed
    }

    /// Whether the Close owed to `side` can be written now: the direction toward `side` is between
    /// messages (no frame, header or fragmented message half relayed).
    static func closeReady(toward side: Side, _ connection: RelayConnection) -> Bool {
        let flow = connection[from: side.other]
        return closeOwed(toward: side, connection) && flow.parser.isBetweenMessages && !flow.wireMidFrame
    }

    /// The tick at which a deadline `milliseconds` after `now` fires: rounded up, so it never fires early
    /// (the loop's clock is counted in whole ticks), and at least one tick out.
    static func deadline(now: UInt64, milliseconds: Int, tickMilliseconds: Int) -> UInt64 {
        let ticks = (max(0, milliseconds) + tickMilliseconds - 1) / tickMilliseconds
        return now + UInt64(max(1, ticks))
    }
}

/// Accept back-off (RELIABILITY R-12, the gateway's `AcceptErrorPause`): when `accept` fails for want of a
/// resource (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`), the listener stops accepting for ``pauseTicks``
/// (it is taken out of the epoll set, so the waiting connections in its backlog raise no event), then is
/// registered again and accepts what waited. Without it an edge-triggered listener would be retried at
/// every new connection's edge and a level-triggered one in a busy loop; the connections wait in the
/// backlog instead and are accepted within one pause of descriptors being freed.
struct AcceptBackoff {
    /// What the accept loop does after `accept` returned -1.
    enum Step: Equatable {
        /// Try again at once (`EINTR`, `ECONNABORTED`: that connection is gone, the next may be there).
        case retry
        /// The backlog is empty (`EAGAIN`), or an error the next connection's edge retries.
        case done
        /// Stop accepting until the tick `until` (out of a resource).
        case pause(until: UInt64)
    }

    let pauseTicks: UInt64
    /// The tick the current pause ends, nil while accepting.
    private(set) var pausedUntil: UInt64?

    init(pauseTicks: UInt64) {
        self.pauseTicks = max(1, pauseTicks)
    }

    /// Whether `errno` is a resource shortage the listener should pause for.
    static func isShortage(_ errno: Int32) -> Bool {
        errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM
    }

    /// `accept` failed with `errno` at tick `now`.
    mutating func failed(errno: Int32, now: UInt64) -> Step {
        if errno == EINTR || errno == ECONNABORTED { return .retry }
        guard Self.isShortage(errno) else { return .done }
        let until = now + self.pauseTicks
        self.pausedUntil = until
        return .pause(until: until)
    }

    /// The wheel fired the resume at tick `now`: `true` when the pause is over (accept again).
    mutating func resume(now: UInt64) -> Bool {
        guard let until = self.pausedUntil, now >= until else { return false }
        self.pausedUntil = nil
        return true
    }
}
