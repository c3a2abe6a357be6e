import NIOConcurrencyHelpers
import Testing

@testable import Gateway

/// A tap's queue (issue #14 §2): bounded in events and bytes, dropping and counting what does not fit,
/// never blocking the producer, and waking the admin side once per busy spell.
@Suite struct TapSubscriberTests {
    static func frame(_ payload: [UInt8] = [1]) -> TapEvent {
        .frame(
            TapFrame(
                connection: 1,
                time: 0,
                from: .client,
                opcode: .binary,
                messageOpcode: .binary,
                fin: true,
                rsv1: false,
                length: payload.count,
                payload: payload,
                compressed: false
            )
        )
    }

    @Test func aFullQueueDropsAndCountsAndWakesOnlyOncePerBusySpell() {
        let wakes = NIOLockedValueBox(0)
        let subscriber = TapSubscriber(filter: .init(), maxEvents: 4) { wakes.withLockedValue { $0 += 1 } }
        for _ in 0..<10 { subscriber.offer(Self.frame()) }
        #expect(wakes.withLockedValue { $0 } == 1)
        #expect(subscriber.queued.events == 4)
        #expect(subscriber.queued.dropped == 6)
        let first = subscriber.take(max: 3)
        #expect(first.events.count == 3 && first.dropped == 6)
        let second = subscriber.take(max: 3)
        #expect(second.events.count == 1 && second.dropped == 0)
        #expect(subscriber.take(max: 3).events.isEmpty)
        // Idle again: the next event wakes the admin side.
        subscriber.offer(Self.frame())
        #expect(wakes.withLockedValue { $0 } == 2)
    }

    @Test func theQueueIsBoundedInBytes() {
        let subscriber = TapSubscriber(filter: .init(), maxEvents: 1000, maxBytes: 3000) {}
        for _ in 0..<5 { subscriber.offer(Self.frame([UInt8](repeating: 0, count: 1000))) }
        #expect(subscriber.queued.events == 2)
        #expect(subscriber.queued.bytes <= 3000)
        #expect(subscriber.queued.dropped == 3)
        #expect(TapEvent.droppedLine(3) == "{\"event\":\"dropped\",\"count\":3}\n")
    }

    @Test func aClosedTapQueuesNothing() {
        let subscriber = TapSubscriber(filter: .init()) {}
        subscriber.offer(Self.frame())
        subscriber.close()
        subscriber.offer(Self.frame())
        #expect(subscriber.queued.events == 0)
    }

    @Test func theHubCapsConcurrentTaps() {
        let hub = TapHub(live: LiveConnectionTable())
        var tap = GatewayConfiguration.Admin.Tap()
        tap.maxTaps = 2
        hub.configure(tap)
        let subscribers = (0..<3).map { _ in TapSubscriber(filter: .init()) {} }
        #expect(hub.attach(subscribers[0]))
        #expect(hub.attach(subscribers[1]))
        #expect(!hub.attach(subscribers[2]))
        hub.detach(subscribers[0])
        #expect(hub.attach(subscribers[2]))
        #expect(hub.count == 2)
    }
}
