import NIOConcurrencyHelpers
import NIOCore

/// One `/tap` request (issue #14 §2): its filter, how much payload it shows, and its bounded queue.
///
/// The relay never waits for a tap: ``offer(_:)`` appends a read's events under one short lock, or
/// counts those that do not fit as dropped (``maxEvents`` events or ``maxBytes`` bytes), and wakes the
/// admin side only when the queue goes from idle to busy. The queue is a ring (`CircularBuffer`): taking
/// a batch from its front moves nothing (an array's `removeFirst` moved every event left behind). The admin side takes events while its channel is
/// writable (``take(max:)``); a channel that is not writable leaves the queue to fill, so a slow reader
/// costs dropped events, never backpressure on a connection.
final class TapSubscriber: Sendable {
    struct Filter: Sendable, Equatable {
        /// The route's path prefix, exactly.
        var route: String?
        var connection: UInt64?
        /// The client address, with or without its port.
        var client: String?

        func matches(_ info: LiveConnectionInfo) -> Bool {
            if let route = self.route, route != info.route { return false }
            if let connection = self.connection, connection != info.id { return false }
            if let client = self.client, client != info.client, client != info.clientAddress { return false }
            return true
        }
    }

    static let defaultMaxPayload = 1024
    /// `payload=full` captures at most this much of a frame.
    static let fullPayloadLimit = 1 << 20
    static let defaultMaxEvents = 4096
    static let defaultMaxBytes = 4 << 20

    let filter: Filter
    let payload: TapPayloadMode
    let maxPayload: Int
    let maxEvents: Int
    let maxBytes: Int

    /// How many payload bytes the relay copies for this tap.
    var captureLimit: Int {
        switch self.payload {
        case .none: 0
        case .truncated: self.maxPayload
        case .full: Self.fullPayloadLimit
        }
    }

    private struct Queue {
        var events = CircularBuffer<TapEvent>(initialCapacity: 64)
        var bytes = 0
        var dropped = 0
        /// The admin side was woken and has not yet found the queue empty.
        var awake = false
        var closed = false
    }

    private let queue = NIOLockedValueBox(Queue())
    /// Called (on the producer's thread, outside the lock) when the queue has work and the admin side is
    /// idle; it hops to the admin channel's event loop.
    private let wake: @Sendable () -> Void

    init(
        filter: Filter,
        payload: TapPayloadMode = .truncated,
        maxPayload: Int = TapSubscriber.defaultMaxPayload,
        maxEvents: Int = TapSubscriber.defaultMaxEvents,
        maxBytes: Int = TapSubscriber.defaultMaxBytes,
        wake: @escaping @Sendable () -> Void
    ) {
        self.filter = filter
        self.payload = payload
        self.maxPayload = maxPayload
        self.maxEvents = maxEvents
        self.maxBytes = maxBytes
        self.wake = wake
    }

    /// Queues `event`, or counts it as dropped. Never blocks beyond the queue's lock.
    func offer(_ event: TapEvent) {
        self.offer(CollectionOfOne(event))
    }

    /// Queues `events` in order (one read's, ``RelayTap/flush()``), counting those that do not fit as
    /// dropped: one lock and at most one wake for all of them.
    func offer(_ events: some Collection<TapEvent>) {
        guard !events.isEmpty else { return }
        let wake = self.queue.withLockedValue { queue -> Bool in
            guard !queue.closed else { return false }
            for event in events {
                let size = event.size
                if queue.events.count >= self.maxEvents || queue.bytes + size > self.maxBytes {
                    queue.dropped += 1
                } else {
                    queue.events.append(event)
                    queue.bytes += size
                }
            }
            guard !queue.awake else { return false }
            queue.awake = true
            return true
        }
        if wake { self.wake() }
    }

    /// Up to `max` queued events and the number dropped since the last call. When there are none, the
    /// queue goes idle: the next ``offer(_:)`` wakes the admin side again. `stayAwake`: the caller will
    /// come back by itself (its channel is not writable), so offers need not wake it.
    func take(max: Int) -> (events: [TapEvent], dropped: Int) {
        self.queue.withLockedValue { queue in
            let dropped = queue.dropped
            queue.dropped = 0
            guard !queue.events.isEmpty else {
                if dropped == 0 { queue.awake = false }
                return ([], dropped)
            }
            let count = min(max, queue.events.count)
            var events: [TapEvent] = []
            events.reserveCapacity(count)
            for _ in 0..<count {
                let event = queue.events.removeFirst()
                queue.bytes -= event.size
                events.append(event)
            }
            return (events, dropped)
        }
    }

    /// The tap's stream ended: nothing is queued any more.
    func close() {
        self.queue.withLockedValue { queue in
            queue.closed = true
            queue.events.removeAll()
            queue.bytes = 0
        }
    }

    /// Events and bytes queued now (for tests).
    var queued: (events: Int, bytes: Int, dropped: Int) {
        self.queue.withLockedValue { ($0.events.count, $0.bytes, $0.dropped) }
    }
}
