/// A hashed timer wheel (Varghese & Lauck) for one event loop's deadlines: handshake, close and drain
/// timeouts. Scheduling and expiry are O(1) per timer; nothing is allocated once the slots' arrays have
/// grown to their working size. Time is counted in ticks (the loop picks the tick length).
///
/// Cancelling is lazy: a timer is never removed; the owner checks, when its key expires, whether the
/// deadline still applies (the connection may be gone or have a later deadline). This keeps the wheel free
/// of per-connection bookkeeping.
public struct TimerWheel {
    public struct Entry: Hashable, Sendable {
        public var key: UInt64
        public var deadline: UInt64
    }

    private var slots: [[Entry]]
    /// The last tick processed: timers due at or before it have fired.
    public private(set) var now: UInt64
    /// Timers scheduled and not yet fired.
    public private(set) var count: Int = 0

    /// `slotCount` slots; deadlines further out than that many ticks wait in their slot for later rounds.
    public init(slotCount: Int = 256, now: UInt64 = 0) {
        precondition(slotCount > 0)
        self.slots = Array(repeating: [], count: slotCount)
        self.now = now
    }

    /// Fires `key` at `deadline` (a tick); a deadline at or before ``now`` fires on the next ``advance(to:_:)``.
    public mutating func schedule(_ key: UInt64, at deadline: UInt64) {
        let due = max(deadline, self.now + 1)
        self.slots[Int(due % UInt64(self.slots.count))].append(Entry(key: key, deadline: due))
        self.count += 1
    }

    /// Moves time to `tick` and calls `expired` for every timer due by then, in deadline order of ticks.
    public mutating func advance(to tick: UInt64, _ expired: (UInt64) -> Void) {
        guard tick > self.now else { return }
        // Past one full turn every slot is visited once; deadlines further out stay.
        let steps = min(tick - self.now, UInt64(self.slots.count))
        var step: UInt64 = 1
        while step <= steps {
            let index = Int((self.now + step) % UInt64(self.slots.count))
            if !self.slots[index].isEmpty {
                var kept = 0
                var slot = self.slots[index]
                self.slots[index] = []
                for entry in slot {
                    if entry.deadline <= tick {
                        self.count -= 1
                        expired(entry.key)
                    } else {
                        slot[kept] = entry
                        kept += 1
                    }
                }
                slot.removeLast(slot.count - kept)
                // `expired` may have scheduled into this slot meanwhile: keep those too.
                slot.append(contentsOf: self.slots[index])
                self.slots[index] = slot
            }
            step += 1
        }
        self.now = tick
    }
}
