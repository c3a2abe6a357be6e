import NIOCore

/// The relay's transport over NIO: the two legs' `ChannelHandlerContext`s (``RelayHandler`` attaches
/// them) on one event loop, whose `scheduleTask` keeps the timers. What `RelaySession` did with the
/// contexts itself before the boundary, call for call.
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
    private var timers = RelayTimerSlots<Scheduled<Void>>()
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

    /// The task holds the session until it fires or is cancelled, as the closures before the boundary did.
    func schedule(_ timer: RelayTimer, at deadline: NIODeadline, for relay: Relay<NIORelayTransport>) {
        self.timers[timer]?.cancel()
        let relay = NIOLoopBound(relay, eventLoop: self.eventLoop)
        self.timers[timer] = self.eventLoop.scheduleTask(deadline: deadline) { relay.value.timerFired(timer) }
    }

    func cancel(_ timer: RelayTimer) {
        self.timers[timer]?.cancel()
        self.timers[timer] = nil
    }

    func fireSoon(_ timer: RelayTimer, for relay: Relay<NIORelayTransport>) {
        let relay = NIOLoopBound(relay, eventLoop: self.eventLoop)
        self.eventLoop.execute { relay.value.timerFired(timer) }
    }
}

/// One optional value per ``RelayTimer`` slot, stored inline (no array, no malloc per connection).
struct RelayTimerSlots<Value> {
    private var s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14: Value?

    init() {}

    subscript(timer: RelayTimer) -> Value? {
        get {
            switch timer.slot {
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
            switch timer.slot {
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
