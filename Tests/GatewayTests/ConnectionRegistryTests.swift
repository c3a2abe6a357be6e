import NIOCore
import NIOEmbedded
import Testing

@testable import Gateway

/// ``ConnectionRegistry``: the drain reaches connections as `ChannelShouldQuiesceEvent` (issue #10), and
/// the wait for the last connection is woken by its close, not polled.
@Suite struct ConnectionRegistryTests {
    /// Records the drain events that reach the end of a pipeline.
    final class QuiesceRecorder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var events = 0
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is ChannelShouldQuiesceEvent { self.events += 1 }
        }
    }

    static func channel() throws -> (EmbeddedChannel, QuiesceRecorder) {
        let recorder = QuiesceRecorder()
        let channel = EmbeddedChannel(handler: recorder)
        try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, recorder)
    }

    @Test func connectionsAreCountedUntilTheyClose() throws {
        let registry = ConnectionRegistry()
        let (a, _) = try Self.channel()
        let (b, _) = try Self.channel()
        registry.register(a)
        registry.register(b)
        #expect(registry.count == 2)
        _ = try a.finish(acceptAlreadyClosed: true)
        #expect(registry.count == 1)
        _ = try b.finish(acceptAlreadyClosed: true)
        #expect(registry.count == 0)
        #expect(registry.makeConnectionID() != registry.makeConnectionID())
    }

    @Test func theDrainIsAnEventFiredIntoEveryConnection() throws {
        let registry = ConnectionRegistry()
        let (a, recorderA) = try Self.channel()
        let (b, recorderB) = try Self.channel()
        registry.register(a)
        registry.register(b)
        #expect(!registry.isDraining)
        registry.startDrain()
        #expect(registry.isDraining)
        #expect(recorderA.events == 1)
        #expect(recorderB.events == 1)
    }

    @Test func aConnectionThatReachesTheRelayDuringADrainGetsTheEventThen() throws {
        let registry = ConnectionRegistry()
        let (a, recorder) = try Self.channel()
        registry.register(a)
        registry.attach(a)
        #expect(recorder.events == 0, "no drain yet")
        registry.markDraining()
        registry.attach(a)
        #expect(recorder.events == 1)
    }

    @Test func forceCloseAllClosesEveryConnection() throws {
        let registry = ConnectionRegistry()
        let (a, _) = try Self.channel()
        registry.register(a)
        #expect(registry.forceCloseAll() == 1)
        a.embeddedEventLoop.run()
        #expect(!a.isActive)
        #expect(registry.count == 0)
    }

    @MainActor  // the embedded channel stays on one thread across the awaits
    @Test func waitUntilEmptyIsWokenByTheLastCloseAndTimesOutOtherwise() async throws {
        let registry = ConnectionRegistry()
        #expect(await registry.waitUntilEmpty(timeout: .zero), "nothing open: true at once")
        let (a, _) = try Self.channel()
        registry.register(a)
        #expect(await !registry.waitUntilEmpty(timeout: .milliseconds(20)), "still open at the deadline")
        // Woken by the close long before its (one hour) deadline.
        async let emptied = registry.waitUntilEmpty(timeout: .seconds(3600))
        registry.forceCloseAll()
        a.embeddedEventLoop.run()
        #expect(await emptied)
    }
}
