import Frames
import NIOCore

/// The frame deadline (`timeouts.frame`, issue #10 behaviour 3): a frame, and a fragmented message, must
/// arrive whole within the deadline however steadily its bytes trickle, otherwise its sender gets Close
/// 1008 and the other leg 1001 at its own frame boundary (``RelayCloseState``). A peer that keeps one
/// message open forever by sending a byte every few seconds would otherwise hold a connection (and, with
/// the frame half relayed, the other leg's Close and keep-alive pings) for ever; the idle timeout cannot
/// see it because every byte is activity.
///
/// Cost: no work per frame beyond clearing ``RelaySession/LegState/frameStart`` at message ends; the
/// start is taken at the end of a read that leaves a message open, and one timer per direction is armed
/// only while a message is open (re-armed at most once per deadline).
extension Relay {
    /// Called at the end of each read from `side`; `parserIdle`: its parser is between messages.
    func frameDeadlineAfterRead(from side: Side, parserIdle: Bool, now: NIODeadline) {
        let start: NIODeadline? = self.direction(side) { direction in
            if parserIdle {
                direction.leg.frameStart = nil
                return nil
            }
            if direction.leg.frameStart == nil { direction.leg.frameStart = now }
            return direction.frameTimerArmed ? nil : direction.leg.frameStart
        }
        if let start, let timeout = self.policy.policy.frameTimeout {
            self.scheduleFrameDeadline(side, at: start + timeout)
        }
    }

    private func scheduleFrameDeadline(_ side: Side, at deadline: NIODeadline) {
        self.schedule(.frameDeadline(side), at: deadline)
        self.direction(side) { $0.frameTimerArmed = true }
    }

    func frameDeadlineFired(_ side: Side) {
        self.direction(side) { $0.frameTimerArmed = false }
        guard !self.finished, self.closeState.legs[side].isOpen, let timeout = self.policy.policy.frameTimeout,
            let start = self.direction(side, { $0.leg.frameStart })
        else { return }
        let now = self.transport.now
        if self.heldRead[side] || self.direction(side, { $0.throttled != nil }) {
            // The gateway itself is not reading the sender (backpressure from the other leg, or a
            // throttle): the time it is held does not count against it.
            self.direction(side) { $0.leg.frameStart = now }
            return self.scheduleFrameDeadline(side, at: now + timeout)
        }
        guard now >= start + timeout else { return self.scheduleFrameDeadline(side, at: start + timeout) }
        self.direction(side) { $0.leg.frameStart = nil }
        self.policy.countFrameDeadlineClose(side)
        self.perform(
            self.closeState.policyViolation(by: side, code: .policyViolation, reason: "frame deadline", failed: false, boundary: self.boundaries)
        )
    }
}
