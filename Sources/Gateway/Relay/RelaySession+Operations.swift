import Frames
import NIOCore

/// What a relay session keeps for operations (issue #6): where its metrics go and whether the drain
/// deadline closed it.
struct RelayOperations {
    /// Close codes and protocol violations are counted here (at most a few per connection, never per
    /// frame); `nil` counts nothing.
    var metrics: GatewayMetrics?
    /// The connection was closed from outside (the drain deadline): its TCP closes are not counted as
    /// lost by the peer.
    var forceClosed = false
    /// A drain asked this connection to close (`/connections` shows it `draining`).
    var draining = false

    static let drainReason = "gateway shutting down"
}

extension Relay {
    /// The reason sent with the drain's Close 1001.
    static var drainReason: String { RelayOperations.drainReason }

    /// Drain (SIGTERM; it reaches the connection as NIO's `ChannelShouldQuiesceEvent`, see
    /// ``RelayHandler``): Close 1001 to each leg as soon as the direction toward *that* leg is at a frame
    /// boundary, independently (issue #10, behaviour 2). A client in the middle of sending a large frame
    /// gets its 1001 at once (the direction toward it is idle); the upstream, toward which that frame is
    /// half relayed, gets the rest of the frame and then its 1001 — or its TCP ended by the drain
    /// deadline, never a Close inside the frame. The close handshakes then run as usual (close timeout).
    func drain() {
        guard !self.finished else { return }
        self.operations.draining = true
        self.gatewayClose(.goingAway, reason: Self.drainReason, timed: false)
    }

    /// The client channel is being closed from outside the relay (the drain deadline,
    /// ``ConnectionRegistry/forceCloseAll()``): the upstream leg goes with it, and neither TCP close counts
    /// as lost by its peer.
    func closedFromOutside() {
        self.operations.forceClosed = true
        self.transport.close(.upstream)
    }

}
