import CRelayCore
import Frames
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The loop's operations (issue #15 part 2, BENCHMARKS.md "core15" step 6): the commands of its
/// ``RelayControlQueue`` (drain, stop, counters), the drain itself, and the accept back-off. All of it runs
/// on the loop's thread, between two epoll events, so the connection structs are touched by one thread only.
extension RelayLoop {
    /// Timer-wheel keys of the loop itself (connection keys are slab handles, which never set bit 63); the
    /// low bits are flags, so the timers fired in one turn of the wheel are one word.
    static let drainDeadlineKey = upstreamBit | 1
    static let acceptResumeKey = upstreamBit | 2

    /// The eventfd fired: runs every queued command, oldest first.
    func runCommands() {
        for command in self.control.take() {
            switch command {
            case .drain(let milliseconds): self.beginDrain(milliseconds: milliseconds)
            case .stop: self.stopping = true
            case .snapshot(let reply): reply(self.snapshot())
            }
        }
    }

    /// The counters as of now (``RelayCounters/active`` is the slab's count).
    func snapshot() -> RelayCounters {
        var counters = self.counters
        counters.active = self.slab.count
        counters.closesByCode = self.closeCodes.byCode
        return counters
    }

    /// Timers of the loop itself fired (`fired`: the flag bits of ``drainDeadlineKey``, ``acceptResumeKey``).
    func loopTimers(_ fired: UInt64, at tick: UInt64) {
        if fired & Self.drainDeadlineKey & ~Self.upstreamBit != 0 {
            self.drainDeadlinePassed()
        }
        if fired & Self.acceptResumeKey & ~Self.upstreamBit != 0, self.backoff.resume(now: tick) {
            self.resumeAccepting()
        }
    }

    // MARK: drain

    /// Stops accepting (the listener is closed: new connections to this loop's SO_REUSEPORT socket are
    /// refused once every loop's is), asks every connection for its Close 1001, and arms the drain
    /// deadline on the wheel. A second drain changes nothing (the first deadline stands).
    func beginDrain(milliseconds: Int) {
        guard !self.draining else { return }
        self.draining = true
        self.closeListener()
        let now = self.currentTick()
        let deadline = RelayDrain.deadline(now: now, milliseconds: milliseconds, tickMilliseconds: self.configuration.tickMilliseconds)
        self.wheel.schedule(Self.drainDeadlineKey, at: deadline)
        for handle in self.slab.handles {
            // A connection already closing (a Close passed, a peer left or broke the framing) finishes as it
            // is, bounded by its close timeout and the drain deadline.
            guard let connection = self.slab.pointer(handle), connection.pointee.phase != .closing else { continue }
            connection.pointee.drainOwed = true
            // Connections still in their handshake get theirs when they reach the relay (`switchProtocols`);
            // a request head completed from now on is answered 503.
            if connection.pointee.phase == .relaying { self.continueDrain(connection) }
        }
    }

    /// Sends the Close 1001 owed to each leg whose direction is at a message boundary. Once neither leg is
    /// owed one, the close timeout bounds the peers' answers, as for any Close (a direction still inside a
    /// message is bounded by the drain deadline instead).
    func continueDrain(_ connection: UnsafeMutablePointer<RelayConnection>) {
        if RelayDrain.closeReady(toward: .upstream, connection.pointee) {
            self.sendClose(.goingAway, to: .upstream, connection)
        }
        if RelayDrain.closeReady(toward: .client, connection.pointee) {
            self.sendClose(.goingAway, to: .client, connection)
            // A client whose own Close came first (while its direction was closed) has both Closes now.
            if connection.pointee.fromClient.parser.isClosed { self.endAfterFlush(.client, connection) }
        }
        guard !RelayDrain.closeOwed(toward: .upstream, connection.pointee), !RelayDrain.closeOwed(toward: .client, connection.pointee)
        else { return }
        connection.pointee.drainOwed = false
        if connection.pointee.phase == .relaying {
            connection.pointee.phase = .closing
            self.armCloseTimeout(connection)
        }
    }

    /// The drain deadline: whatever is left is closed (TCP), and the loop ends.
    private func drainDeadlinePassed() {
        for handle in self.slab.handles {
            self.counters.drainForced &+= 1
            self.closeAll(handle)
        }
    }

    /// Whether the loop has drained: it ends once no connection is left.
    var drained: Bool { self.draining && self.slab.count == 0 }

    func closeListener() {
        guard self.listener >= 0 else { return }
        close(self.listener)  // epoll forgets it with the descriptor
        self.listener = -1
    }

    // MARK: accept back-off

    /// `accept` ran out of a resource: the listener leaves the epoll set until the wheel resumes it.
    func pauseAccepting(until tick: UInt64) {
        self.counters.acceptPauses &+= 1
        _ = crelay_epoll_del(self.epoll, self.listener)
        self.wheel.schedule(Self.acceptResumeKey, at: tick)
    }

    /// The pause is over: the listener is registered again and accepts what waited in its backlog (its
    /// readiness raised no edge while it was out of the set).
    private func resumeAccepting() {
        guard self.listener >= 0, !self.draining else { return }
        _ = crelay_epoll_add(self.epoll, self.listener, crelay_epollin | crelay_epollet, Self.listenerToken)
        self.acceptAll()
    }
}
