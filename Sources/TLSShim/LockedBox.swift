import Synchronization

/// A value behind a mutex, for the few pieces of state shared across event loops (the current
/// server context, the client session cache). Never held across a call into user code.
final class LockedBox<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) { self.mutex = Mutex(value) }

    var value: Value {
        get { self.mutex.withLock { $0 } }
        set { self.mutex.withLock { $0 = newValue } }
    }

    func withLock<R>(_ body: (inout Value) -> R) -> R {
        self.mutex.withLock { body(&$0) }
    }
}
