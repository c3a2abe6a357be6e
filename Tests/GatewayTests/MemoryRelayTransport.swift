import NIOCore

@testable import Gateway

/// A ``RelayTransport`` in memory with a virtual clock (test support): the relay's protocol code runs
/// over it as a pure state machine, without channels or an event loop. Bytes the relay flushes toward
/// a leg are collected per leg; reads are pulled as NIO's are (after each read the transport asks
/// ``Relay/shouldRead(_:)``, and a held read goes on only when the relay calls ``read(_:)``); a closed
/// leg reports its end to the relay at once (as a channel's `channelInactive` does inside `close`) and
/// takes no more writes; timers fire in deadline order (ties in the order armed) as the clock advances.
/// Every call the relay makes is logged in ``events``.
final class MemoryRelayTransport: RelayTransport {
    enum Event: Equatable {
        case flush(Side)
        case close(Side)
        case read(Side)
        case schedule(RelayTimer, at: TimeAmount)
        case cancel(RelayTimer)
        case fireSoon(RelayTimer)
    }

    private(set) var events: [Event] = []
    private(set) var attachedLegs = PerSide(false)
    private(set) var open = PerSide(true)
    private var writableLegs = PerSide(true)
    private var queued = PerSide<[UInt8]>([])
    private var flushed = PerSide<[UInt8]>([])
    /// `read()` calls that went toward a leg's socket: the transport's own after each read the relay
    /// allowed, and the relay's when it resumes a held read.
    private(set) var reads = PerSide(0)
    /// The virtual clock starts here (`NIODeadline` has no zero the tests need).
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    private(set) var now: NIODeadline
    private var armed: [Int: (timer: RelayTimer, deadline: NIODeadline, sequence: Int)] = [:]
    private var soon: [RelayTimer] = []
    private var sequence = 0
    private weak var relay: Relay<MemoryRelayTransport>?

    init() {
        self.now = self.start
    }

    /// Attaches both legs (client first, as the gateway adds its handlers) to `relay`.
    func connect(_ relay: Relay<MemoryRelayTransport>) {
        self.relay = relay
        for side in [Side.client, .upstream] {
            self.attachedLegs[side] = true
            relay.attached(side)
        }
    }

    // MARK: What the relay calls

    func isAttached(_ side: Side) -> Bool { self.attachedLegs[side] }

    func write(_ buffer: ByteBuffer, to side: Side) {
        guard self.attachedLegs[side], self.open[side] else { return }
        self.queued[side] += buffer.readableBytesView
    }

    func flush(_ side: Side) {
        guard self.attachedLegs[side] else { return }
        self.events.append(.flush(side))
        self.flushed[side] += self.queued[side]
        self.queued[side] = []
    }

    func writeAndFlush(_ buffer: ByteBuffer, to side: Side) {
        self.write(buffer, to: side)
        self.flush(side)
    }

    func close(_ side: Side) {
        guard self.attachedLegs[side] else { return }
        self.events.append(.close(side))
        guard self.open[side] else { return }
        self.open[side] = false
        self.queued[side] = []
        self.relay?.inactive(side)
    }

    func read(_ side: Side) {
        guard self.attachedLegs[side] else { return }
        self.events.append(.read(side))
        self.reads[side] += 1
    }

    func isWritable(_ side: Side) -> Bool { self.attachedLegs[side] && self.writableLegs[side] }

    func buffer(capacity: Int) -> ByteBuffer { ByteBuffer() }

    func schedule(_ timer: RelayTimer, at deadline: NIODeadline, for relay: Relay<MemoryRelayTransport>) {
        self.relay = relay
        self.events.append(.schedule(timer, at: deadline - self.start))
        self.sequence += 1
        self.armed[timer.slot] = (timer, deadline, self.sequence)
    }

    func cancel(_ timer: RelayTimer) {
        guard self.armed.removeValue(forKey: timer.slot) != nil else { return }
        self.events.append(.cancel(timer))
    }

    func fireSoon(_ timer: RelayTimer, for relay: Relay<MemoryRelayTransport>) {
        self.relay = relay
        self.events.append(.fireSoon(timer))
        self.soon.append(timer)
    }

    // MARK: What the test does

    /// The bytes flushed toward `side` since the last call.
    func written(to side: Side) -> [UInt8] {
        defer { self.flushed[side] = [] }
        return self.flushed[side]
    }

    /// `bytes` arrive from `side` as separate reads cut at `cuts`, each followed by read-complete and
    /// the next `read()` if the relay allows it.
    func deliver(_ bytes: [UInt8], from side: Side, cutAt cuts: [Int] = []) {
        guard let relay = self.relay, self.open[side] else { return }
        var start = 0
        for end in cuts.filter({ $0 > 0 && $0 < bytes.count }) + [bytes.count] {
            var buffer = ByteBuffer(bytes: bytes[start..<end])
            relay.read(from: side, &buffer)
            relay.readComplete(from: side)
            self.pullRead(side)
            start = end
        }
    }

    /// NIO's outbound `read()` after a read: it reaches the socket only if the relay does not hold it.
    func pullRead(_ side: Side) {
        guard let relay = self.relay, self.open[side] else { return }
        if relay.shouldRead(side) { self.reads[side] += 1 }
    }

    /// `side`'s peer ended its TCP connection (or it failed).
    func peerClosed(_ side: Side) {
        guard self.open[side] else { return }
        self.open[side] = false
        self.relay?.inactive(side)
    }

    func setWritable(_ side: Side, _ writable: Bool) {
        guard self.writableLegs[side] != writable else { return }
        self.writableLegs[side] = writable
        self.relay?.writabilityChanged(side)
    }

    /// Moves the clock by `amount`, firing every timer due on the way at its own deadline, then the
    /// work queued for the next turn.
    func advance(by amount: TimeAmount) {
        let target = self.now + amount
        self.runSoon()
        while let next = self.armed.values.filter({ $0.deadline <= target }).min(by: { ($0.deadline, $0.sequence) < ($1.deadline, $1.sequence) }) {
            self.armed.removeValue(forKey: next.timer.slot)
            self.now = next.deadline
            self.relay?.timerFired(next.timer)
            self.runSoon()
        }
        self.now = target
    }

    /// Runs what the relay queued for the next turn (``fireSoon(_:for:)``).
    func runSoon() {
        while !self.soon.isEmpty {
            let timer = self.soon.removeFirst()
            self.relay?.timerFired(timer)
        }
    }

    /// The timers armed now, by deadline from ``start``.
    var armedTimers: [RelayTimer: TimeAmount] {
        Dictionary(uniqueKeysWithValues: self.armed.values.map { ($0.timer, $0.deadline - self.start) })
    }

    /// Forgets the log (after setting a connection up).
    func clearEvents() {
        self.events = []
    }
}
