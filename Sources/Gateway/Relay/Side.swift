/// Which leg of a connection.
enum Side: String, Sendable, Hashable {
    case client
    case upstream

    var other: Side { self == .client ? .upstream : .client }
}

/// One value per leg. A struct with a switch, not a dictionary: the relay reads these on every frame,
/// and hashing a `Side` (a `String` raw value) there cost about 7 % of the CPU in `stream-32`.
struct PerSide<Value> {
    var client: Value
    var upstream: Value

    init(client: Value, upstream: Value) {
        self.client = client
        self.upstream = upstream
    }

    init(_ both: Value) {
        self.init(client: both, upstream: both)
    }

    /// Plain `get`/`set`, inlined into every caller. Not `_read`/`_modify`: those coroutine accessors are
    /// not inlined, and each call allocated its frame (`malloc`), copied the whole pair into it and freed
    /// it again: for ``RelayDirection`` that was 800 bytes copied twice and a malloc per access, several
    /// per relayed frame (stream-32, BENCHMARKS.md). A `set` through `x[side].field = v` copies the value
    /// out and back, so values that hold references and change per frame are reached in place instead
    /// (``RelaySession/direction(_:_:)``); here that leaves small values and per-event changes.
    subscript(side: Side) -> Value {
        @inline(__always) get {
            switch side {
            case .client: self.client
            case .upstream: self.upstream
            }
        }
        @inline(__always) set {
            switch side {
            case .client: self.client = newValue
            case .upstream: self.upstream = newValue
            }
        }
    }

    /// `side`'s value, changed in place (no copy: a buffer in it stays uniquely referenced).
    @inline(__always)
    mutating func modify<Result>(_ side: Side, _ body: (inout Value) throws -> Result) rethrows -> Result {
        switch side {
        case .client: try body(&self.client)
        case .upstream: try body(&self.upstream)
        }
    }
}

extension PerSide: Equatable where Value: Equatable {}
extension PerSide: Sendable where Value: Sendable {}
