import CRelayCore
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What another thread asks of a loop (issue #15 part 2, "Operations"): the only way into a running loop.
enum RelayCommand: Sendable {
    /// Stop accepting, give every connection a Close 1001 at its next message boundary, and force-close
    /// what is left `milliseconds` later; the loop ends when no connection is left.
    case drain(milliseconds: Int)
    /// End the loop now: every connection is closed (TCP), no Close frames.
    case stop
    /// Answer with the loop's counters (on the loop's thread, between two events).
    case snapshot(@Sendable (RelayCounters) -> Void)
}

/// The queue of ``RelayCommand``s into one loop, signalled by an `eventfd` registered in the loop's epoll
/// (no pipe, one descriptor; several posts between two waits are one wake-up). Posting takes the lock and
/// writes the eventfd; the loop takes every queued command at once when the eventfd is readable. Once the
/// loop has ended, a post is refused (`false`) and a snapshot is answered from the last counters, so no
/// caller waits on a loop that is gone.
///
/// The lock is taken per command, never per message: counters live in the loop as plain integers and are
/// only copied out by a snapshot.
final class RelayControlQueue: Sendable {
    private struct State {
        var commands: [RelayCommand] = []
        var ended = false
        var last = RelayCounters()
    }

    /// The eventfd the loop registers in its epoll (non-blocking, close-on-exec).
    let eventfd: Int32
    private let state = Mutex(State())

    init() throws(RelayCoreError) {
        let fd = crelay_eventfd()
        guard fd >= 0 else { throw RelayCoreError(call: "eventfd", errno: errno) }
        self.eventfd = fd
    }

    deinit { close(self.eventfd) }

    /// Queues `command` and wakes the loop; `false` when the loop has ended (a snapshot is then answered
    /// here with its last counters).
    @discardableResult
    func post(_ command: RelayCommand) -> Bool {
        let last: RelayCounters? = self.state.withLock { state in
            guard !state.ended else { return state.last }
            state.commands.append(command)
            return nil
        }
        if let last {
            if case .snapshot(let reply) = command { reply(last) }
            return false
        }
        var one: UInt64 = 1
        _ = write(self.eventfd, &one, 8)
        return true
    }

    /// On the loop: clears the eventfd and takes every queued command, oldest first.
    func take() -> [RelayCommand] {
        var count: UInt64 = 0
        _ = read(self.eventfd, &count, 8)
        return self.state.withLock { state in
            defer { state.commands = [] }
            return state.commands
        }
    }

    /// On the loop, as it ends: later posts are refused; snapshots still queued (and later ones) are
    /// answered with `counters`.
    func end(with counters: RelayCounters) {
        let orphans = self.state.withLock { state in
            state.ended = true
            state.last = counters
            defer { state.commands = [] }
            return state.commands
        }
        for case .snapshot(let reply) in orphans { reply(counters) }
    }
}

/// Counters of one loop, or of all of them summed (``RelayCore/counters()``). Plain integers on the loop
/// (the loop's thread is their only writer), copied out through the control queue on request: no atomic,
/// lock or allocation per message (issue #15, step 5 "Metrics": per-loop plain counters aggregated by the
/// control plane).
public struct RelayCounters: Sendable, Equatable {
    /// Connections accepted (TCP).
    public var accepted: UInt64 = 0
    /// Connections held when the snapshot was taken (in any phase, handshake included).
    public var active = 0
    /// Data messages (complete, all fragments) and their frame bytes (headers included, as written),
    /// client → upstream and upstream → client.
    public var messagesToUpstream: UInt64 = 0
    public var messagesToClient: UInt64 = 0
    public var bytesToUpstream: UInt64 = 0
    public var bytesToClient: UInt64 = 0
    /// Close frames written toward either leg (relayed or the gateway's own), by status code; 1005 for a
    /// Close without a code (RFC 6455 §7.1.5), 0 for any code outside 1000–4999.
    public var closesByCode: [UInt16: UInt64] = [:]
    /// Upgrades refused: 400 (the client's head), 502 (the upstream), 503 (draining).
    public var refusedBadRequest: UInt64 = 0
    public var refusedBadGateway: UInt64 = 0
    public var refusedDraining: UInt64 = 0
    /// Connections closed at once because the loop's slab was full.
    public var refusedFull: UInt64 = 0
    /// Times the listener stopped accepting after `EMFILE`/`ENFILE`/`ENOBUFS`/`ENOMEM` (``AcceptBackoff``).
    public var acceptPauses: UInt64 = 0
    /// Connections force-closed at the drain deadline.
    public var drainForced: UInt64 = 0

    public init() {}

    /// `self` plus `other`, field by field (the sum over loops).
    public func adding(_ other: RelayCounters) -> RelayCounters {
        var sum = self
        sum.accepted += other.accepted
        sum.active += other.active
        sum.messagesToUpstream += other.messagesToUpstream
        sum.messagesToClient += other.messagesToClient
        sum.bytesToUpstream += other.bytesToUpstream
        sum.bytesToClient += other.bytesToClient
        sum.closesByCode.merge(other.closesByCode, uniquingKeysWith: +)
        sum.refusedBadRequest += other.refusedBadRequest
        sum.refusedBadGateway += other.refusedBadGateway
        sum.refusedDraining += other.refusedDraining
        sum.refusedFull += other.refusedFull
        sum.acceptPauses += other.acceptPauses
        sum.drainForced += other.drainForced
        return sum
    }
}

/// Close frames by code as the loop counts them: a fixed table for 1000–1015 (the registered codes) and
/// one slot each for 3000–4999 (registered and private codes: one bucket each, under 3000 and 4000) and
/// anything else, allocated once per loop; counting one is an index and an add.
struct CloseCodeCounts {
    private var counts = [UInt64](repeating: 0, count: 19)

    mutating func count(_ code: UInt16) {
        self.counts[Self.slot(code)] &+= 1
    }

    static func slot(_ code: UInt16) -> Int {
        switch code {
        case 1000...1015: return Int(code - 1000)
        case 3000...3999: return 16
        case 4000...4999: return 17
        default: return 18
        }
    }

    /// As a dictionary of the codes seen (built on request, off the loop's hot path).
    var byCode: [UInt16: UInt64] {
        var result: [UInt16: UInt64] = [:]
        for (slot, count) in self.counts.enumerated() where count > 0 {
            let code: UInt16 = slot < 16 ? 1000 + UInt16(slot) : slot == 16 ? 3000 : slot == 17 ? 4000 : 0
            result[code] = count
        }
        return result
    }
}

/// SIGTERM and SIGINT as data, for an executable that drains on them (`wsgate-core`): both are blocked in
/// the calling thread — create this before ``RelayCore`` starts its loops, whose threads inherit the mask —
/// and read from a `signalfd(2)`, so no work runs in a signal handler.
public struct TerminationSignals: Sendable {
    private let fd: Int32

    public init() throws(RelayCoreError) {
        let fd = crelay_termination_signalfd()
        guard fd >= 0 else { throw RelayCoreError(call: "signalfd", errno: errno) }
        self.fd = fd
    }

    /// Blocks until SIGTERM or SIGINT arrives; returns its number (-1 if the read failed).
    public func wait() -> Int32 {
        crelay_read_signal(self.fd)
    }
}
