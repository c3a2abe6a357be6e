import NIOCore

/// The relay's transport over NIO: the two legs' `ChannelHandlerContext`s (``RelayHandler`` attaches
/// them) on one event loop, which keeps the timers. What `RelaySession` did with the contexts itself
/// before the boundary, call for call.
///
/// The contexts are held as retained `Unmanaged` references (taken at ``attach(_:context:)``, given
/// back at ``detach(_:)`` or deinit) and called through `_withUnsafeGuaranteedRef`: a call on the frame
/// path loads a pointer and calls, with no retain and release around it (an optional strong property
/// loaded per call would be retained each time).
/// `detach` comes from `handlerRemoved`, which NIO calls on a later turn of the loop than any close, so
/// the context outlives every call made through it here.
final class NIORelayTransport: RelayTransport {
    let eventLoop: any EventLoop
    private var legs = PerSide<Unmanaged<ChannelHandlerContext>?>(nil)
    private var timers = RelayTimerSlots<ArmedTimer>()
    /// How many slots of ``timers`` are armed.
    private var armedCount = 0
    /// Arming order, so timers due at the same instant fire in the order they were armed (as NIO's
    /// scheduled tasks did).
    private var nextOrder: UInt32 = 0
    /// NIO callbacks pending for the timers: one at the earliest deadline at least, and others that
    /// were the earliest when armed (cancelling one scans the loop's whole queue, so a callback that
    /// turned late is left to fire for nothing rather than cancelled, up to three).
    private var callbacks = PendingCallbacks()
    /// The session, held while a timer is armed (the scheduled closures held it before).
    private var relay: Relay<NIORelayTransport>?
    private var firing = false
    private let allocator = ByteBufferAllocator()

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    deinit {
        self.legs.client?.release()
        self.legs.upstream?.release()
    }

    var contexts: PerSide<ChannelHandlerContext?> {
        PerSide(client: self.legs.client?.takeUnretainedValue(), upstream: self.legs.upstream?.takeUnretainedValue())
    }

    func attach(_ side: Side, context: ChannelHandlerContext) {
        self.legs[side]?.release()
        self.legs[side] = Unmanaged.passRetained(context)
    }

    /// `side`'s handler left its pipeline (its channel closed): the transport lets go of its context
    /// (the context holds the handler, which holds the session, which holds this transport).
    func detach(_ side: Side) {
        self.legs[side]?.release()
        self.legs[side] = nil
    }

    @inline(__always)
    func isAttached(_ side: Side) -> Bool {
        self.legs[side] != nil
    }

    @inline(__always)
    func write(_ buffer: ByteBuffer, to side: Side) {
        self.legs[side]?._withUnsafeGuaranteedRef { $0.write(NIOAny(buffer), promise: nil) }
    }

    @inline(__always)
    func flush(_ side: Side) {
        self.legs[side]?._withUnsafeGuaranteedRef { $0.flush() }
    }

    func writeAndFlush(_ buffer: ByteBuffer, to side: Side) {
        self.legs[side]?._withUnsafeGuaranteedRef { $0.writeAndFlush(NIOAny(buffer), promise: nil) }
    }

    /// A strong reference for the call (once per leg, not per frame): the close runs the pipeline's
    /// `channelInactive` and more. NIO removes the handlers, and so calls ``detach(_:)``, only on a later
    /// turn of the loop ("the user's code may still traverse the pipeline"), so the guaranteed references
    /// of the other calls stay valid for their length.
    func close(_ side: Side) {
        guard let context = self.legs[side]?.takeUnretainedValue() else { return }
        context.close(promise: nil)
    }

    func read(_ side: Side) {
        self.legs[side]?._withUnsafeGuaranteedRef { $0.read() }
    }

    @inline(__always)
    func isWritable(_ side: Side) -> Bool {
        self.legs[side]?._withUnsafeGuaranteedRef { $0.channel.isWritable } ?? false
    }

    func buffer(capacity: Int) -> ByteBuffer {
        self.allocator.buffer(capacity: capacity)
    }

    /// The event loop's clock (virtual time on an `EmbeddedEventLoop`, so idle and keep-alive tests are
    /// exact).
    var now: NIODeadline { self.eventLoop.now }

    /// NIO scheduled callbacks at the connection's earliest deadline, instead of a `scheduleTask` per
    /// timer: a callback whose handler is a reference allocates nothing, where each task took a promise
    /// and four closures (~5 mallocs), and most timers (idle, keep-alive) are armed later than a
    /// callback already pending, which then costs no call into the loop at all.
    func schedule(_ timer: RelayTimer, at deadline: NIODeadline, for relay: Relay<NIORelayTransport>) {
        if self.timers[timer] == nil { self.armedCount += 1 }
        self.timers[timer] = ArmedTimer(deadline: deadline, order: self.nextOrder, timer: timer)
        self.nextOrder &+= 1
        self.relay = relay
        if !self.firing { self.armCallback(at: deadline) }
    }

    func cancel(_ timer: RelayTimer) {
        // By slot, as before: `.grace` of either side cancels the one grace timer.
        guard self.timers[timer] != nil else { return }
        self.timers[timer] = nil
        self.armedCount -= 1
        if self.armedCount == 0, !self.firing { self.stopCallbacks() }
    }

    /// Nothing left to fire: the loop lets go of this transport (and the session) now, not at a far
    /// deadline.
    private func stopCallbacks() {
        for index in PendingCallbacks.indices {
            self.callbacks[index]?.handle.cancel()
            self.callbacks[index] = nil
        }
        self.relay = nil
    }

    private func armCallback(at deadline: NIODeadline) {
        guard !self.callbacks.covers(deadline) else { return }
        let index = self.callbacks.freeIndex ?? self.callbacks.latestIndex
        self.callbacks[index]?.handle.cancel()
        self.callbacks[index] = nil
        // Throws only when the loop is shutting down: the timers then never fire, as tasks did not.
        guard
            let handle = try? self.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleCallback(
                at: deadline,
                handler: NIORelayTimerCallback(transport: self)
            )
        else { return }
        self.callbacks[index] = PendingCallback(handle: handle, deadline: deadline)
    }

    /// A callback fired (the earliest pending: the loop fires them in deadline order). The timers due
    /// fire in deadline order, then arming order; a timer armed while they fire, even one due already,
    /// waits for the next callback, as a task scheduled from a task waited for the loop's next turn.
    fileprivate func callbackFired() {
        self.callbacks.removeEarliest()
        guard let relay = self.relay else { return }
        let now = self.eventLoop.now
        let firstLater = self.nextOrder
        self.firing = true
        while let due = self.timers.earliest(armedBefore: firstLater), due.deadline <= now {
            self.timers[due.timer] = nil
            self.armedCount -= 1
            relay.timerFired(due.timer)
        }
        self.firing = false
        if let next = self.timers.earliest(armedBefore: nil) {
            self.armCallback(at: next.deadline)
        } else {
            self.stopCallbacks()
        }
    }

    func fireSoon(_ timer: RelayTimer, for relay: Relay<NIORelayTransport>) {
        let relay = NIOLoopBound(relay, eventLoop: self.eventLoop)
        self.eventLoop.execute { relay.value.timerFired(timer) }
    }
}

/// An armed ``RelayTimer`` (a slot can hold either of two: ``RelayTimer/grace(_:)``'s sides share one),
/// 16 bytes as an optional.
struct ArmedTimer {
    var deadline: NIODeadline
    /// Wraps after 2³² armings of one connection's timers, when a tie may fire a callback late.
    var order: UInt32
    var timer: RelayTimer
}

/// What NIO's loop holds for a connection's timers: the transport, nothing allocated per arming.
private struct NIORelayTimerCallback: NIOScheduledCallbackHandler {
    let transport: NIORelayTransport

    func handleScheduledCallback(eventLoop: some EventLoop) {
        self.transport.callbackFired()
    }
}

struct PendingCallback {
    var handle: NIOScheduledCallback
    var deadline: NIODeadline
}

/// Up to three pending callbacks, inline.
struct PendingCallbacks {
    private var c0, c1, c2: PendingCallback?

    static let indices = 0..<3

    subscript(index: Int) -> PendingCallback? {
        get { index == 0 ? self.c0 : index == 1 ? self.c1 : self.c2 }
        set {
            switch index {
            case 0: self.c0 = newValue
            case 1: self.c1 = newValue
            default: self.c2 = newValue
            }
        }
    }

    /// A callback pending at `deadline` or before it.
    func covers(_ deadline: NIODeadline) -> Bool {
        Self.indices.contains { self[$0].map { $0.deadline <= deadline } ?? false }
    }

    var freeIndex: Int? {
        Self.indices.first { self[$0] == nil }
    }

    /// The callback pending last (with none free, all three are pending).
    var latestIndex: Int {
        Self.indices.max { (self[$0]?.deadline ?? .distantPast) < (self[$1]?.deadline ?? .distantPast) }!
    }

    mutating func removeEarliest() {
        let earliest = Self.indices.min { (self[$0]?.deadline ?? .distantFuture) < (self[$1]?.deadline ?? .distantFuture) }!
        self[earliest] = nil
    }
}

extension RelayTimerSlots<ArmedTimer> {
    /// The armed timer due first (ties: armed first), among those armed before `order` if given.
    func earliest(armedBefore order: UInt32?) -> ArmedTimer? {
        var best: ArmedTimer?
        for slot in 0..<RelayTimer.slotCount {
            guard let armed = self[slot: slot] else { continue }
            if let order, armed.order >= order { continue }
            if let current = best, (current.deadline, current.order) < (armed.deadline, armed.order) { continue }
            best = armed
        }
        return best
    }
}

/// One optional value per ``RelayTimer`` slot, stored inline (no array, no malloc per connection).
struct RelayTimerSlots<Value> {
    private var s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14: Value?

    init() {}

    subscript(timer: RelayTimer) -> Value? {
        get { self[slot: timer.slot] }
        set { self[slot: timer.slot] = newValue }
    }

    subscript(slot slot: Int) -> Value? {
        get {
            switch slot {
            case 0: self.s0
            case 1: self.s1
            case 2: self.s2
            case 3: self.s3
            case 4: self.s4
            case 5: self.s5
            case 6: self.s6
            case 7: self.s7
            case 8: self.s8
            case 9: self.s9
            case 10: self.s10
            case 11: self.s11
            case 12: self.s12
            case 13: self.s13
            default: self.s14
            }
        }
        set {
            switch slot {
            case 0: self.s0 = newValue
            case 1: self.s1 = newValue
            case 2: self.s2 = newValue
            case 3: self.s3 = newValue
            case 4: self.s4 = newValue
            case 5: self.s5 = newValue
            case 6: self.s6 = newValue
            case 7: self.s7 = newValue
            case 8: self.s8 = newValue
            case 9: self.s9 = newValue
            case 10: self.s10 = newValue
            case 11: self.s11 = newValue
            case 12: self.s12 = newValue
            case 13: self.s13 = newValue
            default: self.s14 = newValue
            }
        }
    }
}
