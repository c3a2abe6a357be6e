import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import Gateway

/// ``ForwardAuthPool`` and ``ForwardAuthAttempt`` on an `EmbeddedEventLoop` under virtual time, the
/// auth service's connections being `EmbeddedChannel`s.
@Suite struct ForwardAuthPoolTests {
    typealias Outcome = Result<ForwardAuthResponse, ForwardAuthFailure>

    final class Harness {
        let loop = EmbeddedEventLoop()
        let connector: EmbeddedUpstreamConnector
        let pool: ForwardAuthPool

        init(configure: (inout GatewayConfiguration.ForwardAuthentication) -> Void = { _ in }) {
            var forward = GatewayConfiguration.ForwardAuthentication(url: "http://127.0.0.1:9/")
            (forward.host, forward.port) = ("127.0.0.1", 9)
            configure(&forward)
            self.connector = EmbeddedUpstreamConnector(loop: self.loop, outcome: .connect)
            self.pool = ForwardAuthPool(configuration: forward, eventLoop: self.loop, connector: self.connector)
        }

        /// Starts one request with `timeout`; its outcome once it has one.
        func request(timeout: TimeAmount = .seconds(5)) -> () -> Outcome? {
            let promise = self.loop.makePromise(of: Outcome.self)
            let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["Host": "auth"])
            let attempt = ForwardAuthAttempt(request: head, pool: self.pool, promise: promise)
            attempt.deadline = self.loop.assumeIsolated().scheduleTask(in: timeout) { attempt.cancel(.timeout) }
            self.pool.acquire(attempt)
            let outcome = NIOLockedValueBox<Outcome?>(nil)
            promise.futureResult.whenSuccess { value in outcome.withLockedValue { $0 = value } }
            return {
                self.loop.run()
                return outcome.withLockedValue { $0 }
            }
        }

        func answer(_ channel: EmbeddedChannel, _ text: String = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") {
            _ = try? channel.readOutbound(as: ByteBuffer.self)
            _ = try? channel.readOutbound(as: ByteBuffer.self)
            _ = try? channel.writeInbound(ByteBuffer(string: text))
            self.loop.run()
        }
    }

    @Test func theDeadlineCutsAnUnansweredRequestAndClosesItsConnection() throws {
        let harness = Harness()
        let outcome = harness.request(timeout: .milliseconds(500))
        let channel = try #require(harness.connector.channels.first)
        harness.loop.advanceTime(by: .milliseconds(499))
        #expect(outcome() == nil)
        harness.loop.advanceTime(by: .milliseconds(1))
        #expect(outcome().map { if case .failure(.timeout) = $0 { true } else { false } } == true)
        #expect(!channel.isActive)
        #expect(harness.pool.open == 0)
    }

    @Test func anIdleConnectionIsReusedThenClosedAtTheIdleTimeout() throws {
        let harness = Harness { $0.idleTimeout = .seconds(2) }
        let first = harness.request()
        let channel = try #require(harness.connector.channels.first)
        harness.answer(channel)
        #expect(first().map { if case .success = $0 { true } else { false } } == true)
        #expect(harness.pool.idleCount == 1 && harness.pool.open == 1)
        harness.loop.advanceTime(by: .seconds(1))
        let second = harness.request()
        harness.answer(channel)
        #expect(second().map { if case .success = $0 { true } else { false } } == true)
        #expect(harness.connector.channels.count == 1, "the idle connection was not reused")
        harness.loop.advanceTime(by: .seconds(2) - .nanoseconds(1))
        #expect(channel.isActive)
        harness.loop.advanceTime(by: .nanoseconds(1))
        #expect(!channel.isActive && harness.pool.open == 0 && harness.pool.idleCount == 0)
    }

    @Test func aReusedConnectionClosedBeforeAnyByteIsRetriedOnceOnANewOne() throws {
        let harness = Harness()
        let first = harness.request()
        let stale = try #require(harness.connector.channels.first)
        harness.answer(stale)
        _ = first()
        let second = harness.request()
        stale.close(promise: nil)
        harness.loop.run()
        #expect(second() == nil)
        #expect(harness.connector.channels.count == 2)
        let fresh = try #require(harness.connector.channels.last)
        harness.answer(fresh)
        #expect(second().map { if case .success = $0 { true } else { false } } == true)
    }

    @Test func theCapQueuesThenRefusesAndAFreedConnectionServesTheFirstWaiter() throws {
        let harness = Harness {
            $0.maxConnections = 1
            $0.maxWaiting = 1
        }
        let first = harness.request()
        let queued = harness.request()
        let refused = harness.request()
        #expect(refused().map { if case .failure(.overloaded) = $0 { true } else { false } } == true)
        #expect(harness.connector.channels.count == 1 && harness.pool.waiting == 1)
        let channel = try #require(harness.connector.channels.first)
        harness.answer(channel)
        #expect(first() != nil)
        harness.answer(channel)
        #expect(queued().map { if case .success = $0 { true } else { false } } == true)
        #expect(harness.connector.channels.count == 1)
    }

    @Test func anAnswerWithConnectionCloseIsNotKept() throws {
        let harness = Harness()
        let first = harness.request()
        let channel = try #require(harness.connector.channels.first)
        harness.answer(channel, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        #expect(first() != nil)
        #expect(!channel.isActive && harness.pool.open == 0)
    }

    /// A reload or shutdown retires the pool: the idle connection closes at once (not at the 30 s idle
    /// timeout); a request in flight still gets its answer, then its connection closes.
    @Test func aRetiredPoolClosesItsIdleConnectionNowAndABusyOneOnceAnswered() throws {
        let harness = Harness { $0.idleTimeout = .seconds(30) }
        let first = harness.request()
        let inFlight = harness.request()
        let (idle, busy) = (harness.connector.channels[0], harness.connector.channels[1])
        harness.answer(idle)
        #expect(first() != nil && harness.pool.idleCount == 1 && harness.pool.open == 2)
        harness.pool.retire()
        harness.loop.run()
        #expect(!idle.isActive && busy.isActive)
        #expect(harness.pool.idleCount == 0 && harness.pool.open == 1)
        harness.answer(busy)
        #expect(inFlight().map { if case .success = $0 { true } else { false } } == true)
        #expect(!busy.isActive && harness.pool.open == 0 && harness.pool.idleCount == 0)
        // A request on a retired pool (from a connection admitted before the reload) is still served.
        let late = harness.request()
        let third = try #require(harness.connector.channels.last)
        harness.answer(third)
        #expect(late().map { if case .success = $0 { true } else { false } } == true)
        #expect(!third.isActive && harness.pool.open == 0)
    }

    /// A request queued for a connection when the pool retires is served by the freed connection, which
    /// then closes.
    @Test func aRetiredPoolStillServesItsQueuedRequests() throws {
        let harness = Harness {
            $0.maxConnections = 1
            $0.idleTimeout = .seconds(30)
        }
        let first = harness.request()
        let queued = harness.request()
        let channel = try #require(harness.connector.channels.first)
        #expect(harness.pool.waiting == 1)
        harness.pool.retire()
        harness.answer(channel)
        #expect(first() != nil && channel.isActive && harness.pool.waiting == 0)
        harness.answer(channel)
        #expect(queued().map { if case .success = $0 { true } else { false } } == true)
        #expect(!channel.isActive && harness.pool.open == 0 && harness.connector.channels.count == 1)
    }
}
