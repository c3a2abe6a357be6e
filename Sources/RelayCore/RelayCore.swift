import Frames

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
    public var handshakeTimeoutMilliseconds = 10_000
    public var closeTimeoutMilliseconds = 5_000
    public var tickMilliseconds = 100

    public init() {}

    var upstreamHostHeader: String { "\(self.upstreamHost):\(self.upstreamPort)" }
}

/// The prototype data-plane core: `loops` epoll loops relaying WebSocket connections to one upstream,
/// parsing every frame with the `Frames` types. Plain `ws://` only (no TLS), no routes, policies, metrics
/// or drain: see BENCHMARKS.md, "core15: an epoll data-plane prototype", for what it measures and what it
/// would take to put it behind the gateway's boundary.
public final class RelayCore: @unchecked Sendable {
    public let configuration: RelayCoreConfiguration
    /// The port the listeners are bound to.
    public let port: UInt16
    private let loops: [RelayLoop]

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

    /// Stops every loop and waits for them; open connections are closed.
    public func stop() {
        for loop in self.loops { loop.stop() }
        for loop in self.loops { loop.join() }
    }

    /// Waits for the loops (they run until ``stop()``).
    public func wait() {
        for loop in self.loops { loop.join() }
    }
}
