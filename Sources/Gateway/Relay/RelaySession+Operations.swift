import Frames
import NIOCore

/// What a relay session keeps for operations (issue #6): where its metrics go and whether a drain is
/// waiting for a frame boundary.
struct RelayOperations {
    /// Close codes and protocol violations are counted here (at most a few per connection, never per
    /// frame); `nil` counts nothing.
    var metrics: GatewayMetrics?
    /// A drain was asked for while a frame was half relayed; Close 1001 goes out when it ends.
    var drainPending = false
    /// The drain deadline closed both legs: their TCP closes are not counted as lost by the peer.
    var forceClosed = false
}

extension RelaySession {
    /// The reason sent with the drain's Close 1001.
    static let drainReason = "gateway shutting down"

    /// Drain (SIGTERM): Close 1001 to both legs, at a frame boundary. If a frame is half relayed in
    /// either direction, the Close waits until it has been relayed whole (DESIGN §3: a Close is only
    /// ever written between frames), so nothing the gateway received before the drain is cut. The
    /// close handshakes then run as usual (close timeout); the drain deadline bounds all of it.
    func drain() {
        guard !self.finished else { return }
        if self.legs.client.unfinishedPayload > 0 || self.legs.upstream.unfinishedPayload > 0 {
            self.operations.drainPending = true
        } else {
            self.operations.drainPending = false
            self.gatewayClose(.goingAway, reason: Self.drainReason)
        }
    }

    /// Called at the end of every relayed frame while a drain is pending.
    func drainAtFrameBoundary() {
        guard self.legs.client.unfinishedPayload <= 0 && self.legs.upstream.unfinishedPayload <= 0 else { return }
        self.operations.drainPending = false
        self.gatewayClose(.goingAway, reason: Self.drainReason)
    }

    /// The drain deadline passed: close both legs now.
    func forceClose() {
        self.operations.forceClosed = true
        for context in [self.contexts.client, self.contexts.upstream] {
            context?.close(promise: nil)
        }
    }
}
