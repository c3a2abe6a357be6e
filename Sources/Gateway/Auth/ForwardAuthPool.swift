import NIOCore
import NIOHTTP1

/// The connections of one forward-auth service on one event loop (so no lock, and every auth request
/// runs on its client connection's loop): at most `max_connections` open (connecting, busy or idle),
/// kept alive between requests, each idle one closed after `idle_timeout`; at most `max_waiting`
/// requests queued for a connection, beyond which a request fails at once (``ForwardAuthFailure/overloaded``).
/// A slow or dead service therefore costs a bounded number of sockets and of waiting requests, and
/// every request is bounded by its deadline (``ForwardAuthAttempt``).
///
/// A reload or a shutdown retires the pool (``retire()``): its idle connections close at once, and
/// each busy one closes when its request is answered, so requests in flight (and those still queued)
/// complete while nothing stays open for `idle_timeout` afterwards.
final class ForwardAuthPool {
    let eventLoop: any EventLoop
    let host: String
    let port: Int
    let maxConnections: Int
    let maxWaiting: Int
    let idleTimeout: TimeAmount
    private let connector: any UpstreamConnector
    private var idle: [ForwardAuthConnection] = []
    private var waiters = CircularBuffer<ForwardAuthAttempt>()
    /// Connecting, busy and idle connections.
    private(set) var open = 0
    /// Set by ``retire()``: no connection is kept idle any more.
    private(set) var isRetired = false

    init(configuration: GatewayConfiguration.ForwardAuthentication, eventLoop: any EventLoop, connector: any UpstreamConnector) {
        self.eventLoop = eventLoop
        self.host = configuration.host
        self.port = configuration.port
        self.maxConnections = configuration.maxConnections
        self.maxWaiting = configuration.maxWaiting
        self.idleTimeout = TimeAmount(configuration.idleTimeout)
        self.connector = connector
    }

    var idleCount: Int { self.idle.count }
    var waiting: Int { self.waiters.count }

    /// Gives `attempt` an idle connection, a new one, a place in the queue, or fails it (overloaded).
    func acquire(_ attempt: ForwardAuthAttempt) {
        while let connection = self.idle.popLast() {
            connection.idleTimer?.cancel()
            connection.idleTimer = nil
            if connection.channel.isActive { return attempt.start(on: connection) }
        }
        if self.open < self.maxConnections { return self.connect(for: attempt) }
        if self.waiters.count < self.maxWaiting {
            attempt.state = .waiting
            self.waiters.append(attempt)
            return
        }
        attempt.finish(.failure(.overloaded))
    }

    /// A request is done with `connection`: kept for the next one when `reusable` (and the pool is not
    /// retired), else closed.
    func release(_ connection: ForwardAuthConnection, reusable: Bool) {
        guard reusable, connection.channel.isActive else { return connection.channel.close(promise: nil) }
        if let waiter = self.waiters.popFirst() { return waiter.start(on: connection) }
        guard !self.isRetired else { return connection.channel.close(promise: nil) }
        let channel = connection.channel
        connection.idleTimer = self.eventLoop.assumeIsolated().scheduleTask(in: self.idleTimeout) { channel.close(promise: nil) }
        self.idle.append(connection)
    }

    /// The configuration that made this pool was replaced, or the gateway stops: closes the idle
    /// connections now and every other one once its request is answered (``release(_:reusable:)``).
    func retire() {
        self.isRetired = true
        let idle = self.idle
        self.idle.removeAll()
        for connection in idle {
            connection.idleTimer?.cancel()
            connection.idleTimer = nil
            connection.channel.close(promise: nil)
        }
    }

    /// A waiting attempt gave up (deadline, client gone).
    func remove(waiter attempt: ForwardAuthAttempt) {
        if let index = self.waiters.firstIndex(where: { $0 === attempt }) { self.waiters.remove(at: index) }
    }

    private func connect(for attempt: ForwardAuthAttempt) {
        self.open += 1
        attempt.state = .connecting
        self.connector.connect(host: self.host, port: self.port, on: self.eventLoop) { channel in
            channel.eventLoop.makeCompletedFuture { try ForwardAuthConnection.install(on: channel) }
        }
        .assumeIsolated().whenComplete { result in
            switch result {
            case .failure:
                self.open -= 1
                attempt.connectFailed()
                self.serveWaiters()
            case .success(let channel):
                guard let exchange = try? channel.pipeline.syncOperations.handler(type: ForwardAuthExchangeHandler.self) else {
                    self.open -= 1
                    channel.close(promise: nil)
                    attempt.connectFailed()
                    return self.serveWaiters()
                }
                let connection = ForwardAuthConnection(channel: channel, exchange: exchange)
                channel.closeFuture.assumeIsolated().whenComplete { _ in self.closed(connection) }
                attempt.start(on: connection)
            }
        }
    }

    /// Every connection ends here once: its slot frees and the first waiter gets a new connection.
    private func closed(_ connection: ForwardAuthConnection) {
        self.open -= 1
        connection.idleTimer?.cancel()
        self.idle.removeAll { $0 === connection }
        self.serveWaiters()
    }

    private func serveWaiters() {
        while self.open < self.maxConnections, let waiter = self.waiters.popFirst() {
            self.connect(for: waiter)
        }
    }
}

/// One auth request: from the queue to the answer, under its deadline, abandoned when the client
/// leaves. Completes its promise exactly once; a connection it abandons mid-answer is closed (its
/// answer would arrive on the next request otherwise).
final class ForwardAuthAttempt {
    enum State {
        case new, waiting, connecting
        case exchanging(ForwardAuthConnection)
        case done
    }

    let request: HTTPRequestHead
    let pool: ForwardAuthPool
    private let promise: EventLoopPromise<Result<ForwardAuthResponse, ForwardAuthFailure>>
    var state = State.new
    var deadline: Scheduled<Void>?
    private var retried = false
    private var completed = false

    init(request: HTTPRequestHead, pool: ForwardAuthPool, promise: EventLoopPromise<Result<ForwardAuthResponse, ForwardAuthFailure>>) {
        self.request = request
        self.pool = pool
        self.promise = promise
    }

    func start(on connection: ForwardAuthConnection) {
        if case .done = self.state { return self.pool.release(connection, reusable: true) }
        self.state = .exchanging(connection)
        let answer = self.pool.eventLoop.makePromise(of: ForwardAuthResponse.self)
        connection.exchange.send(self.request, promise: answer)
        answer.futureResult.assumeIsolated().whenComplete { result in
            guard case .exchanging(let current) = self.state, current === connection else { return }
            switch result {
            case .success(let response):
                self.state = .done
                self.pool.release(connection, reusable: response.keepAlive)
                self.finish(.success(response))
            case .failure(let error):
                connection.channel.close(promise: nil)
                let failure = error as? ForwardAuthFailure ?? .malformed
                // A kept-alive connection the service closed while idle fails before any byte: once, retry
                // on another connection (RFC 9112 §9.3.1 allows it for an idempotent GET).
                if failure == .closed, connection.exchange.requests > 1, connection.exchange.nothingReceived, !self.retried {
                    self.retried = true
                    self.state = .new
                    return self.pool.acquire(self)
                }
                self.finish(.failure(failure))
            }
        }
    }

    func connectFailed() {
        if case .connecting = self.state { self.finish(.failure(.unreachable)) }
    }

    /// The deadline passed or the client left.
    func cancel(_ why: ForwardAuthFailure) {
        let state = self.state
        // Finished first: closing the connection below fails its answer at once, which must not count.
        self.finish(.failure(why))
        switch state {
        case .done: return
        case .waiting: self.pool.remove(waiter: self)
        case .exchanging(let connection): connection.channel.close(promise: nil)
        case .new, .connecting: break
        }
    }

    func finish(_ result: Result<ForwardAuthResponse, ForwardAuthFailure>) {
        guard !self.completed else { return }
        self.completed = true
        self.state = .done
        self.deadline?.cancel()
        self.deadline = nil
        self.promise.succeed(result)
    }
}
