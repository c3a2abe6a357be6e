import NIOConcurrencyHelpers
import NIOCore

/// The live client connections of a gateway, for the drain (DESIGN §6): every accepted channel is
/// registered until it closes. The drain reaches a connection as an event, NIO's
/// `ChannelShouldQuiesceEvent` (what swift-nio-extras' `ServerQuiescingHelper` fires; the event is
/// NIOCore's, so no extra package), fired into its pipeline: the relay's handler turns it into Close 1001
/// per leg. The deadline closes the client channel, and the relay closes the upstream leg with it. No
/// closures are stored and nothing polls: ``waitUntilEmpty(timeout:)`` is woken by the last close.
/// Shared by every configuration a reload installs, so a drain after a reload still sees connections
/// admitted before it.
final class ConnectionRegistry: Sendable {
    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        var draining = false
        /// ``waitUntilEmpty(timeout:)`` callers, woken with `true` when the last connection closes.
        var waiters: [UInt64: CheckedContinuation<Bool, Never>] = [:]
        /// The deadline task of each waiter, cancelled when the waiter is woken first.
        var deadlines: [UInt64: Task<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }

    private let state = NIOLockedValueBox(State())
    /// The relayed connections for `/connections` and the taps watching them (issue #14).
    let live: LiveConnectionTable
    let taps: TapHub

    init() {
        self.live = LiveConnectionTable()
        self.taps = TapHub(live: self.live)
    }
    private let nextConnectionID = NIOLockedValueBox<UInt64>(0)

    func makeConnectionID() -> UInt64 {
        self.nextConnectionID.withLockedValue {
            $0 += 1
            return $0
        }
    }

    /// True once a drain has started: `/readyz` fails and new upgrade requests get 503.
    var isDraining: Bool { self.state.withLockedValue { $0.draining } }

    var count: Int { self.state.withLockedValue { $0.channels.count } }

    /// Tracks `channel` until it closes.
    func register(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        self.state.withLockedValue { $0.channels[key] = channel }
        channel.closeFuture.whenComplete { _ in self.unregister(key) }
    }

    private func unregister(_ key: ObjectIdentifier) {
        let (waiters, deadlines) = self.state.withLockedValue { state -> ([CheckedContinuation<Bool, Never>], [Task<Void, Never>]) in
            guard state.channels.removeValue(forKey: key) != nil, state.channels.isEmpty else { return ([], []) }
            defer {
                state.waiters = [:]
                state.deadlines = [:]
            }
            return (Array(state.waiters.values), Array(state.deadlines.values))
        }
        for deadline in deadlines { deadline.cancel() }
        for waiter in waiters { waiter.resume(returning: true) }
    }

    /// `channel` has just started relaying (its pipeline now handles the drain event). If a drain began
    /// while it was in its handshake, the event is fired again now (a drain is idempotent). An HTTP/2
    /// stream (issue #16) is not registered itself: its connection is (the drain reaches the streams
    /// through it, after its GOAWAY).
    func attach(_ channel: any Channel) {
        let keys = [ObjectIdentifier(channel)] + (channel.parent.map { [ObjectIdentifier($0)] } ?? [])
        let drainNow = self.state.withLockedValue { state in state.draining && keys.contains { state.channels[$0] != nil } }
        if drainNow { Self.quiesce(channel) }
    }

    /// Marks the gateway as draining: readiness fails and new upgrade requests get 503.
    func markDraining() {
        self.state.withLockedValue { $0.draining = true }
    }

    /// Marks the gateway as draining and fires the drain event into every connection. Connections still
    /// in their handshake ignore it and get it again when they attach to a relay.
    func startDrain() {
        let channels: [any Channel] = self.state.withLockedValue { state in
            state.draining = true
            return Array(state.channels.values)
        }
        for channel in channels { Self.quiesce(channel) }
    }

    private static func quiesce(_ channel: any Channel) {
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
    }

    /// Waits until no connection is left or `timeout` has passed; true when none is left.
    func waitUntilEmpty(timeout: Duration) async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let id: UInt64? = self.state.withLockedValue { state in
                guard !state.channels.isEmpty else { return nil }
                state.nextWaiter += 1
                state.waiters[state.nextWaiter] = continuation
                return state.nextWaiter
            }
            guard let id else { return continuation.resume(returning: true) }
            let deadline = Task {
                try? await Task.sleep(for: timeout)
                let waiter = self.state.withLockedValue { state in
                    state.deadlines[id] = nil
                    return state.waiters.removeValue(forKey: id)
                }
                waiter?.resume(returning: false)
            }
            let woken = self.state.withLockedValue { state in
                guard state.waiters[id] != nil else { return true }
                state.deadlines[id] = deadline
                return false
            }
            if woken { deadline.cancel() }
        }
    }

    /// Closes every connection still open (the relay closes the upstream leg of relayed ones). Returns
    /// how many there were.
    @discardableResult
    func forceCloseAll() -> Int {
        let channels = self.state.withLockedValue { Array($0.channels.values) }
        for channel in channels { channel.close(promise: nil) }
        return channels.count
    }
}
