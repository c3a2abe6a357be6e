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

    subscript(side: Side) -> Value {
        get {
            switch side {
            case .client: self.client
            case .upstream: self.upstream
            }
        }
        set {
            switch side {
            case .client: self.client = newValue
            case .upstream: self.upstream = newValue
            }
        }
    }
}

extension PerSide: Equatable where Value: Equatable {}
extension PerSide: Sendable where Value: Sendable {}
