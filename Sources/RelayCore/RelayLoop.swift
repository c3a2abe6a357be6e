import CRelayCore
import Frames
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One event loop of the relay core: one thread, one epoll instance, one listening socket (SO_REUSEPORT),
/// and everything a connection needs owned by the loop — the ``Slab`` of connection structs, the
/// ``BufferPool``, the ``TimerWheel``, the masking-key generator and the frame encoders. Nothing is shared
/// between loops, so nothing is locked or reference-counted per message (issue #15 part 2).
///
/// Sockets are edge-triggered (`EPOLLET`) and registered once for reading and writing; a read stops at
/// `EAGAIN`, at a short read (unless the peer hung up), or when the destination still owes bytes
/// (back-pressure: the read resumes when the destination drains).
final class RelayLoop: @unchecked Sendable {
    static let listenerToken = UInt64.max
    static let wakeToken = UInt64.max - 1
    static let upstreamBit: UInt64 = 1 << 63

    let configuration: RelayCoreConfiguration
    let upstreamAddress: sockaddr_in
    let epoll: Int32
    /// Commands from other threads (drain, stop, counters), signalled by its eventfd (``RelayControlQueue``).
    let control: RelayControlQueue
    /// The SO_REUSEPORT listener, -1 once closed (drain).
    var listener: Int32
    var slab: Slab<RelayConnection>
    var pool: BufferPool
    var wheel = TimerWheel(slotCount: 512)
    /// One generator per loop, refilled `maskingKeyBatchBytes` (4 KiB, 1,024 keys) per `getrandom(2)`.
    let keys: MaskingKeyGenerator
    var towardUpstream: FrameEncoder
    var towardClient = FrameEncoder(role: .server)
    /// The listener's TLS context (core22), nil for plain `ws://`.
    let tls: RelayTLSContext?
    /// Bytes of one upstream read: on a TLS listener, room is left in the pool buffer for the records'
    /// overhead, so sealing a read never grows the buffer.
    let upstreamReadSize: Int
    var stopping = false
    /// Draining: no listener, every connection owes its legs a Close 1001 (``RelayDrain``).
    var draining = false
    var backoff: AcceptBackoff
    /// Plain counters: this thread is their only writer (``RelayCounters``).
    var counters = RelayCounters()
    var closeCodes = CloseCodeCounts()
    /// Frames relayed through the batch entry points (core22; for tests and the profile).
    var batchedFrames = 0
    var thread = pthread_t()
    let edgeEvents = crelay_epollin | crelay_epollout | crelay_epollrdhup | crelay_epollet

    init(configuration: RelayCoreConfiguration, listener: Int32, upstream: sockaddr_in) throws(RelayCoreError) {
        self.configuration = configuration
        self.listener = listener
        self.upstreamAddress = upstream
        self.slab = Slab(capacity: configuration.maxConnectionsPerLoop)
        self.pool = BufferPool(bufferSize: configuration.bufferSize)
        self.keys = MaskingKeyGenerator(batchBytes: configuration.maskingKeyBatchBytes)
        self.tls = configuration.tls
        self.upstreamReadSize =
            configuration.tls == nil ? configuration.bufferSize : RelayTLS.plaintextRoom(bufferSize: configuration.bufferSize)
        self.towardUpstream = FrameEncoder(role: .client, keys: self.keys)
        self.backoff = AcceptBackoff(
            pauseTicks: UInt64(max(1, configuration.acceptPauseMilliseconds / configuration.tickMilliseconds))
        )
        let epoll = crelay_epoll_create()
        guard epoll >= 0 else { throw RelayCoreError(call: "epoll_create1", errno: errno) }
        self.epoll = epoll
        self.control = try RelayControlQueue()
        guard crelay_epoll_add(epoll, listener, crelay_epollin | crelay_epollet, Self.listenerToken) == 0,
            crelay_epoll_add(epoll, self.control.eventfd, crelay_epollin, Self.wakeToken) == 0
        else { throw RelayCoreError(call: "epoll_ctl", errno: errno) }
    }

    /// Runs the loop on a new thread.
    func start() {
        let context = Unmanaged.passRetained(self).toOpaque()
        pthread_create(
            &self.thread,
            nil,
            { context in
                let loop = Unmanaged<RelayLoop>.fromOpaque(context!).takeRetainedValue()
                loop.run()
                return nil
            },
            context
        )
    }

    /// Asks the loop to stop (any thread); ``join()`` waits for it.
    func stop() {
        self.control.post(.stop)
    }

    func join() { pthread_join(self.thread, nil) }

    func run() {
        let capacity = 256
        let datas = UnsafeMutablePointer<UInt64>.allocate(capacity: capacity)
        let events = UnsafeMutablePointer<UInt32>.allocate(capacity: capacity)
        defer {
            datas.deallocate()
            events.deallocate()
        }
        while !self.stopping {
            let timeout = self.wheel.count > 0 ? Int32(self.configuration.tickMilliseconds) : -1
            let count = crelay_epoll_wait(self.epoll, datas, events, Int32(capacity), timeout)
            if count < 0 {
                if errno == EINTR { continue }
                break
            }
            for index in 0..<Int(count) {
                self.dispatch(datas[index], events[index])
            }
            if self.wheel.count > 0 {
                let tick = self.currentTick()
                // The loop's own timers run after the wheel's turn: a resumed accept schedules handshake
                // deadlines, which the wheel cannot take while it is advancing (exclusive access).
                var loopTimers: UInt64 = 0
                self.wheel.advance(to: tick) { key in
                    if key & Self.upstreamBit != 0 {
                        loopTimers |= key & ~Self.upstreamBit
                    } else {
                        self.expire(Slab<RelayConnection>.Handle(packed: key), at: tick)
                    }
                }
                if loopTimers != 0 { self.loopTimers(loopTimers, at: tick) }
            }
            if self.drained { break }
        }
        for handle in self.slab.handles {
            self.closeAll(handle)
        }
        self.closeListener()
        close(self.epoll)
        self.control.end(with: self.snapshot())
    }

    private func dispatch(_ data: UInt64, _ events: UInt32) {
        if data == Self.listenerToken {
            self.acceptAll()
            return
        }
        if data == Self.wakeToken {
            self.runCommands()
            return
        }
        let handle = Slab<RelayConnection>.Handle(packed: data & ~Self.upstreamBit)
        guard let connection = self.slab.pointer(handle) else { return }
        let side: Side = data & Self.upstreamBit == 0 ? .client : .upstream
        self.handle(events, on: side, of: connection, handle)
        self.freeIfDone(handle, connection)
    }

    // MARK: time

    func currentTick() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &now)
        let milliseconds = UInt64(now.tv_sec) * 1000 + UInt64(now.tv_nsec) / 1_000_000
        return milliseconds / UInt64(self.configuration.tickMilliseconds)
    }

    func setDeadline(_ connection: UnsafeMutablePointer<RelayConnection>, _ handle: Slab<RelayConnection>.Handle, milliseconds: Int) {
        let deadline = self.currentTick() + UInt64(max(1, milliseconds / self.configuration.tickMilliseconds))
        connection.pointee.deadline = deadline
        self.wheel.schedule(handle.packed, at: deadline)
    }

    /// A connection's deadline fired: the connection ends unless it has no deadline any more or a later one (the wheel's
    /// entries are never cancelled; see ``TimerWheel``).
    private func expire(_ handle: Slab<RelayConnection>.Handle, at tick: UInt64) {
        guard let connection = self.slab.pointer(handle), connection.pointee.deadline != 0, connection.pointee.deadline <= tick
        else { return }
        self.closeAll(handle)
    }

    // MARK: accept and teardown

    func acceptAll() {
        while self.listener >= 0 {
            let fd = crelay_accept(self.listener)
            if fd < 0 {
                switch self.backoff.failed(errno: errno, now: self.currentTick()) {
                case .retry: continue
                case .done: return  // EAGAIN: the next connection raises a new edge
                case .pause(let until):
                    self.pauseAccepting(until: until)
                    return
                }
            }
            self.counters.accepted &+= 1
            Sockets.setNoDelay(fd)
            var engine: OpaquePointer?
            if let tls = self.tls {
                engine = tls.makeEngine()
                guard engine != nil else {
                    close(fd)
                    continue
                }
            }
            guard let handle = self.slab.insert(RelayConnection(client: fd, limits: self.configuration.frameLimits, tls: engine)) else {
                if let engine { RelayTLS.free(engine) }
                close(fd)  // full: refused at once (a real gateway answers 503)
                self.counters.refusedFull &+= 1
                continue
            }
            _ = crelay_epoll_add(self.epoll, fd, self.edgeEvents, handle.packed)
            self.setDeadline(self.slab.pointer(handle)!, handle, milliseconds: self.configuration.handshakeTimeoutMilliseconds)
        }
    }

    /// Closes a leg's socket (epoll forgets it with the descriptor) and returns its pending buffer.
    func closeLeg(_ side: Side, of connection: UnsafeMutablePointer<RelayConnection>) {
        let fd = connection.pointee[leg: side].fd
        guard fd >= 0 else { return }
        if side == .client, let engine = connection.pointee.tls {
            self.sendCloseNotify(engine, connection)
        }
        close(fd)
        connection.pointee[leg: side].fd = -1
        connection.pointee[leg: side].readable = false
        if let pending = connection.pointee[leg: side].pending.take() {
            self.pool.give(pending)
        }
    }

    func closeAll(_ handle: Slab<RelayConnection>.Handle) {
        guard let connection = self.slab.pointer(handle) else { return }
        self.closeLeg(.client, of: connection)
        self.closeLeg(.upstream, of: connection)
        self.freeIfDone(handle, connection)
    }

    private func freeIfDone(_ handle: Slab<RelayConnection>.Handle, _ connection: UnsafeMutablePointer<RelayConnection>) {
        guard connection.pointee.client.fd < 0, connection.pointee.upstream.fd < 0 else { return }
        if let early = connection.pointee.clientEarly.take() { self.pool.give(early) }
        if let head = connection.pointee.upstreamHead.take() { self.pool.give(head) }
        if let engine = connection.pointee.tls.take() { RelayTLS.free(engine) }
        self.slab.remove(handle)
    }
}
