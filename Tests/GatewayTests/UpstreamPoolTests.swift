import NIOCore
import Testing

@testable import Gateway

@Suite struct UpstreamPoolTests {
    private let members: [GatewayConfiguration.Upstream] = (1...3).map { .init(scheme: .ws, host: "10.0.0.\($0)", port: 80) }

    @Test func roundRobinOverAllMembers() {
        let pool = UpstreamPool(self.members)
        #expect((0..<6).map { _ in pool.pick().index } == [0, 1, 2, 0, 1, 2])
    }

    @Test func threeConsecutiveFailuresEjectAMemberForTheCoolDown() {
        let pool = UpstreamPool(self.members, ejectAfterFailures: 3, ejectionTime: .seconds(10))
        let now = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
        pool.report(1, success: false, now: now)
        pool.report(1, success: false, now: now)
        #expect((0..<3).map { _ in pool.pick(now: now).index } == [0, 1, 2], "two failures do not eject")
        pool.report(1, success: false, now: now)
        #expect((0..<4).map { _ in pool.pick(now: now).index } == [0, 2, 0, 2])
        // After the cool-down it is back.
        let later = now + .seconds(11)
        #expect((0..<3).map { _ in pool.pick(now: later).index }.sorted() == [0, 1, 2])
    }

    @Test func aSuccessResetsTheFailureCount() {
        let pool = UpstreamPool(self.members, ejectAfterFailures: 2)
        let now = NIODeadline.now()
        pool.report(0, success: false, now: now)
        pool.report(0, success: true, now: now)
        pool.report(0, success: false, now: now)
        #expect((0..<3).map { _ in pool.pick(now: now).index } == [0, 1, 2])
    }

    @Test func withEveryMemberEjectedRoundRobinGoesOn() {
        let pool = UpstreamPool(self.members, ejectAfterFailures: 1)
        let now = NIODeadline.now()
        for index in 0..<3 { pool.report(index, success: false, now: now) }
        #expect((0..<3).map { _ in pool.pick(now: now).index }.sorted() == [0, 1, 2])
    }
}
