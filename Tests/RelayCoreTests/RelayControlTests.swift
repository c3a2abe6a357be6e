import Synchronization
import Testing

@testable import RelayCore

#if canImport(Glibc)
import Glibc
#endif

/// The control queue into a loop, without a loop: commands in order, the eventfd signalled, and a loop
/// that has ended answering snapshots instead of leaving callers waiting.
@Suite struct RelayControlTests {
    static func readable(_ fd: Int32) -> Bool {
        var pollFD = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&pollFD, 1, 0) == 1
    }

    @Test func commandsArriveInOrderAndTheEventfdSignalsThem() throws {
        let queue = try RelayControlQueue()
        #expect(!Self.readable(queue.eventfd))
        #expect(queue.post(.drain(milliseconds: 5)))
        #expect(queue.post(.stop))
        #expect(Self.readable(queue.eventfd))
        let commands = queue.take()
        #expect(!Self.readable(queue.eventfd), "taking clears the eventfd")
        #expect(commands.count == 2)
        if case .drain(let milliseconds) = commands.first { #expect(milliseconds == 5) } else { Issue.record("drain first") }
        if case .stop = commands.last {} else { Issue.record("stop second") }
        #expect(queue.take().isEmpty)
    }

    @Test func aLoopThatEndedAnswersSnapshotsAndRefusesCommands() throws {
        let queue = try RelayControlQueue()
        let answers = Answers()
        queue.post(.snapshot { answers.append($0) })  // queued before the end: answered by `end`
        var last = RelayCounters()
        last.accepted = 7
        queue.end(with: last)
        #expect(answers.values.map(\.accepted) == [7])
        #expect(!queue.post(.snapshot { answers.append($0) }), "answered at once, not queued")
        #expect(answers.values.map(\.accepted) == [7, 7])
        #expect(!queue.post(.stop))
        #expect(queue.take().isEmpty)
    }

    @Test func countersAddFieldByFieldAndCloseCodesByCode() {
        var codes = CloseCodeCounts()
        for code: UInt16 in [1000, 1000, 1001, 1015, 3001, 4999, 999, 5000] { codes.count(code) }
        #expect(codes.byCode == [1000: 2, 1001: 1, 1015: 1, 3000: 1, 4000: 1, 0: 2])
        var one = RelayCounters()
        one.accepted = 2
        one.messagesToClient = 10
        one.closesByCode = [1000: 1]
        var two = RelayCounters()
        two.accepted = 3
        two.active = 1
        two.closesByCode = [1000: 2, 1001: 1]
        let sum = one.adding(two)
        #expect(sum.accepted == 5 && sum.active == 1 && sum.messagesToClient == 10)
        #expect(sum.closesByCode == [1000: 3, 1001: 1])
    }
}

/// Snapshots answered on whatever thread, collected for a test.
final class Answers: Sendable {
    private let stored = Mutex<[RelayCounters]>([])

    func append(_ counters: RelayCounters) { self.stored.withLock { $0.append(counters) } }

    var values: [RelayCounters] { self.stored.withLock { $0 } }
}
