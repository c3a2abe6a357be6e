import Logging
import MetricsTestKit
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOPosix
import Prometheus
import Testing

@testable import Gateway

#if canImport(Glibc)
import Glibc
#endif

/// The listener's pause after accept errors (RELIABILITY R-12), under virtual time: which errors pause
/// it, that each pause is counted by listener and errno, and that the log says so without flooding.
/// (That the pause really stops `accept4` and that accepting resumes is `FDExhaustionTests`, with real
/// descriptors.)
@Suite struct AcceptBackoffTests {
    /// Log lines, as `message` and metadata.
    final class RecordedLog: Sendable {
        let lines = NIOLockedValueBox<[(message: String, metadata: [String: String])]>([])

        var logger: Logger {
            Logger(label: "test") { _ in Handler(log: self) }
        }

        struct Handler: LogHandler {
            let log: RecordedLog
            var metadata: Logger.Metadata = [:]
            var logLevel: Logger.Level = .trace
            subscript(metadataKey key: String) -> Logger.Metadata.Value? {
                get { self.metadata[key] }
                set { self.metadata[key] = newValue }
            }
            func log(event: LogEvent) {
                let fields = (event.metadata ?? [:]).mapValues { "\($0)" }
                self.log.lines.withLockedValue { $0.append(("\(event.message)", fields)) }
            }
        }
    }

    struct Listener {
        let channel = EmbeddedChannel()
        let metrics = TestMetrics()
        let log = RecordedLog()
        var loop: EmbeddedEventLoop { self.channel.embeddedEventLoop }

        init() throws {
            let pause = AcceptErrorPause(reporting: .init(listener: "plain", metrics: GatewayMetrics(factory: self.metrics), logger: self.log.logger))
            try self.channel.pipeline.syncOperations.addHandler(pause)
        }

        func acceptFailed(_ errno: Int32) {
            self.channel.pipeline.fireErrorCaught(IOError(errnoCode: errno, reason: "accept"))
        }

        func count(_ error: String) -> Int64 {
            self.metrics.total("wsgate_accept_errors_total", [("listener", "plain"), ("error", error)])
        }
    }

    /// Catalog R-12: out of descriptors, each pause is counted by listener and errno (`wsgate_accept_errors_total`) and logged with the errno's name and the pause length, at most one line a minute per listener, each line saying how many pauses it stands for.
    @Test func eachPauseIsCountedAndTheLogSaysSoOnceAMinute() throws {
        let listener = try Listener()
        listener.acceptFailed(EMFILE)
        #expect(listener.count("EMFILE") == 1)
        let first = listener.log.lines.withLockedValue { $0 }
        #expect(first.count == 1)
        #expect(first.first?.metadata == ["listener": "plain", "error": "EMFILE", "pause": "1000ms", "pauses": "1"])

        // Errors while paused (the listener is not reading; a read cycle's later accepts may still fail)
        // are the same pause: not counted again.
        listener.acceptFailed(EMFILE)
        listener.acceptFailed(ENFILE)
        #expect(listener.count("EMFILE") == 1 && listener.count("ENFILE") == 0)

        // One pause a second for 59 s more: each counted, none logged.
        for _ in 0..<59 {
            listener.loop.advanceTime(by: AcceptErrorPause.pause)
            listener.acceptFailed(EMFILE)
        }
        #expect(listener.count("EMFILE") == 60)
        #expect(listener.log.lines.withLockedValue { $0.count } == 1)

        // A minute after the first line, the next pause is logged with every pause since.
        listener.loop.advanceTime(by: AcceptErrorPause.pause)
        listener.acceptFailed(ENOBUFS)
        #expect(listener.count("ENOBUFS") == 1)
        let lines = listener.log.lines.withLockedValue { $0 }
        #expect(lines.count == 2)
        #expect(lines.last?.metadata["error"] == "ENOBUFS")
        #expect(lines.last?.metadata["pauses"] == "60")
    }

    /// Catalog R-12: only resource shortages pause the listener (EMFILE, ENFILE, ENOBUFS, ENOMEM); other accept errors pass on, uncounted and unlogged.
    @Test func onlyResourceShortagesPauseAndAreCounted() throws {
        for (errno, name) in [(EMFILE, "EMFILE"), (ENFILE, "ENFILE"), (ENOBUFS, "ENOBUFS"), (ENOMEM, "ENOMEM")] {
            let listener = try Listener()
            listener.acceptFailed(errno)
            #expect(listener.count(name) == 1, "\(name)")
            #expect(listener.log.lines.withLockedValue { $0.first?.metadata["error"] } == name)
            #expect(throws: Never.self) { try listener.channel.throwIfErrorCaught() }
        }
        let listener = try Listener()
        listener.acceptFailed(ECONNABORTED)
        #expect(throws: IOError.self) { try listener.channel.throwIfErrorCaught() }
        #expect(listener.metrics.total("wsgate_accept_errors_total") == 0)
        #expect(listener.log.lines.withLockedValue { $0.isEmpty })
    }

    /// Fires an accept error into a real listener's pipeline, as NIO does when `accept4` fails, then
    /// expects it counted under `label` and logged as a gateway listener's pause is (bounded wait: the
    /// error is handled on the listener's event loop).
    static func expectCountedAndLogged(listener: any Channel, label: String, metrics: TestMetrics, log: RecordedLog) async throws {
        listener.pipeline.fireErrorCaught(IOError(errnoCode: EMFILE, reason: "accept"))
        let deadline = ContinuousClock.now + .seconds(5)
        func count() -> Int64 { metrics.total("wsgate_accept_errors_total", [("listener", label), ("error", "EMFILE")]) }
        while count() == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(count() == 1)
        let line = log.lines.withLockedValue { $0.first }
        #expect(line?.message == "accept failed, listener paused")
        #expect(line?.metadata["listener"] == label && line?.metadata["error"] == "EMFILE", "\(String(describing: line))")
    }

    /// Catalog R-12: the admin listener's accept errors are counted (`wsgate_accept_errors_total{listener="admin"}`) and logged like a gateway listener's.
    @Test func theAdminListenersPausesAreCountedAndLogged() async throws {
        let (metrics, log) = (TestMetrics(), RecordedLog())
        let admin = try await AdminServer.start(
            host: "127.0.0.1",
            port: 0,
            registry: PrometheusCollectorRegistry(),
            group: MultiThreadedEventLoopGroup.singleton,
            observation: nil,
            token: AdminToken(),
            acceptErrors: .init(listener: AcceptErrorPause.adminListener, metrics: GatewayMetrics(factory: metrics), logger: log.logger),
            isReady: { true }
        )
        defer { Task { try? await admin.close() } }
        try await Self.expectCountedAndLogged(listener: admin.channel, label: "admin", metrics: metrics, log: log)
    }

    /// Catalog R-12: the demo upstream's accept errors are counted (`wsgate_accept_errors_total{listener="demo"}`) and logged like a gateway listener's.
    @Test func theDemoUpstreamsPausesAreCountedAndLogged() async throws {
        let (metrics, log) = (TestMetrics(), RecordedLog())
        let group = MultiThreadedEventLoopGroup.singleton
        let demo = try await DemoUpstream.start(host: "127.0.0.1", port: 0, group: group, metricsFactory: metrics, logger: log.logger)
        defer { Task { try? await demo.close() } }
        try await Self.expectCountedAndLogged(listener: demo.listener, label: "demo", metrics: metrics, log: log)
    }
}
