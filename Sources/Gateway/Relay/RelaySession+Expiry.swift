import Foundation
import Frames
import NIOCore

/// Closing a connection when its credential expires (issue #13 §2, "beyond the anchors"): a route with
/// `auth.jwt.close_on_expiry` hands the token's `exp` to the relay (``RelayPolicy/tokenExpiry``, the
/// time left when the relay starts), and at that moment both legs get Close 1008 "token expired"
/// (RFC 6455 §7.4.1: "a message that violates its policy"), each at its own frame boundary like every
/// close the gateway starts (``RelayCloseState/gatewayClose(_:reason:boundary:timed:)``): a frame being
/// relayed is finished first, and a fragmented message may be cut only between its frames, which a
/// control frame may be (RFC 6455 §5.4). The upstream learns why, and the client's application can
/// reconnect with a fresh token.
///
/// Cost: one timer per connection on such routes, armed with the first leg; nothing per frame.
extension Relay {
    /// Arms the expiry close (from ``policyAttached(_:)``, once per connection).
    func expiryAttached() {
        guard let delay = self.policy.policy.tokenExpiry, !self.policy.expiryArmed else { return }
        self.policy.expiryArmed = true
        self.schedule(.expiry, in: max(delay, .zero))
    }

    func tokenExpired() {
        guard !self.finished else { return }
        self.policy.countTokenExpiryClose()
        self.gatewayClose(.policyViolation, reason: "token expired")
    }
}

extension RelayPolicy {
    static let longestExpiry = 365.0 * 86_400
    /// The time from `now` (wall clock) to `expiresAt` (seconds since 1970), or nil without one.
    static func timeLeft(until expiresAt: Int64?, now: Double = Date().timeIntervalSince1970) -> TimeAmount? {
        guard let expiresAt else { return nil }
        // Clamped to a year either way: `exp` can be any number, a timer cannot (Int64 nanoseconds).
        let seconds = min(max(Double(expiresAt) - now, -Self.longestExpiry), Self.longestExpiry)
        return .nanoseconds(Int64((seconds * 1e9).rounded(.up)))
    }
}
