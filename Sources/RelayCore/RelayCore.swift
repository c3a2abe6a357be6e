import Dispatch
import Frames
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What the prototype core relays: one plain `ws://` listener to one upstream (issue #15 part 2).
public struct RelayCoreConfiguration: Sendable {
    public var listenHost = "127.0.0.1"
    /// 0: the OS picks (tests); read the port from ``RelayCore/port``.
    public var listenPort: UInt16 = 0
    public var upstreamHost = "127.0.0.1"
    public var upstreamPort: UInt16 = 18900
    /// Event loops, one thread each, each with its own SO_REUSEPORT listener.
    public var loops = 1
    public var maxConnectionsPerLoop = 32768
    /// The size of a pool buffer: one read, one write.
    public var bufferSize = 16 * 1024
    public var frameLimits = FrameParser.Configuration()
    /// Whole small messages through `FrameParser`'s batch entry points (core22); off: per event only.
    public var batchedParsing = true
    /// Bytes of masking keys drawn per `getrandom(2)` by a loop's generator.
    public var maskingKeyBatchBytes = 4096
    /// A `wss://` listener when set: TLS is terminated on the loops (core22).
    public var tls: RelayTLSContext?
    public var handshakeTimeoutMilliseconds = 10_000
    public var closeTimeoutMilliseconds = 5_000
    public var tickMilliseconds = 100
    /// How long a listener stops accepting after `accept` ran out of descriptors or memory (R-12; the
    /// gateway's `AcceptErrorPause` pauses 1 s).
    public var acceptPauseMilliseconds = 1_000

    public init() {}

    var upstreamHostHeader: String { "\(self.upstreamHost):\(self.upstreamPort)" }
}

/// The prototype data-plane core: `loops` epoll loops relaying WebSocket connections to one upstream,
/// parsing every frame with the `Frames` types. No routes or policies: see BENCHMARKS.md, "core15: an epoll
/// data-plane prototype", for what it measures and what it would take to put it behind the gateway's
/// boundary, and "corectl23" for its operations: ``drain(milliseconds:)``, ``stop()``, ``counters()``,
/// each a command through every loop's control queue, callable from any thread.
public final class RelayCore: @unchecked Sendable {
    public let configuration: RelayCoreConfiguration
    /// The port the listeners are bound to.
    public let port: UInt16
    private let loops: [RelayLoop]
    /// The loops' threads were joined (``wait()`` may be called more than once, from several threads).
    private let joined = Mutex(false)

    /// Binds the listeners and starts the loops.
    public init(_ configuration: RelayCoreConfiguration) throws(RelayCoreError) {
        guard var listenAddress = Sockets.address(host: configuration.listenHost, port: configuration.listenPort),
            let upstream = Sockets.address(host: configuration.upstreamHost, port: configuration.upstreamPort)
        else { throw RelayCoreError(call: "inet_pton", errno: EINVAL) }
        self.configuration = configuration
        var loops: [RelayLoop] = []
        var port = configuration.listenPort
        for _ in 0..<max(1, configuration.loops) {
            let listener = try Sockets.listener(listenAddress, reusePort: true)
            if port == 0 {
                port = Sockets.localPort(listener)
                listenAddress.sin_port = port.bigEndian
            }
            loops.append(try RelayLoop(configuration: configuration, listener: listener, upstream: upstream))
        }
        self.port = port
        self.loops = loops
        for loop in loops { loop.start() }
    }

    /// Stops every loop and waits for them; open connections are closed (TCP, no Close frame).
    public func stop() {
        for loop in self.loops { loop.stop() }
        self.wait()
    }

    /// Drains every loop (returns at once; ``wait()`` waits for the end): each stops accepting, each
    /// relayed connection gets a Close 1001 toward both legs at its next message boundary, a request head
    /// that completes from now on is answered 503, and whatever is left `milliseconds` later is closed.
    /// A loop ends when no connection is left. A second drain changes nothing.
    public func drain(milliseconds: Int) {
        for loop in self.loops { loop.control.post(.drain(milliseconds: milliseconds)) }
    }

    /// The loops' counters, summed: each loop copies its own between two events (a loop that has ended
    /// answers with its last counters). Blocks until every loop answered.
    public func counters() -> RelayCounters {
        let answers = SnapshotAnswers()
        for loop in self.loops {
            loop.control.post(.snapshot { answers.add($0) })
        }
        for _ in self.loops { answers.done.wait() }
        return answers.sum.withLock { $0 }
    }

    /// Waits for the loops (they run until ``stop()``, or until a drain has ended every connection).
    public func wait() {
        self.joined.withLock { joined in
            guard !joined else { return }
            for loop in self.loops { loop.join() }
            joined = true
        }
    }
}

/// The loops' answers to one ``RelayCore/counters()`` call, summed as they come.
private final class SnapshotAnswers: Sendable {
    let sum = Mutex(RelayCounters())
    let done = DispatchSemaphore(value: 0)

    func add(_ counters: RelayCounters) {
        self.sum.withLock { $0 = $0.adding(counters) }
        self.done.signal()
    }
}
