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

    /// Borrows (`_read`) and mutates in place (`_modify`) rather than get/set: with a plain getter,
    /// `directions[side].leg = x` copied the whole ``RelayDirection`` (retaining every reference in it)
    /// and wrote it back, on every frame; that doubled stream-32's CPU per message (BENCHMARKS.md).
    subscript(side: Side) -> Value {
        _read {
            switch side {
            case .client: yield self.client
            case .upstream: yield self.upstream
            }
        }
        _modify {
            switch side {
            case .client: yield &self.client
            case .upstream: yield &self.upstream
            }
        }
    }
}

extension PerSide: Equatable where Value: Equatable {}
extension PerSide: Sendable where Value: Sendable {}
