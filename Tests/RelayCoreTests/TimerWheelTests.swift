import Testing

@testable import RelayCore

@Suite struct TimerWheelTests {
    @Test func firesEachTimerAtItsTickAndNotBefore() {
        var wheel = TimerWheel(slotCount: 8)
        wheel.schedule(1, at: 3)
        wheel.schedule(2, at: 5)
        wheel.schedule(3, at: 5)
        var fired: [UInt64] = []
        wheel.advance(to: 2) { fired.append($0) }
        #expect(fired.isEmpty)
        wheel.advance(to: 3) { fired.append($0) }
        #expect(fired == [1])
        wheel.advance(to: 10) { fired.append($0) }
        #expect(fired == [1, 2, 3])
        #expect(wheel.count == 0)
    }

    @Test func deadlinesBeyondOneTurnWaitForTheirRound() {
        var wheel = TimerWheel(slotCount: 4)
        wheel.schedule(7, at: 9)  // slot 1, two turns out
        var fired: [UInt64] = []
        wheel.advance(to: 5) { fired.append($0) }  // passes slot 1 at tick 5: not due
        #expect(fired.isEmpty)
        wheel.advance(to: 8) { fired.append($0) }
        #expect(fired.isEmpty)
        wheel.advance(to: 9) { fired.append($0) }
        #expect(fired == [7])
    }

    @Test func aJumpOfManyTurnsFiresEverythingDueOnce() {
        var wheel = TimerWheel(slotCount: 4)
        for key in 0..<20 { wheel.schedule(UInt64(key), at: UInt64(key % 7) + 1) }
        var fired: [UInt64] = []
        wheel.advance(to: 1000) { fired.append($0) }
        #expect(fired.sorted() == (0..<20).map { UInt64($0) })
        #expect(wheel.count == 0)
    }

    @Test func aPastDeadlineFiresOnTheNextAdvance() {
        var wheel = TimerWheel(slotCount: 4, now: 10)
        wheel.schedule(1, at: 2)
        var fired: [UInt64] = []
        wheel.advance(to: 11) { fired.append($0) }
        #expect(fired == [1])
    }

    @Test func aTimerScheduledAfterOthersFiredFiresInItsTurn() {
        var wheel = TimerWheel(slotCount: 4)
        wheel.schedule(1, at: 1)
        var fired: [UInt64] = []
        var rescheduled = false
        wheel.advance(to: 1) { key in
            fired.append(key)
            rescheduled = true
        }
        if rescheduled { wheel.schedule(2, at: 5) }
        wheel.advance(to: 5) { fired.append($0) }
        #expect(fired == [1, 2])
    }
}
