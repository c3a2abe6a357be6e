import NIOConcurrencyHelpers
import NIOCore

/// The live client connections of a gateway, for the drain (DESIGN §6): every accepted channel is
/// registered until it closes; a connection that reached the relay attaches the two closures the drain
/// needs (send Close 1001 at a frame boundary; close both legs now). Shared by every configuration a
/// reload installs, so a drain after a reload still sees connections admitted before it.
final class ConnectionRegistry: Sendable {
    struct Entry: Sendable {
        var channel: any Channel
        /// Runs on the channel's event loop: Close 1001 to both legs at the next frame boundary.
        var drain: (@Sendable () -> Void)?
        /// Runs on the channel's event loop: close both legs now.
        var forceClose: (@Sendable () -> Void)?
    }

    private struct State {
        var entries: [ObjectIdentifier: Entry] = [:]
        var draining = false
    }

    private let state = NIOLockedValueBox(State())
    private let nextConnectionID = NIOLockedValueBox<UInt64>(0)

    func makeConnectionID() -> UInt64 {
        self.nextConnectionID.withLockedValue {
            $0 += 1
            return $0
        }
    }

    /// True once a drain has started: `/readyz` fails and new upgrade requests get 503.
    var isDraining: Bool { self.state.withLockedValue { $0.draining } }

    var count: Int { self.state.withLockedValue { $0.entries.count } }

    /// Tracks `channel` until it closes.
    func register(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        self.state.withLockedValue { $0.entries[key] = Entry(channel: channel) }
        channel.closeFuture.whenComplete { _ in self.unregister(key) }
    }

    private func unregister(_ key: ObjectIdentifier) {
        self.state.withLockedValue { _ = $0.entries.removeValue(forKey: key) }
    }

    /// `channel` is relaying: how to drain it and how to force it closed. If a drain is already under
    /// way, its drain starts at once.
    func attach(_ channel: any Channel, drain: @escaping @Sendable () -> Void, forceClose: @escaping @Sendable () -> Void) {
        let key = ObjectIdentifier(channel)
        let drainNow: Bool = self.state.withLockedValue { state in
            guard state.entries[key] != nil else { return false }
            state.entries[key]!.drain = drain
            state.entries[key]!.forceClose = forceClose
            return state.draining
        }
        if drainNow { channel.eventLoop.execute(drain) }
    }

    /// Marks the gateway as draining: readiness fails and new upgrade requests get 503.
    func markDraining() {
        self.state.withLockedValue { $0.draining = true }
    }

    /// Marks the gateway as draining and asks every relayed connection for its Close 1001.
    /// Connections still in their handshake are drained when they attach.
    func startDrain() {
        let entries: [Entry] = self.state.withLockedValue { state in
            state.draining = true
            return Array(state.entries.values)
        }
        for entry in entries {
            if let drain = entry.drain { entry.channel.eventLoop.execute(drain) }
        }
    }

    /// Waits until no connection is left or `timeout` has passed; true when none is left. It polls every
    /// 10 ms: a drain happens once per process, and polling cannot miss a wake-up.
    func waitUntilEmpty(timeout: Duration) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while self.count > 0 {
            guard clock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    /// Closes every connection still open (both legs of relayed ones). Returns how many there were.
    @discardableResult
    func forceCloseAll() -> Int {
        let entries = self.state.withLockedValue { Array($0.entries.values) }
        for entry in entries {
            if let forceClose = entry.forceClose {
                entry.channel.eventLoop.execute(forceClose)
            } else {
                entry.channel.close(promise: nil)
            }
        }
        return entries.count
    }
}
