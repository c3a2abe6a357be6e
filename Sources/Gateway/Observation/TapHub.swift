import Frames
import NIOConcurrencyHelpers
import NIOCore

/// The taps attached to a gateway (issue #14 §2), shared across reloads like ``ConnectionRegistry``.
///
/// A relay learns of taps by being told, not by asking per frame: when a tap attaches or detaches, every
/// relaying connection (``LiveConnectionTable``) gets a task on its own event loop that recomputes which
/// taps watch it (``RelaySession/retap(_:)``); a connection that starts relaying asks once. With no tap
/// watching it, a session's ``RelaySession/tap`` is `nil` and the relay's cost is that one check per
/// frame. The recomputation reads the hub when it runs, so the last task to run on a loop is always
/// up to date whatever order attaches and detaches raced in.
final class TapHub: Sendable {
    private struct State {
        var subscribers: [ObjectIdentifier: TapSubscriber] = [:]
        var redaction = TapRedaction()
        var maxTaps = 8
    }

    private let state = NIOLockedValueBox(State())
    private let live: LiveConnectionTable

    init(live: LiveConnectionTable) {
        self.live = live
    }

    var count: Int { self.state.withLockedValue { $0.subscribers.count } }

    /// `admin.tap`: the extra redacted names and the cap (applied at start and on reload).
    func configure(_ tap: GatewayConfiguration.Admin.Tap) {
        self.state.withLockedValue {
            $0.redaction = TapRedaction(tap)
            $0.maxTaps = tap.maxTaps
        }
    }

    var redaction: TapRedaction { self.state.withLockedValue { $0.redaction } }

    /// Attaches `subscriber`; false when ``GatewayConfiguration/Admin/Tap/maxTaps`` taps already stream.
    func attach(_ subscriber: TapSubscriber) -> Bool {
        let attached = self.state.withLockedValue { state -> Bool in
            guard state.subscribers.count < state.maxTaps else { return false }
            state.subscribers[ObjectIdentifier(subscriber)] = subscriber
            return true
        }
        if attached { self.retapAll() }
        return attached
    }

    func detach(_ subscriber: TapSubscriber) {
        subscriber.close()
        let removed = self.state.withLockedValue { $0.subscribers.removeValue(forKey: ObjectIdentifier(subscriber)) != nil }
        if removed { self.retapAll() }
    }

    /// The subscribers whose filter matches `info`.
    func subscribers(matching info: LiveConnectionInfo) -> [TapSubscriber] {
        self.state.withLockedValue { state in
            state.subscribers.values.filter { $0.filter.matches(info) }
        }
    }

    private func retapAll() {
        for entry in self.live.allEntries {
            entry.eventLoop.execute {
                entry.session.value.retap(self)
            }
        }
    }
}

/// The taps watching one relayed connection, held by its ``RelaySession`` on its event loop, and the
/// frame being captured in each direction. Exists only while at least one tap watches.
final class RelayTap {
    struct Capture {
        var header: FrameHeaderSummary?
        /// The opcode of the message a continuation frame belongs to.
        var messageOpcode: Opcode = .text
        /// The message's first frame had RSV1: permessage-deflate data, shown inflated (``inflates``).
        var messageCompressed = false
        var payload: [UInt8] = []
        var offset = 0
        /// What the current frame's compressed bytes inflated to (as the relay inflates them), up to the
        /// capture bound, and how many bytes that was in all.
        var inflated: [UInt8] = []
        var inflatedLength = 0
    }

    /// What the tap keeps of a frame's header.
    struct FrameHeaderSummary {
        var opcode: Opcode
        var fin: Bool
        var rsv1: Bool
        var length: Int
        var maskingKey: MaskingKey?
    }

    let info: LiveConnectionInfo
    private(set) var subscribers: [TapSubscriber]
    /// The most payload any subscriber shows.
    private(set) var captureLimit: Int
    var captures = PerSide(Capture())
    /// Per source side: the relay's inflater shows this tap what it inflates (``RelaySession/tapInflation()``),
    /// so compressed frames are shown inflated rather than as their wire bytes.
    var inflates = PerSide(false)

    init(info: LiveConnectionInfo, subscribers: [TapSubscriber]) {
        self.info = info
        self.subscribers = subscribers
        self.captureLimit = subscribers.map(\.captureLimit).max() ?? 0
    }

    func replaceSubscribers(_ subscribers: [TapSubscriber]) {
        self.subscribers = subscribers
        self.captureLimit = subscribers.map(\.captureLimit).max() ?? 0
    }

    func emit(_ event: TapEvent) {
        for subscriber in self.subscribers { subscriber.offer(event) }
    }
}
