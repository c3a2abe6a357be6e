import Frames
import NIOConcurrencyHelpers
import NIOCore

/// The taps attached to a gateway (issue #14 §2), shared across reloads like ``ConnectionRegistry``.
///
/// A relay learns of taps by being told, not by asking per frame: when a tap attaches or detaches, every
/// relaying connection (``LiveConnectionTable``) is retapped by one task per event loop that recomputes
/// which taps watch each of its connections (``RelaySession/retap(_:attached:)``); a connection that
/// starts relaying asks once. With no tap
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
        if attached { self.retapAll(attached: true) }
        return attached
    }

    func detach(_ subscriber: TapSubscriber) {
        subscriber.close()
        let removed = self.state.withLockedValue { $0.subscribers.removeValue(forKey: ObjectIdentifier(subscriber)) != nil }
        if removed { self.retapAll(attached: false) }
    }

    /// The subscribers whose filter matches `info`.
    func subscribers(matching info: LiveConnectionInfo) -> [TapSubscriber] {
        self.state.withLockedValue { state in
            state.subscribers.values.filter { $0.filter.matches(info) }
        }
    }

    /// One task per event loop (not per connection) that retaps that loop's sessions; `attached`: a tap
    /// was added, so sessions it now watches announce themselves to it (``RelaySession/retap(_:attached:)``).
    private func retapAll(attached: Bool) {
        var byLoop: [ObjectIdentifier: (any EventLoop, [LiveConnectionTable.Entry])] = [:]
        for entry in self.live.allEntries {
            byLoop[ObjectIdentifier(entry.eventLoop), default: (entry.eventLoop, [])].1.append(entry)
        }
        for (eventLoop, entries) in byLoop.values {
            eventLoop.execute {
                for entry in entries { entry.session.value.retap(self, attached: attached) }
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
    /// The events of the current read, offered at its end (``flush()``, from ``RelaySession/trafficRead()``):
    /// one lock and at most one wake per subscriber per read, not per frame.
    private var pending: [TapEvent] = []
    private var pendingBytes = 0
    /// The time of the current read's events: read from the clock at its first event and forgotten
    /// at ``flush()``, so the frames of one read share one timestamp (the clock is read once per read).
    private var readTime: Double?

    /// A read's events are offered early once they hold this many bytes (payload copies or inflated bytes).
    static let pendingByteLimit = 1 << 20

    init(info: LiveConnectionInfo, subscribers: [TapSubscriber]) {
        self.info = info
        self.subscribers = subscribers
        self.captureLimit = subscribers.map(\.captureLimit).max() ?? 0
    }

    /// The events queued so far go to the subscribers they were captured for, then the set changes.
    func replaceSubscribers(_ subscribers: [TapSubscriber]) {
        self.flush()
        self.subscribers = subscribers
        self.captureLimit = subscribers.map(\.captureLimit).max() ?? 0
    }

    /// The current read's timestamp (``TapEvent/now``, taken once per read).
    func eventTime() -> Double {
        if let time = self.readTime { return time }
        let time = TapEvent.now
        self.readTime = time
        return time
    }

    /// A frame of the current read: offered with the others at its end.
    func queue(_ event: TapEvent) {
        self.pending.append(event)
        self.pendingBytes += event.size
        if self.pendingBytes >= Self.pendingByteLimit { self.flush() }
    }

    /// An event outside the frame flow (`open`, `close`): offered now, after the frames queued before it.
    func emit(_ event: TapEvent) {
        self.pending.append(event)
        self.flush()
    }

    /// Offers the queued events to every subscriber (end of a read, a close, the end of the relay).
    func flush() {
        self.readTime = nil
        guard !self.pending.isEmpty else { return }
        for subscriber in self.subscribers { subscriber.offer(self.pending) }
        // A burst's array is let go; the usual few events' storage is kept for the next read.
        if self.pending.count > 256 { self.pending = [] } else { self.pending.removeAll(keepingCapacity: true) }
        self.pendingBytes = 0
    }
}
