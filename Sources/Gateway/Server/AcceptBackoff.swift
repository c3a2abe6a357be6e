import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

extension ServerBootstrap {
    /// Stops accepting for a second after `accept` fails for want of a resource (EMFILE, ENFILE,
    /// ENOBUFS, ENOMEM; RELIABILITY R-12): ``AcceptErrorPause``, which counts and logs each pause when
    /// given a `report` (every listener of `wsgate`: the gateway's by their names, the admin listener
    /// as `admin`, the demo upstream as `demo`; without one it only pauses).
    func backingOffAfterAcceptErrors(reporting report: AcceptErrorPause.Report? = nil) -> ServerBootstrap {
        self.serverChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(AcceptErrorPause(reporting: report))
            }
        }
    }
}

/// On a listener: after `accept` fails for want of a resource, stop reading it (auto-read off) for
/// ``pause``, then try again; other errors pass. Waiting connections stay in the backlog and are
/// accepted within about a second of descriptors being freed; connections already accepted are
/// unaffected. Each pause is counted (`wsgate_accept_errors_total{listener,error}`) and logged, at most
/// one line per ``AcceptPauseLog/interval`` (a line says how many pauses it stands for).
///
/// Why not NIO's `AcceptBackoffHandler`: it delays the listener's next `read()`, but when `accept`
/// fails before any connection of a read cycle was accepted, NIO still counts the read as pending, never
/// asks the pipeline for another and leaves the listener registered for readability, which epoll
/// reports again at once. Out of descriptors, one event loop retried `accept4` about 5,800 times a
/// second (strace, `wsgate run` under `ulimit -n 64`), with or without that handler. Turning auto-read
/// off unregisters the listener from epoll; turning it back on registers it and reads once.
final class AcceptErrorPause: ChannelInboundHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    /// How long the listener stops accepting after such an error: NIO's default backoff.
    static let pause: TimeAmount = .seconds(1)

    /// The `listener` label of the admin listener's and the demo upstream's pauses (a gateway listener
    /// is labelled by its name, by default `host:port`).
    static let adminListener = "admin"
    static let demoListener = "demo"

    /// Where a listener's pauses are counted and logged.
    struct Report: Sendable {
        var listener: String
        var metrics: GatewayMetrics
        var logger: Logger
    }

    private let report: Report?
    private var log = AcceptPauseLog()
    private var resume: Scheduled<Void>?

    init(reporting report: Report?) {
        self.report = report
    }

    /// The accept errors that a pause can outlast (out of descriptors or kernel memory), by name.
    static func resourceShortage(_ error: any Error) -> AcceptError? {
        guard let error = error as? IOError else { return nil }
        return AcceptError(errno: error.errnoCode)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let shortage = Self.resourceShortage(error) else {
            context.fireErrorCaught(error)
            return
        }
        guard self.resume == nil else { return }
        let channel = context.channel
        try? channel.syncOptions?.setOption(.autoRead, value: false)
        self.resume = context.eventLoop.assumeIsolated().scheduleTask(in: Self.pause) {
            self.resume = nil
            try? channel.syncOptions?.setOption(.autoRead, value: true)
        }
        guard let report = self.report else { return }
        report.metrics.acceptPaused(listener: report.listener, shortage)
        if let pauses = self.log.paused(at: context.eventLoop.now) {
            report.logger.warning(
                "accept failed, listener paused",
                metadata: [
                    "listener": "\(report.listener)", "error": "\(shortage.rawValue)",
                    "pause": "\(Self.pause.nanoseconds / 1_000_000)ms", "pauses": "\(pauses)",
                ]
            )
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.resume?.cancel()
        self.resume = nil
    }
}

@available(*, unavailable)
extension AcceptErrorPause: Sendable {}

/// An `accept` that failed for want of a resource (the listener pauses), by errno name.
enum AcceptError: String, MetricLabelValue {
    case emfile = "EMFILE"
    case enfile = "ENFILE"
    case enobufs = "ENOBUFS"
    case enomem = "ENOMEM"

    /// `nil` for an errno that is not a resource shortage.
    init?(errno: Int32) {
        switch errno {
        case EMFILE: self = .emfile
        case ENFILE: self = .enfile
        case ENOBUFS: self = .enobufs
        case ENOMEM: self = .enomem
        default: return nil
        }
    }
}

/// Which accept pauses get a log line: the first, then at most one per ``interval``. A line reports the
/// pauses since the last line (itself included), so a listener out of descriptors for an hour writes
/// 60 lines, not 3,600, and none is lost from the count.
struct AcceptPauseLog: Sendable {
    static let interval: TimeAmount = .seconds(60)

    private var lastLine: NIODeadline?
    private var unlogged = 0

    /// A pause began at `now`: the number of pauses to report in a line now, or `nil` for no line.
    mutating func paused(at now: NIODeadline) -> Int? {
        self.unlogged += 1
        if let last = self.lastLine, now < last + Self.interval { return nil }
        self.lastLine = now
        defer { self.unlogged = 0 }
        return self.unlogged
    }
}
