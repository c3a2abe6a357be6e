/// Fixed-capacity storage for per-connection state as plain structs (issue #15 part 2): one allocation per
/// event loop, made once, so accepting a connection allocates nothing and relaying a message touches no
/// reference count. A slot is named by a ``Handle`` (index and generation): a handle kept past its
/// connection's end (in the timer wheel, in an epoll event already fetched) no longer matches the slot's
/// generation and is ignored.
///
/// Memory: `capacity` elements are reserved as virtual memory; a page becomes resident only when a slot on
/// it is first used, so an idle loop holds what its busiest moment touched, not `capacity` slots.
///
/// Pointers from ``pointer(_:)`` stay valid until the slot is removed (the storage never moves). One loop
/// (one thread) owns a slab.
public final class Slab<Element> {
    /// A slot's name: its index and the generation it had when the element was inserted.
    public struct Handle: Hashable, Sendable {
        public var index: UInt32
        public var generation: UInt32

        public init(index: UInt32, generation: UInt32) {
            self.index = index
            self.generation = generation
        }

        /// Index in the low 32 bits, generation in bits 32–62 (bit 63 is left to the caller: epoll
        /// data uses it for the connection's side).
        public var packed: UInt64 { UInt64(self.index) | (UInt64(self.generation & 0x7FFF_FFFF) << 32) }

        public init(packed: UInt64) {
            self.index = UInt32(truncatingIfNeeded: packed)
            self.generation = UInt32(truncatingIfNeeded: packed >> 32) & 0x7FFF_FFFF
        }
    }

    public let capacity: Int
    private let storage: UnsafeMutablePointer<Element>
    /// Per slot: the current generation (odd while occupied, even while free).
    private let generations: UnsafeMutablePointer<UInt32>
    /// Free slot indices, the most recently freed last (reused first: its pages are warm).
    private var free: [UInt32]
    /// Slots never used yet start at `fresh`; they are taken after the free list is empty.
    private var fresh: Int = 0
    public private(set) var count: Int = 0

    public init(capacity: Int) {
        precondition(capacity > 0 && capacity < Int(Int32.max), "capacity must fit a 31-bit index")
        self.capacity = capacity
        self.storage = .allocate(capacity: capacity)
        self.generations = .allocate(capacity: capacity)
        self.generations.initialize(repeating: 0, count: capacity)
        self.free = []
        self.free.reserveCapacity(capacity)
    }

    deinit {
        for index in 0..<self.fresh where self.generations[index] & 1 == 1 {
            (self.storage + index).deinitialize(count: 1)
        }
        self.storage.deallocate()
        self.generations.deallocate()
    }

    /// Stores `element` in a free slot; `nil` when all `capacity` slots are taken.
    public func insert(_ element: Element) -> Handle? {
        let index: Int
        if let reused = self.free.popLast() {
            index = Int(reused)
        } else if self.fresh < self.capacity {
            index = self.fresh
            self.fresh += 1
        } else {
            return nil
        }
        (self.storage + index).initialize(to: element)
        self.generations[index] &+= 1
        self.count += 1
        return Handle(index: UInt32(index), generation: self.generations[index] & 0x7FFF_FFFF)
    }

    /// Whether `handle` names an occupied slot of the generation it was issued for.
    public func contains(_ handle: Handle) -> Bool {
        let index = Int(handle.index)
        guard index < self.fresh else { return false }
        let generation = self.generations[index]
        return generation & 1 == 1 && generation & 0x7FFF_FFFF == handle.generation
    }

    /// The element of a live handle, in place (no copy). `nil` for a stale handle.
    public func pointer(_ handle: Handle) -> UnsafeMutablePointer<Element>? {
        self.contains(handle) ? self.storage + Int(handle.index) : nil
    }

    /// The handle of the occupied slot `element` points into (a pointer from ``pointer(_:)``).
    public func handle(of element: UnsafeMutablePointer<Element>) -> Handle? {
        let index = element - self.storage
        guard index >= 0, index < self.fresh, self.generations[index] & 1 == 1 else { return nil }
        return Handle(index: UInt32(index), generation: self.generations[index] & 0x7FFF_FFFF)
    }

    /// Ends the element of `handle` and frees its slot; returns it. `nil` (and no change) for a stale handle.
    @discardableResult
    public func remove(_ handle: Handle) -> Element? {
        guard self.contains(handle) else { return nil }
        let index = Int(handle.index)
        let element = (self.storage + index).move()
        self.generations[index] &+= 1
        self.free.append(UInt32(index))
        self.count -= 1
        return element
    }

    /// Handles of every occupied slot (for shutdown; allocates).
    public var handles: [Handle] {
        (0..<self.fresh).compactMap { index in
            let generation = self.generations[index]
            return generation & 1 == 1 ? Handle(index: UInt32(index), generation: generation & 0x7FFF_FFFF) : nil
        }
    }
}
