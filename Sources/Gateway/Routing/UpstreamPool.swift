import NIOConcurrencyHelpers
import NIOCore

/// The members of one route's upstream group: round robin over healthy members, with passive health
/// checks (DESIGN §1.6): after `ejectAfterFailures` consecutive connect failures a member is left out for
/// `ejectionTime`; when every member is ejected, round robin goes on over all of them.
final class UpstreamPool: Sendable {
    struct Member: Sendable {
        var upstream: GatewayConfiguration.Upstream
        var consecutiveFailures = 0
        var ejectedUntil: NIODeadline = .distantPast
    }

    private struct State: Sendable {
        var members: [Member]
        var next = 0
    }

    private let state: NIOLockedValueBox<State>
    let ejectAfterFailures: Int
    let ejectionTime: TimeAmount

    init(_ upstreams: [GatewayConfiguration.Upstream], ejectAfterFailures: Int = 3, ejectionTime: TimeAmount = .seconds(10)) {
        precondition(!upstreams.isEmpty, "a route has at least one upstream (checked by the configuration)")
        self.state = NIOLockedValueBox(State(members: upstreams.map { Member(upstream: $0) }))
        self.ejectAfterFailures = ejectAfterFailures
        self.ejectionTime = ejectionTime
    }

    /// The next member to try, and its index for ``report(_:success:)``.
    func pick(now: NIODeadline = .now()) -> (index: Int, upstream: GatewayConfiguration.Upstream) {
        self.state.withLockedValue { state in
            let count = state.members.count
            for offset in 0..<count {
                let index = (state.next + offset) % count
                if state.members[index].ejectedUntil <= now {
                    state.next = (index + 1) % count
                    return (index, state.members[index].upstream)
                }
            }
            let index = state.next % count
            state.next = (index + 1) % count
            return (index, state.members[index].upstream)
        }
    }

    /// The result of a connection attempt to member `index`.
    func report(_ index: Int, success: Bool, now: NIODeadline = .now()) {
        self.state.withLockedValue { state in
            if success {
                state.members[index].consecutiveFailures = 0
            } else {
                state.members[index].consecutiveFailures += 1
                if state.members[index].consecutiveFailures >= self.ejectAfterFailures {
                    state.members[index].ejectedUntil = now + self.ejectionTime
                    state.members[index].consecutiveFailures = 0
                }
            }
        }
    }
}
